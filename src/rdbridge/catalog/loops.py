"""The loop catalog: every loop with its outcome, materialization state and artifacts, ordered by registry id.

The registry's autoincrement loop id is the key: new loops get larger ids, so a paged walk never skips or repeats
a loop that existed when it started.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Select, func, select

from rdbridge.catalog.metrics import key_metrics
from rdbridge.catalog.paging import Filters, PageRequest, text_match
from rdbridge.contracts.catalog import ArtifactRef, LoopEntry
from rdbridge.registry.models import Artifact, ArtifactFile, Loop

SCOPE = "catalog/loops"
CURSOR_TYPES = (int,)


def filter_loops(stmt: Select[Any], f: Filters) -> Select[Any]:
    """Apply the loop filters (action, status, has_result, materialization_status, task_run_id, q, updated_since)."""
    lo = Loop.__table__
    if f.action:
        stmt = stmt.where(lo.c.action == f.action)
    if f.status:
        stmt = stmt.where(lo.c.status == f.status)
    if f.has_result is not None:
        stmt = stmt.where(lo.c.has_result == int(f.has_result))
    if f.materialization_status:
        stmt = stmt.where(lo.c.materialization_status == f.materialization_status)
    if f.task_run_id:
        stmt = stmt.where(lo.c.task_run_id == f.task_run_id)
    if f.q:
        stmt = stmt.where(text_match(f.q, lo.c.experiment_id, lo.c.hypothesis))
    if f.updated_since is not None:
        stmt = stmt.where(lo.c.updated_at_utc >= f.updated_since)
    return stmt


def artifact_refs(conn: Connection, experiment_ids: list[str]) -> dict[str, list[ArtifactRef]]:
    """experiment_id -> its artifacts (with file counts), one query for a whole page."""
    if not experiment_ids:
        return {}
    ar, af = Artifact.__table__, ArtifactFile.__table__
    stmt = (select(ar.c.experiment_id, ar.c.artifact_id, ar.c.artifact_type, ar.c.name, ar.c.status,
                   func.count(af.c.id).label("n"))
            .outerjoin(af, af.c.artifact_id == ar.c.artifact_id)
            .where(ar.c.experiment_id.in_(experiment_ids))
            .group_by(ar.c.experiment_id, ar.c.artifact_id, ar.c.artifact_type, ar.c.name, ar.c.status)
            .order_by(ar.c.artifact_id))
    out: dict[str, list[ArtifactRef]] = defaultdict(list)
    for r in conn.execute(stmt):
        out[r.experiment_id].append(ArtifactRef(artifact_id=r.artifact_id, artifact_type=r.artifact_type,
                                                name=r.name, status=r.status, file_count=r.n))
    return out


def loop_page(conn: Connection, f: Filters, page: PageRequest) -> tuple[list[LoopEntry], list[Any] | None]:
    """Up to `page.limit` loops with id > `page.after[0]`, and the next cursor key."""
    lo = Loop.__table__
    stmt = select(lo.c.id, lo.c.task_run_id, lo.c.loop_id, lo.c.experiment_id, lo.c.action, lo.c.status,
                  lo.c.has_result, lo.c.metrics_json, lo.c.decision, lo.c.hypothesis, lo.c.materialization_status,
                  lo.c.materialization_error, lo.c.updated_at_utc)
    stmt = filter_loops(stmt, f).order_by(lo.c.id).limit(page.limit)
    if page.after:
        stmt = stmt.where(lo.c.id > page.after[0])
    rows = conn.execute(stmt).all()
    arts = artifact_refs(conn, [r.experiment_id for r in rows])
    items = [LoopEntry(task_run_id=r.task_run_id, loop_id=r.loop_id, experiment_id=r.experiment_id, action=r.action,
                       status=r.status, has_result=bool(r.has_result), key_metrics=key_metrics(r.metrics_json),
                       decision=r.decision, hypothesis=r.hypothesis, materialization_status=r.materialization_status,
                       materialization_error=r.materialization_error, updated_at_utc=r.updated_at_utc,
                       artifacts=arts.get(r.experiment_id, []))
             for r in rows]
    return items, ([rows[-1].id] if len(rows) == page.limit else None)
