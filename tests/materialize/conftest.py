"""Helpers for materialize tests: ingest a private copy of a trace, then read back the store and its rows."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from rdbridge.ingest import ingest
from rdbridge.registry import Artifact, ArtifactFile, Loop, make_engine, session_scope

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "sample_trace"
FIXTURES = REPO / "tests" / "fixtures"
SHARED = Path("/work/shared/fixtures")


@dataclass
class Ingested:
    root: Path
    db_url: str
    store: Path


def ingest_copy(src: Path, tmp_path: Path, db_url: str) -> Ingested:
    """Copy a trace (links kept) and ingest it; the ingest must be clean."""
    dst = tmp_path / src.name
    shutil.copytree(src, dst, symlinks=True)
    key_file = dst / "artifact_signing.key"
    key = key_file.read_bytes() if key_file.exists() else None
    report = ingest(log_root=dst / "log", workspace_root=dst / "workspace", db_url=db_url, signing_key=key)
    assert report.ok, report.issues
    return Ingested(dst, db_url, tmp_path / "store")


def loops(db_url: str) -> list[Loop]:
    engine = make_engine(db_url)
    try:
        with session_scope(engine, write=False) as s:
            return list(s.scalars(select(Loop).order_by(Loop.task_run_id, Loop.loop_id)))
    finally:
        engine.dispose()


def store_rows(db_url: str) -> list[tuple[int, str, str, str, int, str, str]]:
    """(artifact_id, experiment_id, artifact_type, path, size, sha256, mime) of every store file row."""
    engine = make_engine(db_url)
    try:
        with session_scope(engine, write=False) as s:
            q = (select(Artifact.artifact_id, Artifact.experiment_id, Artifact.artifact_type, ArtifactFile.path,
                        ArtifactFile.size_bytes, ArtifactFile.sha256, ArtifactFile.mime_type)
                 .join(ArtifactFile, ArtifactFile.artifact_id == Artifact.artifact_id)
                 .where(Artifact.root_kind == "store").order_by(ArtifactFile.path))
            return [tuple(r) for r in s.execute(q).all()]
    finally:
        engine.dispose()


def snapshot(store: Path) -> dict[str, bytes]:
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def check_store_matches_registry(db_url: str, store: Path) -> None:
    """Every registered store file exists with its size and sha256, every file on disk is registered, and every
    manifest lists exactly its folder's other files."""
    rows = store_rows(db_url)
    on_disk = snapshot(store)
    assert {r[3] for r in rows} == set(on_disk), "registered files and files on disk differ"
    for _aid, _eid, _type, path, size, sha, mime in rows:
        data = on_disk[path]
        assert len(data) == size and hashlib.sha256(data).hexdigest() == sha, path
        assert mime == ("image/png" if path.endswith(".png") else "application/json")
    for path, data in on_disk.items():
        if path.endswith("/manifest.json"):
            folder = path.rsplit("/", 1)[0]
            listed = {f["name"]: f for f in json.loads(data)["files"]}
            here = {p.rsplit("/", 1)[1] for p in on_disk if p.rsplit("/", 1)[0] == folder} - {"manifest.json"}
            assert set(listed) == here
            for name, f in listed.items():
                assert hashlib.sha256(on_disk[f"{folder}/{name}"]).hexdigest() == f["sha256"]
