"""The reference side: which rd_factors_lib version (a bundle file or folder, else the installed package), and its
functions run in a child process on the panel."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import polars as pl

PACKAGE = "rd_factors_lib"
DEFAULT_TIMEOUT_S = 900.0


class ReferenceError_(ValueError):
    """The bundle is missing, malformed, of another version, or its functions could not run."""


@dataclass(frozen=True)
class Reference:
    root: Path  # folder holding rd_factors_lib/
    version: str
    source: str


def _installed_root() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        raise ReferenceError_("no rd_factors_lib installed: give the version's bundle with --bundle "
                              "(`rdbridge factorlib bundle --version V --out FILE`)")
    return Path(spec.origin).resolve().parent.parent


def _safe_members(names: Sequence[str], bundle: Path) -> None:
    for n in names:
        p = PurePosixPath(n)
        if p.is_absolute() or ".." in p.parts:
            raise ReferenceError_(f"bundle {bundle}: member {n!r} escapes the bundle")


def _extract(bundle: Path, into: Path) -> None:
    try:
        if bundle.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(bundle, "r:gz") as tar:
                members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
                _safe_members([m.name for m in members], bundle)
                tar.extractall(into, members=members, filter="data")
        elif bundle.suffix == ".zip":
            with zipfile.ZipFile(bundle) as zf:
                _safe_members(zf.namelist(), bundle)
                zf.extractall(into)
        else:
            raise ReferenceError_(f"bundle {bundle}: expected a folder, .tar.gz or .zip")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise ReferenceError_(f"bundle {bundle}: cannot read: {exc}") from exc


def _package_root(base: Path, what: str) -> Path:
    for cand in (base, *sorted(p for p in base.iterdir() if p.is_dir())):
        if (cand / PACKAGE / "VERSION").is_file() and (cand / PACKAGE / "__init__.py").is_file():
            return cand
    raise ReferenceError_(f"{what}: no {PACKAGE}/ with VERSION and __init__.py inside")


@contextmanager
def open_reference(bundle: Path | None, version: str | None) -> Iterator[Reference]:
    """The reference package at ``version``: from ``bundle`` (folder / .tar.gz / .zip), else the installed one.
    A stated ``version`` that the bundle does not carry is an error, never a silent fallback."""
    with tempfile.TemporaryDirectory(prefix="rdbridge-verify-ref-") as tmp:
        if bundle is None:
            root, source = _installed_root(), "installed"
        elif bundle.is_dir():
            root, source = _package_root(bundle, f"bundle {bundle}"), f"bundle:{bundle}"
        elif bundle.is_file():
            _extract(bundle, Path(tmp))
            root, source = _package_root(Path(tmp), f"bundle {bundle}"), f"bundle:{bundle}"
        else:
            raise ReferenceError_(f"bundle {bundle}: no such file or folder")
        found = (root / PACKAGE / "VERSION").read_text(encoding="utf-8").strip()
        if version is not None and version != found:
            raise ReferenceError_(f"{source} holds rd_factors_lib {found}, not the requested version {version}")
        yield Reference(root=root, version=found, source=source)


def run_reference(ref: Reference, panel: pl.DataFrame, names: Sequence[str],
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[pl.DataFrame, dict[str, str]]:
    """Values of the reference functions ``names`` on ``panel`` (computed in a child process), in the panel's
    (instrument, datetime) order, and the per-factor errors."""
    with tempfile.TemporaryDirectory(prefix="rdbridge-verify-run-") as tmp:
        panel_path, out_path = Path(tmp) / "panel.parquet", Path(tmp) / "out.parquet"
        panel.write_parquet(panel_path)
        env = dict(os.environ)
        here = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([here] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                       if p and Path(p, PACKAGE).resolve() != ref.root / PACKAGE
                                                       and not Path(p, PACKAGE).is_dir()])
        cmd = [sys.executable, "-B", "-m", "rdbridge.verify.refrun", str(ref.root),
               str(panel_path), str(out_path), *names]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            raise ReferenceError_(f"reference functions of {ref.source} ran over {timeout_s:.0f} s") from exc
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        status = json.loads(lines[-1]) if lines else {}
        if proc.returncode != 0 or "fatal" in status:
            raise ReferenceError_(status.get("fatal") or f"reference runner exited {proc.returncode}: "
                                  f"{proc.stderr.strip()[-2000:]}")
        if status.get("version") != ref.version:
            raise ReferenceError_(f"{ref.source}: imported rd_factors_lib {status.get('version')}, "
                                  f"VERSION file says {ref.version}")
        out = pl.read_parquet(out_path).with_columns(pl.col("datetime").cast(pl.Datetime("us")),
                                                     pl.col("instrument").cast(pl.Utf8))
    keys = panel.select(pl.col("instrument").cast(pl.Utf8), pl.col("datetime").cast(pl.Datetime("us")))
    return keys.join(out, on=["instrument", "datetime"], how="left", maintain_order="left"), status.get("errors", {})
