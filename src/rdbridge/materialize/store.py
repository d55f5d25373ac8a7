"""The artifact store on disk: where a loop's set lives, atomic writes, and its rows in `artifacts`.

A loop's set is `<artifact_root>/<task_run_id>/<loop_id>/`. Files are written to a temp file in the same folder,
fsynced, then renamed over the target (and the folder fsynced), so a reader or a crash sees the old file or the new
one, never half of one. `manifest.json` is removed first and written last, so its presence means the set is complete.
Registry rows for the set are replaced in the caller's transaction (the one that marks the loop done).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from rdbridge import atomic
from rdbridge.contracts.artifacts import ManifestFile
from rdbridge.registry import Artifact, ArtifactFile

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
MANIFEST = "manifest.json"
_TMP_SUFFIX = ".rdbridge-tmp"

_MIME = {".json": "application/json", ".png": "image/png"}


class UnsafeIdentifierError(ValueError):
    """A task run id that cannot safely become a folder name."""


def mime_type(name: str) -> str:
    return _MIME.get(Path(name).suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def loop_dir(root: Path, task_run_id: str, loop_id: int) -> Path:
    """The folder of one loop's set; the run id is checked before it becomes a path component."""
    if not _SAFE_ID.match(task_run_id) or task_run_id in (".", ".."):
        raise UnsafeIdentifierError(f"task_run_id {task_run_id!r} is not a safe folder name")
    return Path(root) / task_run_id / str(int(loop_id))


def relpath(task_run_id: str, loop_id: int, name: str) -> str:
    """A file's path relative to the artifact store root, as registered in `artifact_files.path`."""
    return f"{task_run_id}/{int(loop_id)}/{name}"


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file + fsync + rename: `path` holds either its old bytes or `data`, whatever happens; a temp file a killed
    writer left ends in `_TMP_SUFFIX`, which `prepare_dir` sweeps."""
    atomic.write_atomic(path, data, tmp_suffix=_TMP_SUFFIX)


def write_many(folder: Path, files: Mapping[str, bytes]) -> None:
    """Several files of one set, each atomic, with one folder flush (see `atomic.write_many`)."""
    atomic.write_many(folder, dict(files), tmp_suffix=_TMP_SUFFIX)


def prepare_dir(folder: Path) -> None:
    """Create the folder, drop temp files a killed writer left, and remove the manifest (the set is being rebuilt).

    The manifest's removal is made durable before any file of the new set replaces an old one."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in folder.iterdir():
        if p.name.endswith(_TMP_SUFFIX):
            p.unlink(missing_ok=True)
    manifest = folder / MANIFEST
    if manifest.exists():
        manifest.unlink(missing_ok=True)
        atomic.fsync_dir(folder)


def prune(folder: Path, keep: set[str]) -> None:
    """Remove files of an older set that the new set does not have (e.g. curves of a loop that lost its result)."""
    for p in folder.iterdir():
        if p.is_file() and p.name not in keep:
            p.unlink(missing_ok=True)


def file_entry(name: str, data: bytes) -> ManifestFile:
    return ManifestFile(name=name, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                        mime_type=mime_type(name))


def register(session: Session, *, task_run_id: str, loop_id: int, experiment_id: str,
             files: Mapping[str, bytes], when: datetime, only: set[str] | None = None) -> None:
    """Replace the store rows of this loop (one artifact per document, one file row each).

    `only`: replace just these documents (a partial refresh); default: the whole set.
    """
    names = sorted(files) if only is None else sorted(only)
    q = delete(Artifact).where(Artifact.experiment_id == experiment_id, Artifact.root_kind == "store")
    if only is not None:
        q = q.where(Artifact.name.in_(names))
    session.execute(q)
    if not names:
        return
    rows = [{"task_run_id": task_run_id, "loop_id": loop_id, "experiment_id": experiment_id, "workspace_id": "",
             "artifact_type": Path(n).stem, "name": n, "status": "present", "root_kind": "store",
             "created_at_utc": when, "updated_at_utc": when} for n in names]
    ids = dict(session.execute(insert(Artifact).returning(Artifact.name, Artifact.artifact_id,
                                                          sort_by_parameter_order=True), rows).all())
    file_rows = []
    for n in names:
        e = file_entry(n, files[n])
        file_rows.append({"artifact_id": ids[n], "path": relpath(task_run_id, loop_id, n), "size_bytes": e.size_bytes,
                          "sha256": e.sha256, "mime_type": e.mime_type, "is_symlink": False, "created_at_utc": when})
    session.execute(insert(ArtifactFile), file_rows)
