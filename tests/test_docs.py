"""The README documents every CLI command (a command nobody can find is a command nobody uses)."""

from __future__ import annotations

from pathlib import Path

import typer.main

from rdbridge.cli import app

ROOT = Path(__file__).resolve().parents[1]
# README plus the topic pages under docs/ (a helper's branch documents its commands there until the lead merges
# the README section; see docs/factorlib.md).
README = "\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def _commands(group: object, prefix: str = "rdbridge") -> list[str]:
    out = []
    for name, cmd in getattr(group, "commands", {}).items():
        full = f"{prefix} {name}"
        out.append(full)
        out.extend(_commands(cmd, full))
    return out


def test_every_command_is_in_the_readme() -> None:
    commands = _commands(typer.main.get_command(app))
    assert {"rdbridge ingest", "rdbridge loops", "rdbridge engine compute"} <= set(commands)
    missing = [c for c in commands if c not in README and c != "rdbridge engine"]
    assert not missing, f"undocumented commands: {missing}"
