"""The curated factors of rd_factors_lib (momentum, volume, cross_section ...), read as text, never imported.

The catalog runs inside the API process, which must never import or run factor code. So the package's modules are
parsed with `ast`: every `@factor("NAME")` function gives a name, its function, its docstring (the formula) and the
panel fields it reads (`"$close"` ... constants in it and in the package functions it calls).

Which package: the latest version registered in `factor_package_versions` (its snapshot in the artifact store,
sha256-checked) - what the platform downloads. Before any version is registered, the rd_factors_lib this rdbridge
ships with (located with `importlib.util.find_spec`, which finds a top-level package without running it), with no
`impl_version`: no registered version holds it yet, so there is no source the API could serve for it.
`alpha158.py` is listed by the Alpha158 source and `generated.py` (promoted RD-Agent factors) by the RD-Agent source,
so neither is listed here.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import io
import os
import tarfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, select

from rdbridge.registry.models import FactorPackageVersion

PACKAGE = "rd_factors_lib"
NOT_CURATED = frozenset({"__init__", "alpha158", "generated"})
"""Modules whose factors other sources list (or that hold no factors); `_private` modules are helpers."""
MAX_MODULE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class PackageFactor:
    name: str
    module: str
    """The module's short name (its group), e.g. `momentum`."""
    func: str
    doc: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class PackageIndex:
    version: str | None
    """The registered version; None for the shipped package (no version the API could serve a source of)."""
    created_at_utc: datetime | None
    """When the version was registered (None: the shipped package, not registered yet)."""
    factors: tuple[PackageFactor, ...]
    """Ordered by (module, name): a stable order for paging."""


def factor_name(dec: ast.expr) -> str | None:
    """The factor name a `@factor("NAME", ...)` / `@factor(name="NAME")` decorator registers, else None."""
    if not isinstance(dec, ast.Call):
        return None
    f = dec.func
    called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
    if called != "factor":
        return None
    arg = dec.args[0] if dec.args else next((k.value for k in dec.keywords if k.arg == "name"), None)
    return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None


def _uses(node: ast.AST) -> tuple[set[str], set[str]]:
    """(`$field` string constants, names of called functions) inside `node`."""
    fields, calls = set(), set()
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("$") and n.value[1:].isalnum():
            fields.add(n.value)
        elif isinstance(n, ast.Call):
            f = n.func
            calls.add(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else "")
    return fields, calls


def parse_modules(sources: dict[str, str]) -> list[PackageFactor]:
    """module short name -> source text  =>  the curated factors (files that do not parse are skipped)."""
    uses: dict[str, tuple[set[str], set[str]]] = {}
    found: list[tuple[str, str, str, str]] = []
    for module, text in sources.items():
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            uses.setdefault(node.name, _uses(node))
            if module in NOT_CURATED or module.startswith("_"):
                continue
            for dec in node.decorator_list:
                name = factor_name(dec)
                if name is not None:
                    found.append((module, name, node.name, ast.get_docstring(node) or ""))
    out = []
    for module, name, func, doc in found:
        fields: set[str] = set()
        seen: set[str] = set()
        todo = [func]
        while todo:  # the fields of every package function this one calls, transitively
            fn = todo.pop()
            if fn in seen or fn not in uses:
                continue
            seen.add(fn)
            fields |= uses[fn][0]
            todo += uses[fn][1]
        out.append(PackageFactor(name=name, module=module, func=func, doc=doc, fields=tuple(sorted(fields))))
    return sorted(out, key=lambda p: (p.module, p.name))


def _modules_of_tar(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for m in tar.getmembers():
            parts = m.name.split("/")
            if m.isfile() and len(parts) == 2 and parts[0] == PACKAGE and parts[1].endswith(".py") \
                    and m.size <= MAX_MODULE_BYTES:
                fh = tar.extractfile(m)
                if fh is not None:
                    out[parts[1][:-3]] = fh.read().decode("utf-8", errors="replace")
    return out


_parsed: dict[str, PackageIndex] = {}


def _registered(conn: Connection, store_root: Path) -> PackageIndex | None:
    """The latest registered version's factors; None when no version is registered.

    The snapshot must sit inside the store, be a regular file and match its registered sha256, else the error says
    which version is broken (a catalog never lists what it cannot vouch for).
    """
    t = FactorPackageVersion.__table__.c
    row = conn.execute(select(t.version, t.sha256, t.archive_path, t.created_at_utc)
                       .order_by(t.id.desc()).limit(1)).first()
    if row is None:
        return None
    hit = _parsed.get(row.sha256)
    if hit is not None and hit.version == row.version:
        return hit
    root = Path(os.path.realpath(store_root))
    real = Path(os.path.realpath(root / row.archive_path))
    if Path(row.archive_path).is_absolute() or not real.is_relative_to(root) or not real.is_file():
        raise PackageSnapshotError(f"factor package {row.version}: its snapshot is not a file inside the store")
    data = real.read_bytes()
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise PackageSnapshotError(f"factor package {row.version}: the snapshot does not match its sha256")
    try:
        modules = _modules_of_tar(data)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise PackageSnapshotError(f"factor package {row.version}: the snapshot is not a readable tar.gz") from exc
    index = PackageIndex(version=row.version, created_at_utc=row.created_at_utc, factors=tuple(parse_modules(modules)))
    _parsed[row.sha256] = index
    return index


_shipped: list[PackageIndex] = []


def shipped_index() -> PackageIndex | None:
    """The rd_factors_lib installed beside rdbridge, read as files (None when it is not installed)."""
    if _shipped:
        return _shipped[0]
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    modules = {p.stem: p.read_text(encoding="utf-8", errors="replace") for p in sorted(folder.glob("*.py"))
               if p.stat().st_size <= MAX_MODULE_BYTES}
    _shipped.append(PackageIndex(version=None, created_at_utc=None, factors=tuple(parse_modules(modules))))
    return _shipped[0]


class PackageSnapshotError(RuntimeError):
    """The registered snapshot of the latest package version is missing, outside the store or altered."""


def package_index(conn: Connection, store_root: Path) -> PackageIndex | None:
    """The registered latest version, else the shipped package, else None."""
    return _registered(conn, store_root) or shipped_index()
