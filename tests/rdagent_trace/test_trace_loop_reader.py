"""Loop interpretation on genuine traces (fin_factor sample, fin_quant fixture) and on hand-written edge cases."""

from __future__ import annotations

import shutil
from pathlib import Path, PureWindowsPath

import pandas as pd

from rdbridge.contracts.trace import FactorTaskInfo, ModelTaskInfo
from rdbridge.rdagent_trace import load_signing_key, read_loop, read_run, read_run_loops, scan_run
from rdbridge.rdagent_trace.loop_reader import ReadOptions
from rdtrace_helpers import LEGACY, QUANT, SAMPLE, copy_trace, only_run


def _csv_metrics(ws_dir: Path) -> dict[str, float]:
    """Independent reading of Qlib's metrics csv with pandas (not our parser)."""
    s = pd.read_csv(ws_dir / "qlib_res.csv", index_col=0).iloc[:, 0]
    return {str(k): float(v) for k, v in s.items()}


def _read(root: Path, *, key: bytes | None = None, ws_root: Path | None = None):
    # daily_pv.h5 links point into the trace's data folder, which is trusted only when named (--data-root)
    data = (root / "data",) if (root / "data").is_dir() else ()
    return read_run_loops(only_run(root), ws_root or root / "workspace", key=key, options=ReadOptions(data_roots=data))


# ---------------------------------------------------------------- fin_factor sample


def test_sample_loops_status_metrics_and_feedback() -> None:
    key = load_signing_key(SAMPLE / "artifact_signing.key")
    run, loops = _read(SAMPLE, key=key)
    assert run.scenario == "fin_factor" and run.loop_ids == [0, 1, 2, 3]
    assert run.started_at_utc is not None and run.run_folder == only_run(SAMPLE).name
    assert [lp.status for lp in loops] == ["completed", "completed", "completed", "failed"]
    for lp in loops[:3]:
        exp_ws = next(w for w in lp.workspaces if w.workspace_id == lp.experiment_workspace_id)
        assert exp_ws.kind == "experiment" and exp_ws.exists
        assert lp.metrics == _csv_metrics(Path(exp_ws.workspace_path))
        assert lp.metrics_source == "runner_result"
        assert lp.feedback is not None and lp.feedback.decision is not None
        assert lp.signature == "verified" and lp.errors == []
        assert lp.action == "factor" and lp.last_step == "feedback"
    failed = loops[3]
    assert failed.metrics is None and failed.experiment_workspace_id is None
    assert failed.feedback is not None and failed.feedback.decision is False
    assert "FactorEmptyError" in (failed.feedback.observations or "")
    assert {e.step for e in failed.entries} == {"direct_exp_gen", "coding", "feedback"}


def test_sample_tasks_link_to_their_workspaces() -> None:
    _run, loops = _read(SAMPLE)
    for lp in loops:
        assert lp.tasks and all(isinstance(t, FactorTaskInfo) for t in lp.tasks)
        subs = [w for w in lp.workspaces if w.kind == "factor"]
        assert len(subs) == len(lp.tasks)
        for w in subs:
            task = lp.tasks[w.task_index]
            on_disk = (Path(w.workspace_path) / "factor.py").read_text()
            assert w.code["factor.py"] == on_disk
            assert f"calculate_{task.factor_name}(" in on_disk  # the generator names the function after the factor
            assert "/home/quant/" in w.recorded_path  # recorded on another machine, resolved here by folder name
            link = next(f for f in w.files if f.relpath == "daily_pv.h5")
            assert link.is_symlink and not link.dangling and link.sha256


def test_signature_unverified_without_key_and_tampered_detected(tmp_path: Path) -> None:
    _run, loops = _read(SAMPLE)
    assert {lp.signature for lp in loops} == {"unverified"}
    root = copy_trace(SAMPLE, tmp_path / "t")
    fb = next((only_run(root) / "Loop_1" / "feedback").rglob("*.pkl"))
    data = bytearray(fb.read_bytes())
    data[data.index(b"decision")] = ord("D")
    fb.write_bytes(bytes(data))
    _run, loops = _read(root, key=load_signing_key(root / "artifact_signing.key"))
    lp = loops[1]
    assert lp.signature == "tampered"
    assert [(e.kind, Path(e.file)) for e in lp.errors] == [("tampered", fb)]
    assert lp.feedback is None  # nothing is taken from a tampered file
    assert lp.hypothesis is not None and lp.tasks and lp.metrics  # everything else is kept
    assert loops[0].signature == "verified"


