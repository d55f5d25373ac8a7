"""Turning one `LoopSnapshot` into registry rows, in the caller's transaction.

A loop is written as a unit (loop row, tasks, factors, workspaces, workspace artifacts, trace-file bookkeeping), so a
crash between two loops leaves every loop either fully old or fully new. When a re-read hits an unreadable file, what
was stored from an earlier good read is kept (nothing stored is lost): only non-empty facts overwrite.
"""

from __future__ import annotations

import hashlib
import mimetypes
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from rdbridge.contracts.trace import FactorTaskInfo, LoopSnapshot, ModelTaskInfo, RunSnapshot, WorkspaceInfo
from rdbridge.registry import (
    Artifact,
    ArtifactFile,
    Factor,
    Loop,
    Task,
    TaskRun,
    TraceFile,
    Workspace,
    experiment_id_for,
    factor_id_for,
    utcnow,
)

FINAL = ("completed", "failed")
LoopChange = Literal["new", "updated", "unchanged"]

mimetypes.add_type("text/x-python", ".py")
mimetypes.add_type("application/x-yaml", ".yaml")
mimetypes.add_type("application/x-hdf5", ".h5")
mimetypes.add_type("application/vnd.apache.parquet", ".parquet")
mimetypes.add_type("application/x-python-pickle", ".pkl")
mimetypes.add_type("text/markdown", ".md")
mimetypes.add_type("text/csv", ".csv")


def upsert_task_run(session: Session, run: RunSnapshot) -> bool:
    """Create or refresh the task run row; True when it is new."""
    row = session.get(TaskRun, run.task_run_id)
    created = row is None
    if row is None:
        row = TaskRun(task_run_id=run.task_run_id, status="running", loop_count=0)
        session.add(row)
    _set_if_changed(row, run_folder=run.run_folder, log_trace_path=run.log_trace_path,
                    workspace_root=run.workspace_root, started_at_utc=run.started_at_utc)
    if run.scenario != "unknown" or row.scenario is None:
        _set_if_changed(row, scenario=run.scenario)
    return created


def finish_task_run(session: Session, task_run_id: str) -> None:
    """Loop count and run status from the loops stored: running while any loop is, else completed."""
    row = session.get(TaskRun, task_run_id)
    if row is None:
        return
    statuses = list(session.scalars(select(Loop.status).where(Loop.task_run_id == task_run_id)))
    status = "running" if (not statuses or "running" in statuses) else "completed"
    _set_if_changed(row, loop_count=len(statuses), status=status)


def write_loop(session: Session, task_run_id: str, snap: LoopSnapshot, fingerprint: str) -> LoopChange:
    """Store one loop snapshot. Returns whether the loop is new, changed or already identical."""
    experiment_id = experiment_id_for(task_run_id, snap.loop_id)
    loop = session.scalar(select(Loop).where(Loop.experiment_id == experiment_id))
    if loop is not None and loop.trace_fingerprint == fingerprint:
        return "unchanged"
    now = utcnow()
    created = loop is None
    if loop is None:
        loop = Loop(task_run_id=task_run_id, loop_id=snap.loop_id, experiment_id=experiment_id, action=snap.action,
                    status=snap.status, has_result=0, materialization_attempts=0)
        session.add(loop)
    keep_old = (not created) and bool(snap.errors)

    _set_loop_fields(loop, snap, keep_old=keep_old)
    loop.trace_fingerprint = fingerprint
    loop.signature_status = snap.signature
    loop.errors_json = [e.model_dump() for e in snap.errors] or None
    loop.error = "; ".join(f"{e.file}: {e.message}" for e in snap.errors) or None
    loop.updated_at_utc = now

    # The materialization state machine: a loop that reaches (or changes in) a final state is queued again.
    if snap.status in FINAL:
        if loop.materialization_status != "pending":
            loop.materialization_status = "pending"
            loop.materialization_error = None
            loop.materialization_lease_owner = None
            loop.materialization_lease_expires_at_utc = None
            loop.materialization_updated_at_utc = now
    session.flush()

    if not keep_old or snap.tasks:
        _replace_tasks(session, loop, snap)
    if not keep_old or snap.workspaces:
        _replace_workspaces(session, loop, snap, now)
    _record_trace_files(session, task_run_id, snap, now)
    return "new" if created else "updated"


def _set_if_changed(row: Any, **values: Any) -> None:
    for k, v in values.items():
        if getattr(row, k) != v:
            setattr(row, k, v)


def _set_loop_fields(loop: Loop, snap: LoopSnapshot, *, keep_old: bool) -> None:
    hyp = snap.hypothesis.model_dump() if snap.hypothesis else None
    fb = snap.feedback.model_dump() if snap.feedback else None
    values: dict[str, Any] = {
        "action": snap.action,
        "status": snap.status,
        "last_step": snap.last_step,
        "hypothesis": snap.hypothesis.hypothesis if snap.hypothesis else None,
        "hypothesis_json": hyp,
        "metrics_json": snap.metrics,
        "metrics_source": snap.metrics_source,
        "feedback_json": fb,
        "decision": snap.feedback.decision if snap.feedback else None,
        "experiment_workspace_id": snap.experiment_workspace_id,
        "best_workspace_id": _best_workspace(snap),
        "started_at_utc": snap.started_at_utc,
    }
    for k, v in values.items():
        if keep_old and v is None:
            continue
        setattr(loop, k, v)
    loop.has_result = 1 if loop.metrics_json else 0


