"""The bundled sample trace: every loop done, every file registered with its sha256, valid JSON, real PNGs; a re-run
changes nothing, and --force rewrites the same bytes. On SQLite and PostgreSQL."""

from __future__ import annotations

import json

from rdbridge.contracts.artifacts import (
    FactorMeta,
    FactorPerf,
    FeedbackDoc,
    Manifest,
    StrategyDoc,
    Summary,
)
from rdbridge.materialize import materialize

from .conftest import SAMPLE, check_store_matches_registry, ingest_copy, loops, png_size, snapshot, store_rows

MODELS = {"factor_meta.json": FactorMeta, "factor_perf.json": FactorPerf, "feedback.json": FeedbackDoc,
          "strategy.json": StrategyDoc, "summary.json": Summary, "manifest.json": Manifest}


def test_sample_every_loop_done_registered_and_valid(db_url, tmp_path) -> None:
    t = ingest_copy(SAMPLE, tmp_path, db_url)
    report = materialize(db_url=db_url, root=t.store)
    assert report.ok and report.counts.done == 4 and report.counts.failed == 0, report
    assert all(lp.materialization_status == "done" and lp.materialization_error is None for lp in loops(db_url))
    check_store_matches_registry(db_url, t.store)
    files = snapshot(t.store)
    run = loops(db_url)[0].task_run_id
    for lp in loops(db_url):
        names = {p.rsplit("/", 1)[1] for p in files if p.startswith(f"{run}/{lp.loop_id}/")}
        base = {"factor_meta.json", "feedback.json", "summary.json", "manifest.json"}
        if lp.has_result:
            assert names == base | {"factor_perf.json", "strategy.json", "ret_curve.png", "dd_curve.png"}
        else:  # failed at coding: no curves, no perf
            assert names == base
    for path, data in files.items():
        name = path.rsplit("/", 1)[1]
        if name.endswith(".png"):
            assert png_size(data) == (800, 400)
        else:
            MODELS[name].model_validate_json(data)
    meta = FactorMeta.model_validate_json(files[f"{run}/1/factor_meta.json"])
    assert [f.name for f in meta.factors] == ["Volume_Surprise_5D", "Intraday_Range_Pos"]
    assert all(f.factor_id and f.code_sha256 and f.impl_module is None for f in meta.factors)
    perf = FactorPerf.model_validate_json(files[f"{run}/1/factor_perf.json"])
    assert perf.key_metrics.ic == perf.metrics["IC"] == loops(db_url)[1].metrics_json["IC"]
    assert all(f.status == "ok" and f.ic is not None and len(f.quantile_returns) == 5 for f in perf.factors)
    summary = json.loads(files[f"{run}/3/summary.json"])
    assert summary["has_result"] is False and summary["status"] == "failed"


def test_rerun_is_a_no_op_and_force_rewrites_the_same_bytes(db_url, tmp_path) -> None:
    t = ingest_copy(SAMPLE, tmp_path, db_url)
    assert materialize(db_url=db_url, root=t.store).ok
    before, rows = snapshot(t.store), store_rows(db_url)
    mtimes = {p: p.stat().st_mtime_ns for p in t.store.rglob("*") if p.is_file()}
    again = materialize(db_url=db_url, root=t.store)
    assert (again.counts.done, again.counts.skipped) == (0, 4)
    assert snapshot(t.store) == before and store_rows(db_url) == rows
    assert {p: p.stat().st_mtime_ns for p in t.store.rglob("*") if p.is_file()} == mtimes, "a no-op wrote files"
    forced = materialize(db_url=db_url, scope="all", force=True, root=t.store)
    assert forced.counts.done == 4
    assert snapshot(t.store) == before, "same registry, same bytes"
    assert [r[1:] for r in store_rows(db_url)] == [r[1:] for r in rows]
