"""The genuine fixture traces: fin_factor, fin_quant (model loops), legacy (ret.pkl), awkward names: every loop done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rdbridge.contracts.artifacts import FactorMeta, FactorPerf, ModelMeta
from rdbridge.materialize import materialize

from .conftest import FIXTURES, SHARED, check_store_matches_registry, ingest_copy, loops, png_size, snapshot

TRACES = [SHARED / "rdagent_fin_factor_trace", FIXTURES / "rdagent_fin_quant_trace",
          FIXTURES / "rdagent_legacy_fin_factor_trace", FIXTURES / "rdagent_fin_factor_hard_trace"]


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.name)
def test_every_loop_of_the_fixture_is_done(trace: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    t = ingest_copy(trace, tmp_path, url)
    report = materialize(db_url=url, root=t.store)
    assert report.ok and report.counts.failed == 0, report.failures
    assert report.counts.done == len(loops(url))
    assert {lp.materialization_status for lp in loops(url)} == {"done"}
    check_store_matches_registry(url, t.store)
    files = snapshot(t.store)
    for lp in loops(url):
        prefix = f"{lp.task_run_id}/{lp.loop_id}/"
        names = {p[len(prefix):] for p in files if p.startswith(prefix)}
        assert {"factor_meta.json", "feedback.json", "summary.json", "manifest.json"} <= names
        assert ("ret_curve.png" in names) == ("dd_curve.png" in names) == bool(lp.has_result)
        assert ("model_meta.json" in names) == (lp.action == "model")
        if lp.has_result:
            assert png_size(files[prefix + "ret_curve.png"]) == (800, 400)
            perf = FactorPerf.model_validate_json(files[prefix + "factor_perf.json"])
            assert perf.metrics == lp.metrics_json
            for f in perf.factors:  # every factor workspace of the fixtures has result.h5 and the panel
                assert f.status == "ok" and f.ic is not None and f.ic.n_days > 100, f


def test_fin_quant_model_meta(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    t = ingest_copy(FIXTURES / "rdagent_fin_quant_trace", tmp_path, url)
    assert materialize(db_url=url, root=t.store).ok
    model_loops = [lp for lp in loops(url) if lp.action == "model"]
    assert [lp.loop_id for lp in model_loops] == [2, 5]
    ok, failed = (json.loads((t.store / lp.task_run_id / str(lp.loop_id) / "model_meta.json").read_bytes())
                  for lp in model_loops)
    meta = ModelMeta.model_validate(ok)
    assert meta.config_file and meta.config_file.endswith("model.yaml") and meta.model_class == "GeneralPTNN"
    task = meta.tasks[0]
    # the conf template is rendered with the task's training hyperparameters, as RD-Agent does
    for k in ("lr", "n_epochs", "batch_size"):
        assert float(meta.model_kwargs[k]) == float(task.training_hyperparameters[k]), k
    assert task.architecture and task.hyperparameters and set(meta.segments) == {"train", "valid", "test"}
    assert ModelMeta.model_validate(failed).tasks, "a model loop that failed at running still describes its model"


def test_awkward_names_kept_exactly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    t = ingest_copy(FIXTURES / "rdagent_fin_factor_hard_trace", tmp_path, url)
    assert materialize(db_url=url, root=t.store).ok
    names = {}
    for p in t.store.rglob("factor_meta.json"):
        for f in FactorMeta.model_validate_json(p.read_bytes()).factors:
            names.setdefault(f.name, set()).add(f.factor_id)
    assert "动量_5日" in names and "Vol-Adj Momentum (10D)" in names
    assert len(names["Intraday_Range_Pos"]) == 2, "same name, new code: two factor ids"
    assert len(names["Momentum_Vol_Adj_10D"]) == 1, "same name, same code: one factor id"