def _best_workspace(snap: LoopSnapshot) -> str | None:
    """The workspace that holds the loop's outcome: the backtested experiment workspace, else the last coded one."""
    if snap.metrics and snap.experiment_workspace_id:
        return snap.experiment_workspace_id
    coded = [w for w in snap.workspaces if w.task_index is not None and w.exists]
    return coded[-1].workspace_id if coded else None


def _replace_tasks(session: Session, loop: Loop, snap: LoopSnapshot) -> None:
    session.execute(delete(Task).where(Task.experiment_id == loop.experiment_id))
    ws_by_task = {w.task_index: w for w in snap.workspaces if w.task_index is not None}
    for i, t in enumerate(snap.tasks):
        ws = ws_by_task.get(i)
        row = Task(experiment_id=loop.experiment_id, task_run_id=loop.task_run_id, loop_id=loop.loop_id, task_index=i,
                   workspace_id=ws.workspace_id if ws else None)
        if isinstance(t, FactorTaskInfo):
            row.task_type, row.name = "factor", t.factor_name
            row.description, row.formulation, row.variables_json = t.factor_description, t.factor_formulation, t.variables
        else:
            assert isinstance(t, ModelTaskInfo)
            row.task_type, row.name, row.description = "model", t.name, t.description
            row.formulation, row.variables_json = t.formulation, t.variables or None
            row.architecture, row.model_type = t.architecture, t.model_type
            row.hyperparameters_json, row.training_hyperparameters_json = t.hyperparameters, t.training_hyperparameters
        session.add(row)
        if isinstance(t, FactorTaskInfo) and ws is not None:
            _add_factor(session, loop, t, ws)


def _add_factor(session: Session, loop: Loop, t: FactorTaskInfo, ws: WorkspaceInfo) -> None:
    """One factor implementation per (name, code); the first loop that produced it owns the row."""
    code = ws.code.get("factor.py")
    if code is None:
        return
    fid = factor_id_for(t.factor_name, code)
    existing = session.get(Factor, fid)
    if existing is not None and existing.experiment_id != loop.experiment_id:
        return
    if existing is None:
        existing = Factor(factor_id=fid)
        session.add(existing)
    existing.factor_name, existing.experiment_id = t.factor_name, loop.experiment_id
    existing.task_run_id, existing.loop_id, existing.workspace_id = loop.task_run_id, loop.loop_id, ws.workspace_id
    existing.description, existing.formulation = t.factor_description, t.factor_formulation
    existing.variables_json = t.variables
    existing.code_sha256 = hashlib.sha256(code.encode("utf-8")).hexdigest()


def _replace_workspaces(session: Session, loop: Loop, snap: LoopSnapshot, now: datetime) -> None:
    old_ids = set(session.scalars(select(Workspace.workspace_id).where(Workspace.experiment_id == loop.experiment_id)))
    new_ids = {w.workspace_id for w in snap.workspaces}
    if old_ids - new_ids:
        session.execute(delete(Workspace).where(Workspace.workspace_id.in_(old_ids - new_ids)))
    session.execute(delete(Artifact).where(Artifact.experiment_id == loop.experiment_id,
                                           Artifact.root_kind == "workspace"))
    for w in snap.workspaces:
        row = session.get(Workspace, w.workspace_id)
        if row is None:
            row = Workspace(workspace_id=w.workspace_id, task_run_id=loop.task_run_id, created_at_utc=now)
            session.add(row)
        row.loop_id, row.experiment_id, row.kind = loop.loop_id, loop.experiment_id, w.kind
        row.recorded_path, row.workspace_path, row.exists = w.recorded_path, w.workspace_path, w.exists
        row.task_index, row.updated_at_utc = w.task_index, now
        artifact = Artifact(task_run_id=loop.task_run_id, loop_id=loop.loop_id, experiment_id=loop.experiment_id,
                            workspace_id=w.workspace_id, artifact_type=f"{w.kind}_workspace", name=w.workspace_id,
                            status="present" if w.exists else "missing", root_kind="workspace")
        for f in w.files:
            artifact.files.append(ArtifactFile(path=f.relpath, size_bytes=f.size_bytes, sha256=f.sha256,
                                               mime_type=mimetypes.guess_type(f.relpath)[0], is_symlink=f.is_symlink))
        session.add(artifact)


def _record_trace_files(session: Session, task_run_id: str, snap: LoopSnapshot, now: datetime) -> None:
    bad = {e.file: e.message for e in snap.errors}
    existing = {tf.relpath: tf for tf in session.scalars(
        select(TraceFile).where(TraceFile.task_run_id == task_run_id, TraceFile.loop_id == snap.loop_id))}
    for e in snap.entries:
        err = next((m for f, m in bad.items() if f.endswith(e.relpath)), None)
        row = existing.get(e.relpath)
        if row is None:
            row = TraceFile(task_run_id=task_run_id, loop_id=snap.loop_id, relpath=e.relpath)
            session.add(row)
        row.size_bytes, row.mtime_ns, row.seen_at_utc = e.size_bytes, e.mtime_ns, now
        row.status, row.error = ("error", err) if err else ("ok", None)
