"""The factor package routes' reads: registered versions, a version's exact snapshot, a factor's source text.

Snapshots are served only from the path the registry recorded for the version, inside the artifact store, through
the same checks as artifact downloads (clean relative path, symlinks resolved, regular file, size and sha256 equal
to the registry's). Sources are read from the tar.gz with `tarfile` and located with `ast.parse`: the package's
code is parsed as text, never imported or run in the API process.
"""

from __future__ import annotations

import ast
import io
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, select

from rdbridge.api.errors import ApiError
from rdbridge.api.files import open_registered
from rdbridge.catalog.package_factors import factor_name
from rdbridge.contracts.api import FactorSourceOut, PackageVersionOut, PackageVersions
from rdbridge.registry.models import FactorPackageVersion

SNAPSHOT_MEDIA_TYPE = "application/gzip"
MAX_MEMBER_BYTES = 8 * 1024 * 1024
"""A .py member larger than this is not parsed (a sane package module is far smaller)."""
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_T = FactorPackageVersion.__table__.c


@dataclass(frozen=True)
class Snapshot:
    version: str
    sha256: str
    data: bytes


def versions(conn: Connection) -> PackageVersions:
    rows = conn.execute(select(_T.version, _T.sha256, _T.size_bytes, _T.created_at_utc, _T.added_json,
                               _T.changed_json).order_by(_T.id)).all()
    return PackageVersions(versions=[
        PackageVersionOut(version=r.version, sha256=r.sha256, size=r.size_bytes, created_at=r.created_at_utc,
                          added=[str(x) for x in r.added_json or []], changed=[str(x) for x in r.changed_json or []])
        for r in rows])


def read_snapshot(conn: Connection, version: str, store_root: Path) -> Snapshot:
    """The registered snapshot bytes of `version`, checked like an artifact download (404 unknown, 409 altered)."""
    row = conn.execute(select(_T.id, _T.version, _T.sha256, _T.archive_path, _T.size_bytes)
                       .where(_T.version == version)).one_or_none()
    if row is None:
        raise ApiError(404, "not_found", "no registered factor package version of that name")
    meta = {"status": "present", "path": row.archive_path, "root_kind": "store", "size_bytes": row.size_bytes,
            "sha256": row.sha256, "mime_type": SNAPSHOT_MEDIA_TYPE, "workspace_path": None, "workspace_root": None}
    opened = open_registered(-row.id, meta, store_root)  # negative: its verification cache never meets a file id
    try:
        data = opened.body if opened.body is not None else b"".join(opened.chunks())
    finally:
        opened.close()
    return Snapshot(version=row.version, sha256=row.sha256, data=data)


def _tar(data: bytes) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
    except (tarfile.TarError, OSError, EOFError):
        raise ApiError(409, "snapshot_unreadable", "this version's snapshot is not a readable tar.gz") from None


def as_zip(data: bytes) -> bytes:
    """The snapshot's regular files as a zip, deterministic: tar order, fixed timestamps, fixed permissions."""
    out = io.BytesIO()
    with _tar(data) as tar, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for m in tar.getmembers():
            if not m.isfile():
                continue
            fh = tar.extractfile(m)
            if fh is None:
                continue
            info = zipfile.ZipInfo(m.name, _ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, fh.read())
    return out.getvalue()


def _find(text: str, name: str) -> tuple[str, str] | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    lines = text.splitlines(keepends=True)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if any(factor_name(d) == name for d in node.decorator_list):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                return node.name, "".join(lines[first - 1:node.end_lineno or node.lineno])
    return None


def factor_source(snapshot: Snapshot, name: str) -> FactorSourceOut:
    """The decorated function registering `name` in the snapshot (404 when no module defines it)."""
    with _tar(snapshot.data) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if not (m.isfile() and m.name.endswith(".py")) or m.size > MAX_MEMBER_BYTES:
                continue
            fh = tar.extractfile(m)
            if fh is None:
                continue
            text = fh.read().decode("utf-8", errors="replace")
            found = _find(text, name)
            if found is not None:
                return FactorSourceOut(name=name, version=snapshot.version, module=m.name, function=found[0],
                                       source=found[1])
    raise ApiError(404, "not_found", "no factor of that name in this package version")
