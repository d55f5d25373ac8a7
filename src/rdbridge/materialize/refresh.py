"""Rebuild factor_meta.json of done loops after the factor package filled the impl pointers of their factors.

Only factor_meta.json, summary.json and manifest.json are rewritten (atomically, manifest last) and re-registered in
one transaction per loop; the other files of the set are kept as they are. Loops that are not `done` are skipped:
their next materialization reads the registry anyway.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from rdbridge.config import artifact_root
from rdbridge.contracts.artifacts import Manifest
from rdbridge.materialize import documents, store
from rdbridge.materialize.gather import gather
from rdbridge.registry import Loop, make_engine, session_scope, utcnow

_REWRITTEN = ("factor_meta.json", "summary.json", store.MANIFEST)


def refresh_factor_meta(db_url: str, experiment_ids: list[str], *, root: Path | None = None) -> None:
    """Re-derive factor_meta.json (and summary / manifest) of these loops from the registry and re-register them."""
    root = Path(root) if root is not None else artifact_root()
    engine = make_engine(db_url)
    try:
        for eid in experiment_ids:
            with session_scope(engine, write=False) as s:
                status = s.scalar(select(Loop.materialization_status).where(Loop.experiment_id == eid))
                if status != "done":
                    continue
                data = gather(s, eid)
            folder = store.loop_dir(root, data.task_run_id, data.loop_id)
            old = Manifest.model_validate_json((folder / store.MANIFEST).read_bytes())
            files = {f.name: (folder / f.name).read_bytes() for f in old.files if f.name not in _REWRITTEN}
            refs = documents.factor_refs(data)
            exp_ws = documents._ws_dir(data, data.experiment_workspace_id)
            _, exp_conf = documents._experiment_conf(data, exp_ws)
            files["factor_meta.json"] = documents.to_json(documents.factor_meta(data, refs, exp_conf))
            files["summary.json"] = documents.to_json(documents.summary(data, refs, [*files, store.MANIFEST]))
            files[store.MANIFEST] = documents.to_json(documents.manifest(data, files))
            (folder / store.MANIFEST).unlink(missing_ok=True)
            for name in _REWRITTEN:
                store.write_atomic(folder / name, files[name])
            with session_scope(engine) as s:
                store.register(s, task_run_id=data.task_run_id, loop_id=data.loop_id, experiment_id=eid,
                               files=files, when=utcnow(), only=set(_REWRITTEN))
    finally:
        engine.dispose()
