"""The README's main job installs only what it needs: a newcomer's first run must not pull pyqlib, pytest & co."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _dist(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_demo_bootstraps_without_the_test_extras() -> None:
    demo = (ROOT / "scripts" / "demo.sh").read_text(encoding="utf-8")
    calls = re.findall(r"^\s*\./scripts/bootstrap\.sh(.*)$", demo, flags=re.M)
    assert calls == [" --no-test"], calls
    boot = (ROOT / "scripts" / "bootstrap.sh").read_text(encoding="utf-8")
    assert re.search(r'if \[ "\$\{1:-\}" = "--no-test" \]; then\s+TARGET=\'\.\'', boot), "--no-test must install '.'"


def test_core_dependencies_hold_no_test_only_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = {_dist(r) for r in project["dependencies"]}
    test_only = {_dist(r) for r in project["optional-dependencies"]["test"]} - core
    assert {"pytest", "pyqlib", "playwright", "schemathesis"} <= test_only
    assert not core & {"pytest", "pyqlib", "hypothesis", "playwright", "schemathesis", "jsonschema", "distributed"}
