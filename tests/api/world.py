"""A small registry world for the API tests: runs, loops, tasks, factors with odd names, workspaces and artifact
files on disk - good ones and every kind of bad one (symlink escape, `..`, absolute, changed, missing, a workspace
outside its run's root, a store folder linked out of the store)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine

from rdbridge.registry import (
    Artifact,
    ArtifactFile,
    Factor,
    Loop,
    Task,
    TaskRun,
    Workspace,
    experiment_id_for,
    session_scope,
)

RUN_A = "2025-03-01_09-00-00-000000"
RUN_B = "2025-03-02_09-00-00-000000"
T0 = datetime(2025, 3, 1, 9, tzinfo=timezone.utc)
ODD_NAMES = ("動量_因子/σ 10日", "100%_ratio?#&x=1", "KMID", "Mom_10D")
METRICS = {"IC": 0.03, "Rank IC": 0.04, "1day.excess_return_with_cost.annualized_return": 0.1,
           "1day.excess_return_with_cost.max_drawdown": -0.1, "1day.ffr": 1.0}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class World:
    root: Path
    store: Path
    ws_root: Path
    secret: bytes = b"TOP SECRET outside every root\n"
    files: dict[str, int] = field(default_factory=dict)
    """label -> artifact file id."""
    contents: dict[str, bytes] = field(default_factory=dict)
    loops: list[tuple[str, int]] = field(default_factory=list)


def _ws_file(art: Artifact, path: str, data: bytes | None, *, registered_sha: str | None = None,
             size: int | None = None, link: bool = False) -> ArtifactFile:
    return ArtifactFile(path=path, size_bytes=size if size is not None else len(data or b""),
                        sha256=registered_sha if registered_sha is not None else sha(data or b""),
                        mime_type="text/plain", is_symlink=link)


def build_world(engine: Engine, root: Path) -> World:
    """Seed the registry behind `engine` and the folders under `root`; returns what the tests need to know."""
    w = World(root=root, store=root / "home" / "artifacts", ws_root=root / "workspace")
    outside = root / "outside"
    for d in (w.store, w.ws_root, outside):
        d.mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_bytes(w.secret)
    ws_good = w.ws_root / "ws_good"
    ws_good.mkdir()
    factor_py = b"def factor():\n    return 1\n"
    (ws_good / "factor.py").write_bytes(factor_py)
    (ws_good / "sub").mkdir()
    (ws_good / "sub" / "réponse ü.txt").write_bytes("unicode name\n".encode())
    os.symlink(outside / "secret.txt", ws_good / "leak.txt")  # a symlink out of the workspace
    (ws_good / "changed.txt").write_bytes(b"changed after ingest\n")
    ws_evil = outside / "ws_evil"  # a workspace folder that is not under the run's workspace root
    ws_evil.mkdir()
    (ws_evil / "factor.py").write_bytes(factor_py)
    store_doc = b'{"factor": "Mom_10D"}\n'
    (w.store / RUN_A / "0").mkdir(parents=True)
    (w.store / RUN_A / "0" / "factor_meta.json").write_bytes(store_doc)
    os.symlink(outside, w.store / RUN_A / "0" / "linked_dir")  # a folder link out of the store
    big = os.urandom(17 * 1024 * 1024 + 5)  # above the in-memory limit: streamed
    (w.store / RUN_A / "0" / "big.bin").write_bytes(big)
    confs = {"conf_baseline.yaml": b"strategy: topk 50\n", "conf_combined_factors.yaml": b"strategy: topk 30\n"}
    for i in range(3):
        d = w.ws_root / f"ws_exp{i}"
        d.mkdir()
        for name, data in confs.items():
            (d / name).write_bytes(data if i < 2 else data + b"# different\n")
    w.contents.update(good=factor_py, unicode="unicode name\n".encode(), store=store_doc, big=big)

    with session_scope(engine) as s:
        for run, n in ((RUN_A, 5), (RUN_B, 3)):
            s.add(TaskRun(task_run_id=run, run_folder=str(root / "log" / run), scenario="fin_quant",
                          log_trace_path=str(root / "log" / run), workspace_root=str(w.ws_root),
                          status="completed" if run == RUN_A else "running", loop_count=n, started_at_utc=T0))
        s.flush()
        plan = [  # run, loop, action, has_result, decision, materialization, updated offset (days)
            (RUN_A, 0, "factor", True, True, "done", 0), (RUN_A, 1, "factor", True, False, "failed", 1),
            (RUN_A, 2, "model", True, True, "pending", 2), (RUN_A, 3, "factor", False, None, "pending", 3),
            (RUN_A, 4, "quant", False, None, None, 4),
            (RUN_B, 0, "factor", True, True, "done", 5), (RUN_B, 1, "model", False, None, "running", 6),
            (RUN_B, 2, "factor", True, False, "pending", 7),
        ]
        for run, i, action, res, dec, mat, days in plan:
            s.add(Loop(task_run_id=run, loop_id=i, experiment_id=experiment_id_for(run, i), action=action,
                       status="completed", hypothesis=f"hypothesis {run[:10]} loop {i} {action}",
                       has_result=int(res), metrics_json=dict(METRICS, IC=0.01 * (i + 1)) if res else None,
                       decision=dec, materialization_status=mat,
                       materialization_error="boom" if mat == "failed" else None,
                       updated_at_utc=T0 + timedelta(days=days), started_at_utc=T0))
            w.loops.append((run, i))
        s.flush()
        e = experiment_id_for
        for k, name in enumerate(ODD_NAMES):
            eid = e(RUN_A, 0) if k < 2 else e(RUN_A, 1) if k == 2 else e(RUN_B, 2)
            s.add(Task(experiment_id=eid, task_run_id=eid.split("/")[0], loop_id=int(eid.split("/")[1]),
                       task_index=k, task_type="factor", name=name, description=f"desc of {name}",
                       formulation=f"formula {k}", variables_json={"x": "close"}))
            s.add(Factor(factor_id=f"f{k:015d}", factor_name=name, experiment_id=eid, task_run_id=eid.split("/")[0],
                         loop_id=int(eid.split("/")[1]), description=f"desc of {name}", formulation=f"formula {k}",
                         variables_json={"x": "close"}, code_sha256=sha(name.encode()),
                         created_at_utc=T0 + timedelta(hours=k)))
        s.add(Task(experiment_id=e(RUN_A, 2), task_run_id=RUN_A, loop_id=2, task_index=0, task_type="model",
                   name="GRU_20D", description="a GRU", architecture="GRU -> Linear", model_type="TimeSeries",
                   hyperparameters_json={"hidden": 64}, training_hyperparameters_json={"lr": 0.001}))
        s.add(Task(experiment_id=e(RUN_B, 1), task_run_id=RUN_B, loop_id=1, task_index=0, task_type="model",
                   name="LGBM_Tab", description="trees", architecture="LightGBM", model_type="Tabular",
                   hyperparameters_json={"leaves": 31}, training_hyperparameters_json=None))
        ws_rows = [("ws_good", ws_good, e(RUN_A, 0), "factor"), ("ws_evil", ws_evil, e(RUN_A, 1), "factor")]
        ws_rows += [(f"ws_exp{i}", w.ws_root / f"ws_exp{i}", e(RUN_A, i) if i < 2 else e(RUN_B, 0), "experiment")
                    for i in range(3)]
        for wid, path, eid, kind in ws_rows:
            s.add(Workspace(workspace_id=wid, task_run_id=eid.split("/")[0], loop_id=int(eid.split("/")[1]),
                            experiment_id=eid, kind=kind, recorded_path=f"/home/quant/ws/{wid}",
                            workspace_path=str(path), exists=True))
        s.flush()

        def art(eid: str, wid: str | None, atype: str, name: str, root_kind: str,
                files: list[tuple[str, ArtifactFile]]) -> None:
            a = Artifact(task_run_id=eid.split("/")[0], loop_id=int(eid.split("/")[1]), experiment_id=eid,
                         workspace_id=wid, artifact_type=atype, name=name, root_kind=root_kind, status="present")
            s.add(a)
            s.flush()
            for label, f in files:
                f.artifact_id = a.artifact_id
                s.add(f)
                s.flush()
                w.files[label] = f.id

        a0 = e(RUN_A, 0)
        art(a0, "ws_good", "factor_workspace", "ws_good", "workspace", [
            ("good", _ws_file(None, "factor.py", factor_py)),  # type: ignore[arg-type]
            ("unicode", _ws_file(None, "sub/réponse ü.txt", "unicode name\n".encode())),  # type: ignore[arg-type]
            ("leak", _ws_file(None, "leak.txt", w.secret, link=True)),  # type: ignore[arg-type]
            ("changed", _ws_file(None, "changed.txt", b"changed after ingest\n",  # type: ignore[arg-type]
                                 registered_sha=sha(b"what ingest saw"))),
            ("dotdot", _ws_file(None, "../outside/secret.txt", w.secret)),  # type: ignore[arg-type]
            ("absolute", _ws_file(None, str(outside / "secret.txt"), w.secret)),  # type: ignore[arg-type]
            ("missing", _ws_file(None, "gone.txt", b"was here")),  # type: ignore[arg-type]
            ("dir", _ws_file(None, "sub", b"")),  # type: ignore[arg-type]
        ])
        art(e(RUN_A, 1), "ws_evil", "factor_workspace", "ws_evil", "workspace", [
            ("evil_ws", _ws_file(None, "factor.py", factor_py)),  # type: ignore[arg-type]
        ])
        art(a0, None, "factor_meta", "factor_meta.json", "store", [
            ("store", _ws_file(None, f"{RUN_A}/0/factor_meta.json", store_doc)),  # type: ignore[arg-type]
            ("store_link", _ws_file(None, f"{RUN_A}/0/linked_dir/secret.txt", w.secret)),  # type: ignore
            ("big", _ws_file(None, f"{RUN_A}/0/big.bin", big)),  # type: ignore[arg-type]
        ])
        for i in range(3):
            eid = e(RUN_A, i) if i < 2 else e(RUN_B, 0)
            files = []
            for name, data in confs.items():
                body = data if i < 2 else data + b"# different\n"
                files.append((f"conf{i}_{name}", _ws_file(None, name, body)))  # type: ignore[arg-type]
            art(eid, f"ws_exp{i}", "experiment_workspace", f"ws_exp{i}", "workspace", files)
    return w
