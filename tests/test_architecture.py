"""The folder layout is the architecture: imports point down the layers, never up, and untrusted code stays out."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rdbridge"

# layer -> the rdbridge layers it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "contracts": set(),
    "config": set(),
    "atomic": set(),
    "sqldb": set(),
    "registry": {"contracts", "config", "sqldb"},
    "rdagent_trace": {"contracts"},
    "ingest": {"registry", "rdagent_trace", "contracts", "config"},
    "materialize": {"registry", "rdagent_trace", "contracts", "config", "atomic"},
    "engine": {"contracts"},
    "factorlib": {"registry", "contracts", "config", "atomic"},
    "catalog": {"registry", "contracts", "config", "atomic"},
    "api": {"catalog", "registry", "contracts", "config"},
    # the platform side knows the producer only over HTTP: never registry, ingest, api or catalog
    "consumer": {"contracts", "config", "sqldb"},
    "ui": {"consumer", "contracts", "config"},
    "verify": {"engine", "consumer", "contracts", "config", "atomic"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    layer = _layer(path)
    if layer not in ALLOWED:
        return  # cli.py and __init__: the top may import everything
    for lineno, mod in _imports(path):
        parts = mod.split(".")
        if parts[0] != "rdbridge" or len(parts) < 2:
            continue
        target = parts[1]
        assert target == layer or target in ALLOWED[layer], f"{path.relative_to(SRC)}:{lineno} imports {mod}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_rdagent_or_qlib_and_no_plain_unpickling(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for lineno, mod in _imports(path):
        assert mod.split(".")[0] not in {"rdagent", "qlib"}, f"{path.relative_to(SRC)}:{lineno} imports {mod}"
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in {"pickle", "pd", "pandas", "joblib", "dill"}:
                assert node.func.attr not in {"load", "loads", "read_pickle"}, (
                    f"{path.relative_to(SRC)}:{node.lineno} calls {owner.id}.{node.func.attr} on untrusted data")
