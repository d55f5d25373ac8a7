"""The strategy and model catalogs are built from materialize's strategy.json / model_meta.json (genuine fin_quant
trace: factor and model loops), and fall back to the registry alone before materialize ran or when a document is
altered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from materialize.conftest import FIXTURES, Ingested, ingest_copy, loops
from rdbridge.catalog import documents
from rdbridge.catalog.export import build_catalogs
from rdbridge.catalog.strategies import strategy_params
from rdbridge.contracts.artifacts import FactorMeta, ModelMeta, StrategyDoc
from rdbridge.contracts.catalog import ModelCatalog, StrategyCatalog
from rdbridge.materialize import materialize
from rdbridge.registry import Artifact, ArtifactFile, make_engine, session_scope


def _all(t: Ingested) -> dict:
    engine = make_engine(t.db_url)
    try:
        return build_catalogs(engine, store_root=t.store)
    finally:
        engine.dispose()


def _catalogs(t: Ingested) -> tuple[StrategyCatalog, ModelCatalog]:
    docs = _all(t)
    return docs["strategy_catalog.json"], docs["model_catalog.json"]  # type: ignore[return-value]


def _doc(t: Ingested, task_run_id: str, loop_id: int, name: str) -> bytes | None:
    p = t.store / task_run_id / str(loop_id) / name
    return p.read_bytes() if p.is_file() else None


@pytest.fixture(scope="module")
def quant(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    tmp = tmp_path_factory.mktemp("catalog_quant")
    return ingest_copy(FIXTURES / "rdagent_fin_quant_trace", tmp, f"sqlite:///{tmp / 'registry.sqlite'}")


def test_before_materialize_the_registry_alone_fills_the_catalogs(quant: Ingested) -> None:
    strategies, models = _catalogs(quant)
    assert strategies.strategies and {s.identified_by for s in strategies.strategies} == {"config files"}
    assert all(s.params is None and s.config_files for s in strategies.strategies)
    model_loops = [lp for lp in loops(quant.db_url) if lp.action == "model"]
    assert {(m.task_run_id, m.loop_id) for m in models.models} == {(lp.task_run_id, lp.loop_id) for lp in model_loops}
    for m in models.models:
        assert not m.materialized and m.model_class is None and m.features is None and m.segments is None
        assert m.architecture and m.hyperparameters and m.model_type
    factors = _all(quant)["factor_catalog.json"].factors  # type: ignore[attr-defined]
    rd = [e for e in factors if e.source == "rdagent"]
    assert rd and all(e.region is None and e.align is None for e in rd)


def test_catalogs_follow_the_materialized_documents(quant: Ingested) -> None:
    assert materialize(db_url=quant.db_url, root=quant.store).ok
    strategies, models = _catalogs(quant)
    all_loops = {lp.experiment_id: lp for lp in loops(quant.db_url)}

    # strategies: every loop with a strategy.json is in exactly one entry, whose params are its document's
    with_doc = {}
    for eid, lp in all_loops.items():
        raw = _doc(quant, lp.task_run_id, lp.loop_id, "strategy.json")
        if raw is not None:
            with_doc[eid] = StrategyDoc.model_validate_json(raw)
    assert with_doc, "the fixture's loops with results have strategy.json"
    seen: dict[str, str] = {}
    for s in strategies.strategies:
        for lp in s.loops:
            assert lp.experiment_id not in seen, "a loop in two strategy entries"
            seen[lp.experiment_id] = s.strategy_id
            if lp.experiment_id in with_doc:
                doc = with_doc[lp.experiment_id]
                assert s.identified_by == "strategy.json" and s.params == strategy_params(doc)
                assert s.params["topk"] == doc.topk and s.params["strategy_class"] == doc.strategy_class
                assert doc.config_file in {c.path for c in s.config_files}
                assert lp.key_metrics and lp.decision == all_loops[lp.experiment_id].decision
            else:
                assert s.identified_by == "config files"
    assert set(with_doc) <= set(seen)
    distinct = {json.dumps(strategy_params(d), sort_keys=True) for d in with_doc.values()}
    assert len([s for s in strategies.strategies if s.identified_by == "strategy.json"]) == len(distinct)

    # RD-Agent factors: region / align / nan_policy from their loop's factor_meta.json
    rd = [e for e in _all(quant)["factor_catalog.json"].factors if e.source == "rdagent"]  # type: ignore[attr-defined]
    assert rd
    for e in rd:
        lp = all_loops[e.experiment_id]
        meta = FactorMeta.model_validate_json(_doc(quant, lp.task_run_id, lp.loop_id, "factor_meta.json") or b"")
        rec = next(x for x in meta.factors if x.factor_id == e.factor_id)
        assert (e.region, e.align, e.nan_policy) == (rec.region, rec.align, rec.nan_policy) and e.align == "close"

    # models: the Qlib side comes from each loop's model_meta.json
    assert models.models
    for m in models.models:
        raw = _doc(quant, m.task_run_id, m.loop_id, "model_meta.json")
        assert raw is not None, "every model loop has model_meta.json"
        meta = ModelMeta.model_validate_json(raw)
        assert m.materialized and m.model_class == meta.model_class and m.model_module == meta.model_module
        assert m.kwargs == meta.model_kwargs and m.features == meta.features and m.segments == meta.segments
        assert m.config_file == meta.config_file and m.label == meta.label
        assert set(m.segments or {}) == {"train", "valid", "test"} and m.model_class
        task = next(t for t in meta.tasks if t.name == m.name)
        assert m.hyperparameters == task.hyperparameters and m.architecture == task.architecture
        assert m.metrics == all_loops[m.experiment_id].metrics_json


def test_an_altered_document_is_not_trusted(quant: Ingested) -> None:
    """A strategy.json / model_meta.json whose bytes differ from the registered sha256 is ignored (that loop
    falls back to the registry alone), the rest of the catalog stands. A process that already verified the document
    keeps listing the registered content (documents are kept by sha256), never the altered bytes."""
    assert materialize(db_url=quant.db_url, root=quant.store).ok
    engine = make_engine(quant.db_url)
    try:
        with session_scope(engine, write=False) as s:
            rows = s.execute(select(Artifact.experiment_id, Artifact.name, ArtifactFile.path)
                             .join(ArtifactFile, ArtifactFile.artifact_id == Artifact.artifact_id)
                             .where(Artifact.root_kind == "store",
                                    Artifact.name.in_(("strategy.json", "model_meta.json")))).all()
    finally:
        engine.dispose()
    victim_s = next(r for r in rows if r.name == "strategy.json")
    victim_m = next(r for r in rows if r.name == "model_meta.json")
    saved = {}
    for r in (victim_s, victim_m):
        p = quant.store / r.path
        saved[p] = p.read_bytes()
        doc = json.loads(saved[p])
        doc["config_file"] = "conf_tampered.yaml"
        p.write_text(json.dumps(doc))
    try:
        warm = _catalogs(quant)
        documents._parsed.clear()  # a process that never read them
        strategies, models = _catalogs(quant)
    finally:
        for p, data in saved.items():
            p.write_bytes(data)
    assert "conf_tampered" not in warm[0].model_dump_json() + warm[1].model_dump_json()
    assert warm[0].model_dump(exclude={"generated_at_utc"}) == _catalogs(quant)[0].model_dump(exclude={"generated_at_utc"})
    holder = next(s for s in strategies.strategies if victim_s.experiment_id in {lp.experiment_id for lp in s.loops})
    assert holder.identified_by == "config files" and holder.params is None
    assert any(s.identified_by == "strategy.json" for s in strategies.strategies)
    for m in models.models:
        assert m.materialized == (m.experiment_id != victim_m.experiment_id)
        assert m.config_file != "conf_tampered.yaml"
