"""Bad files inside a trace or workspace: unreadable pickles, non-UTF-8 code, links out of the workspace root."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from rdbridge.registry import Artifact, ArtifactFile, Workspace
from support import tracegen

from .conftest import query
from .test_ingest_bad_input import KEY, _ingest, _only_bad, _pickle, trace  # noqa: F401 - fixture re-used


def test_unreadable_trace_file(db_url: str, trace: tracegen.TracePaths) -> None:
    bad = _pickle(trace.run_dir, 1, "runner result")
    tracegen.make_unreadable(bad, "dangling_symlink")
    _ingest(trace, db_url)
    _only_bad(db_url, 1, "unreadable", bad.name)


def test_non_utf8_code_file(db_url: str, trace: tracegen.TracePaths) -> None:
    ws_id = tracegen.loop_workspace_ids(2)["tasks"][0]
    f = tracegen.write_non_utf8_code(trace.workspace_root / ws_id)
    _ingest(trace, db_url)
    _only_bad(db_url, 2, "not_utf8", str(f.name))


def test_workspace_folder_linking_out_of_the_root_is_not_read(sqlite_url: str, tmp_path: Path) -> None:
    paths = tracegen.write_trace(tmp_path / "t", loops=2, key=KEY, fail_last=False)
    ws_id = tracegen.loop_workspace_ids(0)["tasks"][0]
    outside = tmp_path / "outside"
    (paths.workspace_root / ws_id).rename(outside)
    (paths.workspace_root / ws_id).symlink_to(outside, target_is_directory=True)
    report = _ingest(paths, sqlite_url)
    assert any(i.kind == "missing_workspace" and ws_id in i.file for i in report.issues), report.issues
    ws = query(sqlite_url, select(Workspace).where(Workspace.workspace_id == ws_id))[0]
    assert ws.exists is False and ws.workspace_path is None
    files = query(sqlite_url, select(ArtifactFile).join(Artifact).where(Artifact.workspace_id == ws_id))
    assert files == [], "nothing outside the workspace root was listed or hashed"
