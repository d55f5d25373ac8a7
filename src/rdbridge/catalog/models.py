"""The model catalog: every model task RD-Agent proposed, with its loop's metrics, decision and the Qlib model run.

Architecture and hyperparameters come from the registry's `tasks` (what RD-Agent wrote); the Qlib side - model
class and module, the kwargs the config passes, dataset and handler, label, features and the train/valid/test
segments - from the loop's materialized model_meta.json, and stays null until that document exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from rdbridge.catalog.documents import loop_documents
from rdbridge.catalog.paging import Filters, PageRequest, text_match
from rdbridge.config import artifact_root
from rdbridge.contracts.artifacts import ModelMeta
from rdbridge.contracts.catalog import ModelEntry
from rdbridge.registry.models import Loop, Task

SCOPE = "catalog/models"
CURSOR_TYPES = (int,)


def model_page(conn: Connection, f: Filters, page: PageRequest,
               store_root: Path | None = None) -> tuple[list[ModelEntry], list[Any] | None]:
    """Up to `page.limit` model tasks ordered by task row id (filters: has_result, task_run_id, q, updated_since);
    `store_root`: where model_meta.json files are (default: the configured artifact store)."""
    ta, lo = Task.__table__, Loop.__table__
    stmt = (select(ta.c.id, ta.c.experiment_id, ta.c.task_index, ta.c.name, ta.c.model_type, ta.c.architecture,
                   ta.c.hyperparameters_json, ta.c.training_hyperparameters_json, lo.c.task_run_id, lo.c.loop_id,
                   lo.c.metrics_json, lo.c.decision, lo.c.updated_at_utc)
            .join(lo, lo.c.experiment_id == ta.c.experiment_id)
            .where(ta.c.task_type == "model").order_by(ta.c.id).limit(page.limit))
    if page.after:
        stmt = stmt.where(ta.c.id > page.after[0])
    if f.has_result is not None:
        stmt = stmt.where(lo.c.has_result == int(f.has_result))
    if f.task_run_id:
        stmt = stmt.where(lo.c.task_run_id == f.task_run_id)
    if f.q:
        stmt = stmt.where(text_match(f.q, ta.c.name, ta.c.description, ta.c.architecture))
    if f.updated_since is not None:
        stmt = stmt.where(lo.c.updated_at_utc >= f.updated_since)
    rows = conn.execute(stmt).all()
    docs = loop_documents(conn, store_root if store_root is not None else artifact_root(), "model_meta.json",
                          ModelMeta, sorted({r.experiment_id for r in rows}))
    items = []
    for r in rows:
        m = docs.get(r.experiment_id)
        items.append(ModelEntry(
            task_run_id=r.task_run_id, loop_id=r.loop_id, experiment_id=r.experiment_id, task_index=r.task_index,
            name=r.name, model_class=m.model_class if m else None, model_module=m.model_module if m else None,
            model_type=r.model_type, architecture=r.architecture, kwargs=m.model_kwargs if m else None,
            hyperparameters=r.hyperparameters_json, training_kwargs=r.training_hyperparameters_json,
            config_file=m.config_file if m else None, dataset_class=m.dataset_class if m else None,
            handler_class=m.handler_class if m else None, label=m.label if m else None,
            features=m.features if m else None, segments=m.segments if m else None, materialized=m is not None,
            metrics=r.metrics_json, decision=r.decision, updated_at_utc=r.updated_at_utc))
    return items, ([rows[-1].id] if len(rows) == page.limit else None)
