"""The package on disk: where it lives, scaffolding it, its ``generated.py`` and ``VERSION``, and immutable
content-addressed snapshots of each version.

Layout (a distribution root, ``pip install -e PATH``): ``PATH/pyproject.toml`` and ``PATH/rd_factors_lib/...``.
Default PATH: ``$RDBRIDGE_HOME/factor_package``, scaffolded from this repository's ``factors-lib`` on first use.
"""

from __future__ import annotations

import ast
import fcntl
import gzip
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rdbridge.atomic import write_atomic
from rdbridge.config import artifact_root, home_dir

PACKAGE = "rd_factors_lib"
GENERATED_HEADER = '''"""Factors promoted from RD-Agent loops. Written only by ``rdbridge factorlib promote``: do not edit by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._registry import factor


def _as_factor(result: object, name: str, index: pd.Index) -> pd.Series:
    """What the script wrote to result.h5 as the factor's Series: its first column, named ``name``, on ``index``."""
    if isinstance(result, pd.DataFrame):
        result = result.iloc[:, 0]
    return pd.Series(result).reindex(index).astype("float64").rename(name)


__all__ = ["factor", "np", "pd"]
'''


class PackageError(ValueError):
    """The package folder is missing, not an rd_factors_lib distribution, or inconsistent; the message says which."""


def default_package_path() -> Path:
    return home_dir() / "factor_package"


def template_dir() -> Path:
    """The ``factors-lib`` distribution this rdbridge ships with (repository checkout or installed package)."""
    repo = Path(__file__).resolve().parents[3] / "factors-lib"
    if (repo / PACKAGE / "VERSION").is_file():
        return repo
    spec = importlib.util.find_spec(PACKAGE)
    if spec and spec.origin:
        return Path(spec.origin).parent.parent
    raise PackageError("cannot find the factors-lib template: install it with `pip install -e factors-lib`")


def init_package(path: Path) -> Path:
    """Scaffold a fresh package at ``path`` (refuses a non-empty folder): the template with an empty generated.py."""
    if path.exists() and any(path.iterdir()):
        raise PackageError(f"{path} exists and is not empty: choose a new folder for `factorlib init`")
    src = template_dir()
    tmp = path.with_name(f".{path.name}.init-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / PACKAGE).mkdir(parents=True)
    for f in ("pyproject.toml", "README.md"):
        if (src / f).is_file():
            shutil.copy2(src / f, tmp / f)
    for f in sorted((src / PACKAGE).iterdir()):
        if f.suffix == ".py" or f.name == "VERSION":
            shutil.copy2(f, tmp / PACKAGE / f.name)
    (tmp / PACKAGE / "generated.py").write_text(GENERATED_HEADER, encoding="utf-8")
    (tmp / PACKAGE / "VERSION").write_text("0.1.0\n", encoding="utf-8")
    if path.exists():
        path.rmdir()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, path)
    return path


def resolve_package(path: Path | None) -> Path:
    """``path`` (must be a package) or the default one, scaffolded on first use."""
    if path is None:
        path = default_package_path()
        if not (path / PACKAGE / "VERSION").is_file():
            init_package(path)
    if not (path / PACKAGE / "VERSION").is_file() or not (path / PACKAGE / "generated.py").is_file():
        raise PackageError(f"{path} is not an rd_factors_lib package (no {PACKAGE}/VERSION or generated.py)")
    return path.resolve()


def read_version(path: Path) -> str:
    return (path / PACKAGE / "VERSION").read_text(encoding="utf-8").strip()


def bump_patch(version: str) -> str:
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise PackageError(f"VERSION {version!r} is not MAJOR.MINOR.PATCH")
    return f"{parts[0]}.{parts[1]}.{int(parts[2]) + 1}"


def generated_functions(source: str) -> dict[str, tuple[str, str]]:
    """factor name -> (function name, function source) of every ``@factor(name)`` function in generated.py."""
    out: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "factor" and dec.args:
                    name = dec.args[0].value  # type: ignore[attr-defined]
                    out[name] = (node.name, ast.unparse(node) + "\n")
    return out


def render_generated(functions: dict[str, tuple[str, str]]) -> str:
    """generated.py from its functions, ordered by function name so the same set always gives the same bytes."""
    blocks = [src for _, src in sorted(functions.values())]
    return GENERATED_HEADER + "".join("\n\n" + b for b in blocks)


@contextmanager
def package_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on the package (one promotion at a time, across processes)."""
    with open(path / ".rdbridge-factorlib.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_imports(path: Path) -> str:
    """'' when the package at ``path`` imports in a fresh interpreter and its REGISTRY builds; else the error."""
    code = f"import sys; sys.path.insert(0, {str(path)!r}); import {PACKAGE}; print(len({PACKAGE}.REGISTRY))"
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120)
    return "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["import failed"])[-1]


def _snapshot_files(path: Path) -> list[Path]:
    files = [path / f for f in ("pyproject.toml", "README.md") if (path / f).is_file()]
    files += sorted(p for p in (path / PACKAGE).iterdir() if p.is_file() and (p.suffix == ".py" or p.name == "VERSION"))
    return files


def snapshot_bytes(path: Path) -> bytes:
    """The package's files as a reproducible tar.gz (sorted, mtime 0, no owners): same files, same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in _snapshot_files(path):
            data = f.read_bytes()
            info = tarfile.TarInfo(f.relative_to(path).as_posix())
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def store_snapshot(data: bytes) -> tuple[str, str]:
    """Write the snapshot into the artifact store by content; returns (sha256, path relative to the store)."""
    sha = hashlib.sha256(data).hexdigest()
    rel = f"factor_package/sha256/{sha[:2]}/{sha}.tar.gz"
    dest = artifact_root() / rel
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dest, data)
    return sha, rel


def read_snapshot(rel: str, sha256: str) -> bytes:
    """The stored snapshot, checked against its sha256 (a changed file is an error, never served)."""
    data = (artifact_root() / rel).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise PackageError(f"snapshot {rel} does not match its sha256 {sha256}: the artifact store was altered")
    return data


def snapshot_member(data: bytes, member: str) -> str:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        fh = tar.extractfile(member)
        if fh is None:
            raise PackageError(f"{member} is not in the snapshot")
        return fh.read().decode("utf-8")


def as_zip(data: bytes) -> bytes:
    """The same files as a zip (fixed timestamps), for the bundle command."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for m in tar.getmembers():
            fh = tar.extractfile(m)
            if fh is not None:
                z.writestr(zipfile.ZipInfo(m.name, (1980, 1, 1, 0, 0, 0)), fh.read())
    return out.getvalue()
