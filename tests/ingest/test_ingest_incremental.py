"""A trace still being written: later ingests pick up new loops and new steps; finished loops become pending."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from rdbridge.ingest import ingest
from rdbridge.registry import TaskRun
from support import tracegen

from .conftest import loops_by_id, query

KEY = b"k" * 32


def _ingest(paths: tracegen.TracePaths, url: str):  # type: ignore[no-untyped-def]
    return ingest(log_root=paths.log_root, workspace_root=paths.workspace_root, db_url=url, signing_key=KEY)


def test_growing_trace(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "grow"
    paths = tracegen.write_trace(out, loops=2, key=KEY, fail_last=False)
    # loop 2 is mid-flight: proposed and coded, not yet run
    tracegen.append_step(out, 2, "direct_exp_gen", key=KEY)
    tracegen.append_step(out, 2, "coding", key=KEY)
    r1 = _ingest(paths, db_url)
    assert (r1.counts.loops_new, r1.counts.loops_marked_pending) == (3, 2)
    loops = loops_by_id(db_url)
    assert loops[2].status == "running" and loops[2].materialization_status is None and loops[2].has_result == 0

    # RD-Agent goes on: loop 2 runs and gets feedback, loop 3 appears
    tracegen.append_step(out, 2, "running", key=KEY)
    tracegen.append_step(out, 2, "feedback", key=KEY)
    tracegen.write_trace(out, loops=1, start_loop=3, key=KEY, fail_last=False)
    r2 = _ingest(paths, db_url)
    assert (r2.counts.loops_new, r2.counts.loops_updated, r2.counts.loops_unchanged) == (1, 1, 2)
    loops = loops_by_id(db_url)
    assert loops[2].status == "completed" and loops[2].has_result == 1
    assert loops[2].materialization_status == "pending"
    assert loops[3].status == "completed"

    assert _ingest(paths, db_url).changes == 0


def test_changed_finished_loop_is_queued_again(sqlite_url: str, tmp_path: Path) -> None:
    from rdbridge.registry import Loop, make_engine, session_scope

    paths = tracegen.write_trace(tmp_path / "t", loops=2, key=KEY, fail_last=False)
    _ingest(paths, sqlite_url)
    engine = make_engine(sqlite_url)
    with session_scope(engine) as s:  # a materializer finished loop 0
        lp = s.query(Loop).filter_by(loop_id=0).one()
        lp.materialization_status = "done"
    engine.dispose()
    # RD-Agent logs feedback for loop 0 again (a re-run of the step writes a newer pickle)
    tracegen.append_step(tmp_path / "t", 0, "feedback", key=KEY, pid=4343)
    r = _ingest(paths, sqlite_url)
    assert r.counts.loops_updated == 1
    assert loops_by_id(sqlite_url)[0].materialization_status == "pending"


def test_log_root_with_several_runs(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "multi"
    a = tracegen.write_trace(out, loops=2, key=KEY, run_name="2026-01-05_08-00-07-000000")
    tracegen.write_trace(out, loops=3, key=KEY, run_name="2026-02-01_09-30-00-000000", scenario="fin_quant", seed=3)
    report = _ingest(a, db_url)
    assert report.ok, report.issues
    assert sorted(report.task_run_ids) == ["2026-01-05_08-00-07-000000", "2026-02-01_09-30-00-000000"]
    assert (report.counts.task_runs_new, report.counts.loops_new) == (2, 5)
    runs = {r.task_run_id: r for r in query(db_url, select(TaskRun))}
    assert runs["2026-01-05_08-00-07-000000"].scenario == "fin_factor"
    assert runs["2026-02-01_09-30-00-000000"].scenario == "fin_quant"
    assert runs["2026-02-01_09-30-00-000000"].loop_count == 3
