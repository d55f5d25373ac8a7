"""The model catalog: every model task RD-Agent proposed, with its loop's metrics and decision.

Model class, architecture and hyperparameters come from the registry's `tasks`; the features and the train/valid/
test segments come from materialize's model_meta.json, and stay null until that artifact exists.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from rdbridge.catalog.paging import Filters, PageRequest, text_match
from rdbridge.contracts.catalog import ModelEntry
from rdbridge.registry.models import Loop, Task

SCOPE = "catalog/models"
CURSOR_TYPES = (int,)


def model_page(conn: Connection, f: Filters, page: PageRequest) -> tuple[list[ModelEntry], list[Any] | None]:
    """Up to `page.limit` model tasks ordered by task row id (filters: has_result, task_run_id, q, updated_since)."""
    ta, lo = Task.__table__, Loop.__table__
    stmt = (select(ta.c.id, ta.c.experiment_id, ta.c.task_index, ta.c.name, ta.c.model_type, ta.c.architecture,
                   ta.c.hyperparameters_json, ta.c.training_hyperparameters_json, lo.c.metrics_json, lo.c.decision,
                   lo.c.updated_at_utc)
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
    items = [ModelEntry(experiment_id=r.experiment_id, task_index=r.task_index, name=r.name, model_class=r.model_type,
                        architecture=r.architecture, kwargs=r.hyperparameters_json,
                        training_kwargs=r.training_hyperparameters_json, metrics=r.metrics_json,
                        decision=r.decision, updated_at_utc=r.updated_at_utc)
             for r in rows]
    return items, ([rows[-1].id] if len(rows) == page.limit else None)
