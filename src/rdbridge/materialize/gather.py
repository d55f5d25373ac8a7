"""Everything the documents of one loop are built from, read from the registry in one short transaction.

Plain values (no ORM objects), so building can take its time without holding a database transaction open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rdbridge.registry import Factor, Loop, Task, TaskRun, Workspace


@dataclass
class TaskData:
    task_index: int
    task_type: str
    name: str
    description: str | None
    formulation: str | None
    variables: dict[str, Any]
    workspace_id: str | None
    architecture: str | None = None
    model_type: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    training_hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class WorkspaceData:
    workspace_id: str
    kind: str
    path: str | None
    exists: bool


@dataclass
class LoopData:
    experiment_id: str
    task_run_id: str
    loop_id: int
    scenario: str | None
    workspace_root: str | None
    action: str
    status: str
    decision: bool | None
    hypothesis: str | None
    hypothesis_json: dict[str, Any]
    feedback_json: dict[str, Any]
    has_result: bool
    metrics: dict[str, float]
    metrics_source: str | None
    best_workspace_id: str | None
    experiment_workspace_id: str | None
    started_at_utc: datetime | None
    trace_fingerprint: str | None
    tasks: list[TaskData]
    workspaces: dict[str, WorkspaceData]
    factor_rows: dict[str, dict[str, Any]]
    """factor_id -> the registry's `factors` row (as a dict), for every implementation of this loop's names."""


def _row_dict(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


def gather(session: Session, experiment_id: str) -> LoopData:
    """Read one loop, with the `factors` rows of its factor names (the caller matches them by code)."""
    loop = session.scalar(select(Loop).where(Loop.experiment_id == experiment_id))
    if loop is None:
        raise LookupError(f"no loop {experiment_id!r} in the registry")
    run = session.get(TaskRun, loop.task_run_id)
    tasks = [TaskData(task_index=t.task_index, task_type=t.task_type, name=t.name, description=t.description,
                      formulation=t.formulation, variables=dict(t.variables_json or {}), workspace_id=t.workspace_id,
                      architecture=t.architecture, model_type=t.model_type,
                      hyperparameters=dict(t.hyperparameters_json or {}),
                      training_hyperparameters=dict(t.training_hyperparameters_json or {}))
             for t in session.scalars(select(Task).where(Task.experiment_id == experiment_id)
                                      .order_by(Task.task_index))]
    ws_ids = {t.workspace_id for t in tasks if t.workspace_id}
    ws_ids |= {w for w in (loop.experiment_workspace_id, loop.best_workspace_id) if w}
    workspaces = {w.workspace_id: WorkspaceData(w.workspace_id, w.kind, w.workspace_path, bool(w.exists))
                  for w in session.scalars(select(Workspace).where(Workspace.workspace_id.in_(sorted(ws_ids))))} \
        if ws_ids else {}
    names = sorted({t.name for t in tasks if t.task_type == "factor"})
    factor_rows: dict[str, dict[str, Any]] = {}
    if names:
        factor_rows = {f.factor_id: _row_dict(f)
                       for f in session.scalars(select(Factor).where(Factor.factor_name.in_(names)))}
    return LoopData(
        experiment_id=loop.experiment_id, task_run_id=loop.task_run_id, loop_id=loop.loop_id,
        scenario=run.scenario if run else None, workspace_root=run.workspace_root if run else None,
        action=loop.action, status=loop.status, decision=loop.decision, hypothesis=loop.hypothesis,
        hypothesis_json=dict(loop.hypothesis_json or {}), feedback_json=dict(loop.feedback_json or {}),
        has_result=bool(loop.has_result), metrics=dict(loop.metrics_json or {}), metrics_source=loop.metrics_source,
        best_workspace_id=loop.best_workspace_id, experiment_workspace_id=loop.experiment_workspace_id,
        started_at_utc=loop.started_at_utc, trace_fingerprint=loop.trace_fingerprint, tasks=tasks,
        workspaces=workspaces, factor_rows=factor_rows)