def test_rereading_gives_an_equal_snapshot() -> None:
    assert _read(SAMPLE)[1] == _read(SAMPLE)[1]


def test_missing_workspace_and_dangling_links(tmp_path: Path) -> None:
    root = copy_trace(SAMPLE, tmp_path / "t")
    shutil.rmtree(root / "data")  # every daily_pv.h5 link now dangles, as in a trace copied from another machine
    _run, loops = _read(root)
    gone = next(w for w in loops[0].workspaces if w.kind == "factor")
    shutil.rmtree(root / "workspace" / gone.workspace_id)
    _run, loops = _read(root)
    lp = loops[0]
    w = next(w for w in lp.workspaces if w.workspace_id == gone.workspace_id)
    assert not w.exists and w.workspace_path is None and w.files == []
    assert "factor.py" in w.code  # still known from the trace
    assert [e.kind for e in lp.errors] == ["missing_workspace"] and gone.workspace_id in lp.errors[0].file
    assert lp.status == "completed" and lp.metrics  # the loop keeps everything else
    link = next(f for w2 in loops[1].workspaces if w2.kind == "factor" for f in w2.files if f.relpath == "daily_pv.h5")
    assert link.is_symlink and link.dangling and link.sha256 is None


def test_legacy_trace_is_unsigned_and_reads_the_same() -> None:
    _run, loops = _read(LEGACY)
    assert {lp.signature for lp in loops} == {"unsigned"}
    assert [lp.status for lp in loops] == ["completed", "completed", "completed", "failed"]
    for lp in loops[:3]:
        exp_ws = next(w for w in lp.workspaces if w.workspace_id == lp.experiment_workspace_id)
        assert lp.metrics == _csv_metrics(Path(exp_ws.workspace_path))


# ---------------------------------------------------------------- fin_quant fixture


def test_quant_actions_model_tasks_and_failed_last_loop() -> None:
    key = load_signing_key(QUANT / "artifact_signing.key")
    run, loops = _read(QUANT, key=key)
    assert run.scenario == "fin_quant" and run.loop_ids == [0, 1, 2, 3, 4, 5]
    # the generator makes every third loop a model loop
    assert [lp.action for lp in loops] == ["factor", "factor", "model", "factor", "factor", "model"]
    assert [lp.status for lp in loops] == ["completed"] * 5 + ["failed"]
    assert {lp.signature for lp in loops} == {"verified"}
    for lp in (loops[2], loops[5]):
        (task,) = lp.tasks
        assert isinstance(task, ModelTaskInfo)
        assert task.architecture and task.model_type in ("TimeSeries", "Tabular")
        assert task.hyperparameters and "lr" in task.training_hyperparameters
        assert lp.hypothesis is not None and lp.hypothesis.action == "model"
        model_ws = next(w for w in lp.workspaces if w.kind == "model")
        assert model_ws.task_index == 0 and "class Net" in model_ws.code["model.py"]
    exp_ws = next(w for w in loops[2].workspaces if w.workspace_id == loops[2].experiment_workspace_id)
    assert loops[2].metrics == _csv_metrics(Path(exp_ws.workspace_path))
    last = loops[5]
    assert last.metrics is None and "ModelEmptyError" in (last.feedback.observations or "")
    assert last.experiment_workspace_id is not None  # the coder result holds the whole experiment in fin_quant
    assert last.errors == []


def test_read_run_alone_is_cheap_and_right() -> None:
    scan = scan_run(only_run(QUANT))
    run = read_run(only_run(QUANT), QUANT / "workspace", scan=scan)
    assert run.scenario == "fin_quant" and run.loop_ids == scan.loop_ids


# ---------------------------------------------------------------- hand-written edge cases


def _hypo(c, **kw):
    return c["Hypothesis"](hypothesis="h", reason="r", concise_reason="cr", concise_observation="co",
                           concise_justification="cj", concise_knowledge="ck", **kw)


def _factor_task(c, name):
    return c["FactorTask"](factor_name=name, description=f"{name} desc", factor_formulation="x", variables={"w": 5},
                           name=name, version=1)


def _fws(c, task, path, code):
    return c["FactorFBWorkspace"](target_task=task, file_dict={"factor.py": code}, workspace_path=path,
                                  running_info=c["RunningInfo"](result=None))


