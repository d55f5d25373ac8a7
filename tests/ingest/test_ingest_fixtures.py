"""Ingest of the other genuine traces: fin_quant (factor + model loops), awkward names, legacy, Windows paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from rdbridge.ingest import ingest
from rdbridge.registry import Factor, Task, TaskRun, Workspace
from support import tracegen

from .conftest import loops_by_id, query

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _copy(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(FIXTURES / name, dst, symlinks=True)
    return dst


def _key(root: Path) -> bytes | None:
    f = root / "artifact_signing.key"
    return f.read_bytes() if f.exists() else None


def test_fin_quant_factor_and_model_loops(db_url: str, tmp_path: Path) -> None:
    root = _copy("rdagent_fin_quant_trace", tmp_path)
    report = ingest(log_root=root / "log", workspace_root=root / "workspace", db_url=db_url, signing_key=_key(root))
    assert report.ok, report.issues
    assert query(db_url, select(TaskRun.scenario)) == ["fin_quant"]
    loops = loops_by_id(db_url)
    assert [loops[i].action for i in sorted(loops)] == ["factor", "factor", "model", "factor", "factor", "model"]
    assert [loops[i].has_result for i in sorted(loops)] == [1, 1, 1, 1, 1, 0]
    assert loops[5].status == "failed" and "ModelEmptyError" in loops[5].feedback_json["observations"]
    models = query(db_url, select(Task).where(Task.task_type == "model").order_by(Task.loop_id))
    assert [m.loop_id for m in models] == [2, 5]
    m = models[0]
    assert m.architecture and m.model_type in {"TimeSeries", "Tabular"}
    assert set(m.hyperparameters_json) and "lr" in m.training_hyperparameters_json
    ws = query(db_url, select(Workspace).where(Workspace.experiment_id == loops[2].experiment_id))
    assert {w.kind for w in ws} >= {"model", "experiment"}
    # metrics of the model loop equal its qlib_res.csv
    res = pd.read_csv(root / "workspace" / loops[2].experiment_workspace_id / "qlib_res.csv", index_col=0).iloc[:, 0]
    assert loops[2].metrics_json == {k: float(v) for k, v in res.items()}


def test_awkward_names_are_kept_exactly_and_reuse_is_a_new_factor(db_url: str, tmp_path: Path) -> None:
    root = _copy("rdagent_fin_factor_hard_trace", tmp_path)
    report = ingest(log_root=root / "log", workspace_root=root / "workspace", db_url=db_url, signing_key=_key(root))
    assert report.ok, report.issues
    names = [t.name for t in query(db_url, select(Task))]
    assert "动量_5日" in names and "Vol-Adj Momentum (10D)" in names
    reused = query(db_url, select(Factor).where(Factor.factor_name == "Intraday_Range_Pos"))
    assert len(reused) == 2, "same name, new code: two factor implementations"
    assert len({f.code_sha256 for f in reused}) == 2 and len({f.experiment_id for f in reused}) == 2


def test_genuine_legacy_trace(sqlite_url: str, tmp_path: Path) -> None:
    root = _copy("rdagent_legacy_fin_factor_trace", tmp_path)
    report = ingest(log_root=root / "log", workspace_root=root / "workspace", db_url=sqlite_url, signing_key=b"x" * 32)
    assert report.ok, report.issues
    loops = loops_by_id(sqlite_url)
    assert [loops[i].has_result for i in range(4)] == [1, 1, 1, 0]
    assert {lp.signature_status for lp in loops.values()} == {"unsigned"}


def test_windows_recorded_paths_resolve_by_folder_name(sqlite_url: str, tmp_path: Path) -> None:
    paths = tracegen.write_trace(tmp_path / "win", loops=3, workspace_path_style="windows")
    report = ingest(log_root=paths.log_root, workspace_root=paths.workspace_root, db_url=sqlite_url,
                    signing_key=b"k" * 32)
    assert report.ok, report.issues
    ws = query(sqlite_url, select(Workspace))
    assert ws and all(w.exists for w in ws)
    assert all("\\" in (w.recorded_path or "") for w in ws), [w.recorded_path for w in ws][:2]
    assert [loops_by_id(sqlite_url)[i].has_result for i in range(3)] == [1, 1, 0]
