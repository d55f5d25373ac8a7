"""Reading the package's history: the version list, a factor's source at a version, a version's exact bundle."""

from __future__ import annotations

import ast
import io
import tarfile
from pathlib import Path

from sqlalchemy import select

from rdbridge.contracts.factorlib import PackageVersionDoc
from rdbridge.factorlib import package as pkg
from rdbridge.registry import init_db, make_engine, session_scope
from rdbridge.registry.models import FactorPackageVersion


def _row(db_url: str, version: str) -> FactorPackageVersion:
    engine = init_db(make_engine(db_url))
    try:
        with session_scope(engine, write=False) as s:
            row = s.scalars(select(FactorPackageVersion).where(FactorPackageVersion.version == version)).one_or_none()
            if row is None:
                known = s.scalars(select(FactorPackageVersion.version).order_by(FactorPackageVersion.id)).all()
                raise pkg.PackageError(f"no package version {version!r} in the registry (known: {', '.join(known) or 'none'})")
            s.expunge(row)
            return row
    finally:
        engine.dispose()


def list_versions(db_url: str) -> list[PackageVersionDoc]:
    engine = init_db(make_engine(db_url))
    try:
        with session_scope(engine, write=False) as s:
            rows = s.scalars(select(FactorPackageVersion).order_by(FactorPackageVersion.id)).all()
            return [
                PackageVersionDoc(version=r.version, sha256=r.sha256, archive_path=r.archive_path,
                                  size_bytes=r.size_bytes, added=list(r.added_json or []),
                                  changed=list(r.changed_json or []), created_at_utc=r.created_at_utc.isoformat())
                for r in rows
            ]
    finally:
        engine.dispose()


def _function_in(files: dict[str, str], factor_name: str) -> str | None:
    for rel in sorted(files):
        tree = ast.parse(files[rel])
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                for dec in node.decorator_list:
                    if (isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "factor" and dec.args
                            and getattr(dec.args[0], "value", None) == factor_name):
                        return ast.get_source_segment(files[rel], node, padded=False) or ast.unparse(node)
    return None


def _files_of_snapshot(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read().decode("utf-8")  # type: ignore[union-attr]
                for m in tar.getmembers() if m.name.endswith(".py")}


def show_source(db_url: str, factor_name: str, version: str | None, package_path: Path | None) -> tuple[str, str]:
    """(version, source of the factor's function) at ``version`` (a stored snapshot) or in the package on disk."""
    if version is None:
        path = pkg.resolve_package(package_path)
        files = {p.name: p.read_text(encoding="utf-8") for p in sorted((path / pkg.PACKAGE).glob("*.py"))}
        version = pkg.read_version(path)
    else:
        row = _row(db_url, version)
        files = _files_of_snapshot(pkg.read_snapshot(row.archive_path, row.sha256))
    src = _function_in(files, factor_name)
    if src is None:
        raise pkg.PackageError(f"no factor named {factor_name!r} in rd_factors_lib {version}")
    return version, src


def bundle(db_url: str, version: str, fmt: str, out: Path) -> tuple[str, int]:
    """Write the exact snapshot of ``version`` to ``out`` (tar.gz as stored, or the same files as zip)."""
    if fmt not in ("tar.gz", "zip"):
        raise pkg.PackageError(f"--format must be tar.gz or zip, not {fmt!r}")
    row = _row(db_url, version)
    data = pkg.read_snapshot(row.archive_path, row.sha256)
    if fmt == "zip":
        data = pkg.as_zip(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    pkg.write_atomic(out, data)
    return row.sha256, len(data)