def test_windows_recorded_paths_resolve_by_folder_name(fake_rdagent, tmp_trace) -> None:
    w, ws_root = tmp_trace
    c = fake_rdagent
    t = _factor_task(c, "Alpha_1")
    wid = "0123456789abcdef0123456789abcdef"
    (ws_root / wid).mkdir()
    (ws_root / wid / "factor.py").write_text("print('alpha')\n")
    win = PureWindowsPath(r"C:\Users\quant\RD-Agent\git_ignore_folder\RD-Agent_workspace") / wid
    w.write(0, "direct_exp_gen", "hypothesis generation", _hypo(c))
    w.write(0, "direct_exp_gen", "experiment generation", [t])
    w.write(0, "coding", "coder result", [_fws(c, t, win, "print('alpha')\n")])
    lp = read_loop(w.run_dir, 0, scan_run(w.run_dir).loops[0], workspace_root=ws_root, key=w.key)
    (ws,) = lp.workspaces
    assert ws.recorded_path == str(win) and ws.workspace_id == wid
    assert ws.exists and Path(ws.workspace_path) == ws_root / wid and ws.kind == "factor" and ws.task_index == 0
    assert lp.status == "running" and lp.signature == "verified" and lp.errors == []
    assert lp.tasks[0].variables == {"w": 5}


def test_failed_coding_latest_evolving_round_and_bad_files(fake_rdagent, tmp_trace, tmp_path: Path) -> None:
    import os

    w, ws_root = tmp_trace
    c = fake_rdagent
    t = _factor_task(c, "Beta")
    evil = w.write(0, "direct_exp_gen", "hypothesis generation", payload=b"cos\nsystem\n(S'touch " +
                   str(tmp_path / "pwned").encode() + b"'\ntR.")
    w.write(0, "direct_exp_gen", "experiment generation", [t])
    for rnd in range(3):  # one "evolving code" per CoSTEER round; the last one counts
        wid = f"ws{rnd}"
        (ws_root / wid).mkdir()
        w.write(0, "coding", "evolving code", [_fws(c, t, f"/other/workspace/{wid}", f"round = {rnd}\n")])
    os.symlink(tmp_path / "nowhere.h5", ws_root / "ws2" / "daily_pv.h5")
    outside = tmp_path.parent / f"{tmp_path.name}_outside.txt"
    outside.write_text("secret")
    os.symlink(outside, ws_root / "ws2" / "leak.txt")
    (ws_root / "ws2" / "helper.py").write_bytes("x = 'é'\n".encode("latin-1"))
    w.write(0, "coding", "Qlib_execute_log", "a log")  # not interpreted: only its signature is checked
    w.write(0, "feedback", "feedback", c["HypothesisFeedback"](
        reason="CoderError: all factors failed", decision=False, code_change_summary="", acceptable=False))
    lp = read_loop(w.run_dir, 0, scan_run(w.run_dir).loops[0], workspace_root=ws_root, key=w.key)
    assert lp.status == "failed" and lp.feedback.reason.startswith("CoderError")
    (ws,) = lp.workspaces
    assert ws.workspace_id == "ws2" and ws.code["factor.py"] == "round = 2\n"
    files = {f.relpath: f for f in ws.files}
    assert files["daily_pv.h5"].dangling and files["daily_pv.h5"].sha256 is None
    assert files["leak.txt"].is_symlink and not files["leak.txt"].dangling and files["leak.txt"].sha256 is None
    kinds = sorted((e.kind, Path(e.file).name) for e in lp.errors)
    assert kinds == [("forbidden_class", evil.name), ("not_utf8", "helper.py")]
    assert not (tmp_path / "pwned").exists() and lp.hypothesis is None


def test_running_loop_and_unknown_tags(fake_rdagent, tmp_trace) -> None:
    w, ws_root = tmp_trace
    c = fake_rdagent
    w.write(0, "direct_exp_gen", "hypothesis generation", _hypo(c))
    w.write(0, "direct_exp_gen", "some future tag", {"x": 1})
    w.write(0, "direct_exp_gen", "experiment generation", payload=b"\x80\x05\x95garbage, not a pickle frame")
    lp = read_loop(w.run_dir, 0, scan_run(w.run_dir).loops[0], workspace_root=ws_root, key=w.key)
    assert lp.status == "running" and lp.tasks == [] and lp.hypothesis.hypothesis == "h"
    assert [e.kind for e in lp.errors] == ["corrupt"]
    assert len(lp.entries) == 3 and lp.started_at_utc < lp.updated_at_utc
