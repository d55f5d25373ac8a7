"""Bad input: each case records the loop with an error naming the file, ingests every other loop, loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from rdbridge.ingest import IngestInputError, ingest
from rdbridge.registry import Task, TraceFile, Workspace
from support import tracegen

from .conftest import Trace, loops_by_id, query

KEY = b"k" * 32


def _pickle(run_dir: Path, loop: int, tag: str) -> Path:
    found = sorted((run_dir / f"Loop_{loop}").glob(f"*/{tag}/*/*.pkl"))
    assert found, f"no {tag} pickle in Loop_{loop}"
    return found[-1]


@pytest.fixture
def trace(tmp_path: Path) -> tracegen.TracePaths:
    return tracegen.write_trace(tmp_path / "t", loops=5, key=KEY)


def _ingest(paths: tracegen.TracePaths, url: str, key: bytes | None = KEY):  # type: ignore[no-untyped-def]
    return ingest(log_root=paths.log_root, workspace_root=paths.workspace_root, db_url=url, signing_key=key)


def _only_bad(url: str, bad: int, kind: str, file_part: str) -> None:
    loops = loops_by_id(url)
    assert sorted(loops) == [0, 1, 2, 3, 4], "every loop is recorded"
    assert loops[bad].error is not None and file_part in loops[bad].error
    kinds = {e["kind"] for e in loops[bad].errors_json}
    assert kind in kinds, loops[bad].errors_json
    for i, lp in loops.items():
        if i != bad:
            assert lp.error is None, (i, lp.error)
    assert [loops[i].has_result for i in (0, 1, 2, 3) if i != bad] == [1] * (3 if bad < 4 else 4)


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
def test_truncated_or_corrupt_pickle(db_url: str, trace: tracegen.TracePaths, how: str) -> None:
    bad = _pickle(trace.run_dir, 1, "feedback")
    if how == "truncated":
        tracegen.truncate_pickle(bad)
    else:
        bad.write_bytes(b"RDAGENT_SIGNED_PICKLE_V1\n" + b"\0" * 32 + b"this is not a pickle at all")
    # without the key the damage itself is named; with it, the signature fails first (a damaged file is a tampered one)
    report = _ingest(trace, db_url, key=None)
    assert not report.ok
    assert [i.file for i in report.issues] == [str(bad)]
    _only_bad(db_url, 1, "truncated" if how == "truncated" else "corrupt", bad.name)
    assert _ingest(trace, db_url).issues[0].kind == "tampered"
    # everything else of the loop is still read: hypothesis, tasks, metrics
    lp = loops_by_id(db_url)[1]
    assert lp.hypothesis and lp.has_result == 1 and lp.feedback_json is None


def test_forbidden_class_is_refused_and_never_runs(db_url: str, trace: tracegen.TracePaths, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = _pickle(trace.run_dir, 2, "hypothesis generation")
    tracegen.write_forbidden_pickle(bad, KEY, marker)
    report = _ingest(trace, db_url)
    assert not marker.exists(), "the shell command in the pickle ran"
    assert any(i.kind == "forbidden_class" and "system" in i.message for i in report.issues), report.issues
    _only_bad(db_url, 2, "forbidden_class", bad.name)


def test_tampered_signature_loads_nothing_from_the_file(db_url: str, trace: tracegen.TracePaths) -> None:
    bad = _pickle(trace.run_dir, 0, "feedback")
    tracegen.tamper_pickle(bad)
    _ingest(trace, db_url)
    _only_bad(db_url, 0, "tampered", bad.name)
    lp = loops_by_id(db_url)[0]
    assert lp.feedback_json is None and lp.signature_status == "tampered"


def test_missing_workspace_is_recorded(db_url: str, trace: tracegen.TracePaths) -> None:
    ids = tracegen.loop_workspace_ids(3)
    tracegen.remove_workspace(trace, ids["tasks"][0])
    report = _ingest(trace, db_url)
    assert any(i.kind == "missing_workspace" and ids["tasks"][0] in i.file for i in report.issues), report.issues
    ws = query(db_url, select(Workspace).where(Workspace.workspace_id == ids["tasks"][0]))
    assert len(ws) == 1 and ws[0].exists is False and ws[0].workspace_path is None
    _only_bad(db_url, 3, "missing_workspace", ids["tasks"][0])


def test_damage_after_a_good_ingest_loses_nothing(db_url: str, trace: tracegen.TracePaths) -> None:
    _ingest(trace, db_url)
    good = loops_by_id(db_url)[1]
    tasks_before = [(t.name, t.workspace_id) for t in query(db_url, select(Task).where(Task.loop_id == 1))]
    tracegen.truncate_pickle(_pickle(trace.run_dir, 1, "runner result"))
    tracegen.truncate_pickle(_pickle(trace.run_dir, 1, "experiment generation"))
    report = _ingest(trace, db_url)
    assert report.counts.loops_updated == 1 and report.counts.loops_unchanged == 4
    after = loops_by_id(db_url)[1]
    assert after.error is not None
    assert after.metrics_json == good.metrics_json and after.has_result == 1
    assert after.hypothesis == good.hypothesis
    assert [(t.name, t.workspace_id) for t in query(db_url, select(Task).where(Task.loop_id == 1))] == tasks_before
    errored = query(db_url, select(TraceFile).where(TraceFile.status == "error"))
    assert len(errored) == 2


@pytest.mark.parametrize("damage", ["tampered", "deleted"])
def test_lost_feedback_after_a_good_ingest_keeps_the_loop_final(db_url: str, trace: tracegen.TracePaths,
                                                                damage: str) -> None:
    _ingest(trace, db_url)
    before = loops_by_id(db_url)[2]
    assert (before.status, before.materialization_status) == ("completed", "pending")
    feedback = _pickle(trace.run_dir, 2, "feedback")
    if damage == "tampered":
        tracegen.tamper_pickle(feedback)
    else:
        feedback.unlink()
    report = _ingest(trace, db_url)
    assert report.counts.loops_updated == 1
    after = loops_by_id(db_url)[2]
    if damage == "tampered":
        assert after.error is not None and "tampered" in {e["kind"] for e in after.errors_json}
    assert (after.status, after.action, after.decision) == ("completed", before.action, before.decision)
    assert after.feedback_json == before.feedback_json and after.metrics_json == before.metrics_json


def test_errors_are_retried_and_cleared_when_fixed(sqlite_url: str, trace: tracegen.TracePaths) -> None:
    ids = tracegen.loop_workspace_ids(0)
    moved = trace.workspace_root / ids["experiment"]
    hidden = moved.with_name("hidden")
    moved.rename(hidden)
    r1 = _ingest(trace, sqlite_url)
    assert r1.counts.loops_with_errors == 1
    hidden.rename(moved)
    r2 = _ingest(trace, sqlite_url)
    assert r2.counts.loops_updated == 1 and r2.ok
    assert loops_by_id(sqlite_url)[0].error is None


def test_legacy_unsigned_trace(sqlite_url: str, tmp_path: Path) -> None:
    paths = tracegen.write_trace(tmp_path / "legacy", loops=3, legacy=True)
    report = _ingest(paths, sqlite_url, key=KEY)
    assert report.ok, report.issues
    loops = loops_by_id(sqlite_url)
    assert {lp.signature_status for lp in loops.values()} == {"unsigned"}
    assert [loops[i].has_result for i in range(3)] == [1, 1, 0]


def test_missing_roots_are_clear_errors(sqlite_url: str, sample: Trace, tmp_path: Path) -> None:
    with pytest.raises(IngestInputError, match="--log-root .*nope: no such folder"):
        ingest(log_root=tmp_path / "nope", workspace_root=sample.workspace_root, db_url=sqlite_url)
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(IngestInputError, match="--workspace-root .*file.txt: not a folder"):
        ingest(log_root=sample.log_root, workspace_root=f, db_url=sqlite_url)


def test_unknown_tags_and_stray_files_are_ignored(sqlite_url: str, sample: Trace) -> None:
    run = sample.run_dir
    (run / "__session__" / "0" / "0_direct_exp_gen").mkdir(parents=True)
    (run / "__session__" / "0" / "0_direct_exp_gen" / "blob").write_bytes(b"\x80\x05not read")
    odd = run / "Loop_0" / "coding" / "some new tag" / "1"
    odd.mkdir(parents=True)
    (odd / "2026-01-01_00-00-00-000000.pkl").write_bytes(b"garbage that would fail to unpickle")
    (run / "notes.txt").write_text("hello")
    report = ingest(log_root=sample.log_root, workspace_root=sample.workspace_root, db_url=sqlite_url,
                    signing_key=sample.key)
    assert report.ok, report.issues
    assert report.counts.loops_seen == 4


def test_reingest_of_a_damaged_trace_changes_nothing_but_still_reports(sqlite_url: str,
                                                                       trace: tracegen.TracePaths) -> None:
    tracegen.truncate_pickle(_pickle(trace.run_dir, 1, "feedback"))
    first = _ingest(trace, sqlite_url, key=None)
    second = _ingest(trace, sqlite_url, key=None)
    assert first.changes == 6 and len(first.issues) == 1
    assert second.changes == 0 and second.counts.loops_unchanged == 5
    assert [i.kind for i in second.issues] == ["truncated"], "a damaged loop is re-read and reported every time"
