"""refresh_factor_meta: the factor package's hook to rewrite factor_meta.json (and summary / manifest) of done loops."""

from __future__ import annotations

from sqlalchemy import update

from rdbridge.contracts.artifacts import FactorMeta, Manifest
from rdbridge.materialize import materialize, refresh_factor_meta
from rdbridge.registry import Task, make_engine, session_scope

from .conftest import SAMPLE, check_store_matches_registry, ingest_copy, loops, snapshot


def test_refresh_rewrites_factor_meta_from_the_registry(db_url, tmp_path) -> None:
    t = ingest_copy(SAMPLE, tmp_path, db_url)
    assert materialize(db_url=db_url, root=t.store).ok
    before = snapshot(t.store)
    eid = loops(db_url)[1].experiment_id
    refresh_factor_meta(db_url, [eid], root=t.store)
    assert snapshot(t.store) == before, "nothing changed in the registry: same bytes"
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            s.execute(update(Task).where(Task.experiment_id == eid, Task.task_index == 0)
                      .values(description="promoted: new text"))
    finally:
        engine.dispose()
    refresh_factor_meta(db_url, [eid, "no-such/0"], root=t.store)
    after = snapshot(t.store)
    folder = eid + "/"
    meta = FactorMeta.model_validate_json(after[folder + "factor_meta.json"])
    assert meta.factors[0].description == "promoted: new text"
    changed = {p for p in after if after[p] != before.get(p)}
    assert changed == {folder + "factor_meta.json", folder + "manifest.json"}
    manifest = Manifest.model_validate_json(after[folder + "manifest.json"])
    assert {f.name for f in manifest.files} == {p.rsplit("/", 1)[1] for p in after if p.startswith(folder)} - {
        "manifest.json"}
    check_store_matches_registry(db_url, t.store)
