"""The bundled genuine fin_factor trace: what the issue's 'Must show' lists, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select

from rdbridge.ingest import ingest
from rdbridge.registry import ArtifactFile, Factor, Task, TaskRun, Workspace

from .conftest import Trace, loops_by_id, query


def _qlib_res(path: Path) -> dict[str, float]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return {name: float(value) for name, value in rows}


def test_sample_gives_one_run_four_loops_three_results(db_url: str, sample: Trace) -> None:
    report = ingest(log_root=sample.log_root, workspace_root=sample.workspace_root, db_url=db_url,
                    signing_key=sample.key)
    assert report.ok, report.issues
    assert (report.counts.task_runs_new, report.counts.loops_new) == (1, 4)

    runs = query(db_url, select(TaskRun))
    assert len(runs) == 1
    run = runs[0]
    assert run.scenario == "fin_factor" and run.loop_count == 4 and run.status == "completed"
    assert run.log_trace_path == str(sample.run_dir.resolve())

    loops = loops_by_id(db_url)
    assert sorted(loops) == [0, 1, 2, 3]
    assert [loops[i].has_result for i in range(4)] == [1, 1, 1, 0]
    assert loops[3].status == "failed" and loops[3].metrics_json is None
    assert "FactorEmptyError" in (loops[3].feedback_json or {}).get("observations", "")
    for lp in loops.values():
        assert lp.experiment_id == f"{run.task_run_id}/{lp.loop_id}"
        assert lp.action == "factor"
        assert lp.signature_status == "verified"
        assert lp.materialization_status == "pending"
        assert lp.materialization_updated_at_utc is not None
        assert lp.hypothesis and lp.hypothesis.startswith(f"Loop {lp.loop_id}:")
        assert lp.feedback_json is not None and lp.decision is not None

    # metrics equal the experiment workspace's qlib_res.csv, value for value
    for lp in (loops[0], loops[1], loops[2]):
        ws_dir = sample.workspace_root / lp.experiment_workspace_id
        assert lp.metrics_json == _qlib_res(ws_dir / "qlib_res.csv")
        assert lp.best_workspace_id == lp.experiment_workspace_id

    # tasks and workspaces linked: every task's workspace exists, is a factor workspace of the same loop
    tasks = query(db_url, select(Task))
    workspaces = {w.workspace_id: w for w in query(db_url, select(Workspace))}
    assert len(tasks) == 6
    for t in tasks:
        ws = workspaces[t.workspace_id]
        assert (ws.kind, ws.loop_id, ws.task_index, ws.exists) == ("factor", t.loop_id, t.task_index, True)
        assert Path(ws.workspace_path) == (sample.workspace_root / t.workspace_id).resolve()
        assert t.name in (Path(ws.workspace_path) / "factor.py").read_text()
    assert {w.kind for w in workspaces.values()} == {"factor", "experiment"}
    assert all(w.recorded_path.startswith("/home/quant/") for w in workspaces.values())

    factors = query(db_url, select(Factor))
    assert sorted(f.factor_name for f in factors) == sorted(t.name for t in tasks)

    files = query(db_url, select(ArtifactFile))
    assert {"factor.py", "result.h5", "qlib_res.csv", "ret.parquet", "conf_baseline.yaml"} <= {f.path for f in files}
    qlib_res_rows = [f for f in files if f.path == "qlib_res.csv"]
    assert len(qlib_res_rows) == 3
    assert all(f.size_bytes and len(f.sha256 or "") == 64 and f.mime_type == "text/csv" for f in qlib_res_rows)


def test_second_ingest_reports_zero_changes(db_url: str, sample: Trace) -> None:
    first = ingest(log_root=sample.log_root, workspace_root=sample.workspace_root, db_url=db_url,
                   signing_key=sample.key)
    before = {i: (lp.updated_at_utc, lp.trace_fingerprint) for i, lp in loops_by_id(db_url).items()}
    second = ingest(log_root=sample.log_root, workspace_root=sample.workspace_root, db_url=db_url,
                    signing_key=sample.key)
    assert first.changes == 5
    assert second.changes == 0
    assert second.counts.loops_unchanged == 4
    assert {i: (lp.updated_at_utc, lp.trace_fingerprint) for i, lp in loops_by_id(db_url).items()} == before


def test_no_key_says_unverified_and_a_later_key_verifies(db_url: str, sample: Trace) -> None:
    r1 = ingest(log_root=sample.log_root, workspace_root=sample.workspace_root, db_url=db_url)
    assert r1.signature_check.startswith("no key")
    assert {lp.signature_status for lp in loops_by_id(db_url).values()} == {"unverified"}
    r2 = ingest(log_root=sample.log_root, workspace_root=sample.workspace_root, db_url=db_url, signing_key=sample.key)
    assert r2.counts.loops_updated == 4
    assert {lp.signature_status for lp in loops_by_id(db_url).values()} == {"verified"}
    r3 = ingest(log_root=sample.log_root, workspace_root=sample.workspace_root, db_url=db_url)
    assert r3.changes == 0, "running again without the key does not downgrade verified loops"


def test_log_root_may_be_the_run_folder_itself(sqlite_url: str, sample: Trace) -> None:
    report = ingest(log_root=sample.run_dir, workspace_root=sample.workspace_root, db_url=sqlite_url)
    assert report.counts.loops_seen == 4 and report.task_run_ids == [sample.run_dir.name]
