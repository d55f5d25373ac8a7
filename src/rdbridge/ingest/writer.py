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

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from rdbridge.contracts.trace import FactorTaskInfo, LoopSnapshot, ModelTaskInfo, RunSnapshot, WorkspaceInfo
from rdbridge.registry import state
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
    """Store one loop snapshot. Returns whether the loop is new, changed or already identical.

    Child rows are replaced with a handful of set-based statements (no per-row round trips): this is what makes a
    1,000-loop ingest take seconds rather than minutes.
    """
    experiment_id = experiment_id_for(task_run_id, snap.loop_id)
    loop = session.scalar(select(Loop).where(Loop.experiment_id == experiment_id))
    if loop is not None and loop.trace_fingerprint == fingerprint:
        return "unchanged"
    now = utcnow()
    created = loop is None
    with session.no_autoflush:
        if loop is None:
            loop = Loop(task_run_id=task_run_id, loop_id=snap.loop_id, experiment_id=experiment_id,
                        action=snap.action, status=snap.status, has_result=0, materialization_attempts=0,
                        created_at_utc=now)
            session.add(loop)
        # RD-Agent only ever adds to a trace, so a re-read that knows less (a file unreadable, tampered or
        # deleted since) must not erase what an earlier read stored: re-reads merge, they never forget.
        keep_old = not created
        _set_loop_fields(loop, snap, keep_old=keep_old)
        loop.trace_fingerprint = fingerprint
        loop.signature_status = snap.signature
        loop.errors_json = [e.model_dump() for e in snap.errors] or None
        loop.error = "; ".join(f"{e.file}: {e.message}" for e in snap.errors) or None
        loop.updated_at_utc = now
    session.flush()
    # The materialization state machine: a loop that reaches a final state is queued; one that changed after
    # being materialized (or while a worker holds it) is queued again and the worker's lease is revoked.
    if loop.status in FINAL:
        if loop.materialization_status is None:
            state.mark_pending(session, loop, now=now)
        elif loop.materialization_status != "pending":
            state.reset_to_pending(session, loop, now=now)

    if not keep_old or snap.tasks:
        _replace_tasks(session, loop, snap, created=created)
    if not keep_old or snap.workspaces:
        _replace_workspaces(session, loop, snap, now, created=created)
    _replace_trace_files(session, task_run_id, snap, now, created=created)
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
    # On a re-read no fact becomes None, and a finished loop never goes back to "running".
    regressed = keep_old and loop.status in FINAL and snap.status not in FINAL
    for k, v in values.items():
        if keep_old and (v is None or (regressed and k in ("status", "last_step"))):
            continue
        setattr(loop, k, v)
    loop.has_result = 1 if loop.metrics_json else 0


def _best_workspace(snap: LoopSnapshot) -> str | None:
    """The workspace that holds the loop's outcome: the backtested experiment workspace, else the last coded one."""
    if snap.metrics and snap.experiment_workspace_id:
        return snap.experiment_workspace_id
    coded = [w for w in snap.workspaces if w.task_index is not None and w.exists]
    return coded[-1].workspace_id if coded else None


def _replace_tasks(session: Session, loop: Loop, snap: LoopSnapshot, *, created: bool) -> None:
    if not created:
        session.execute(delete(Task).where(Task.experiment_id == loop.experiment_id))
    ws_by_task = {w.task_index: w for w in snap.workspaces if w.task_index is not None}
    rows: list[dict[str, Any]] = []
    factors: dict[str, dict[str, Any]] = {}
    for i, t in enumerate(snap.tasks):
        ws = ws_by_task.get(i)
        row: dict[str, Any] = {"experiment_id": loop.experiment_id, "task_run_id": loop.task_run_id,
                               "loop_id": loop.loop_id, "task_index": i, "workspace_id": ws.workspace_id if ws else None,
                               "architecture": None, "hyperparameters_json": None,
                               "training_hyperparameters_json": None, "model_type": None}
        if isinstance(t, FactorTaskInfo):
            row.update(task_type="factor", name=t.factor_name, description=t.factor_description,
                       formulation=t.factor_formulation, variables_json=t.variables)
            code = ws.code.get("factor.py") if ws is not None else None
            if code is not None:
                fid = factor_id_for(t.factor_name, code)
                factors[fid] = {"factor_id": fid, "factor_name": t.factor_name, "experiment_id": loop.experiment_id,
                                "task_run_id": loop.task_run_id, "loop_id": loop.loop_id,
                                "workspace_id": ws.workspace_id if ws else None,
                                "description": t.factor_description, "formulation": t.factor_formulation,
                                "variables_json": t.variables,
                                "code_sha256": hashlib.sha256(code.encode("utf-8")).hexdigest()}
        else:
            assert isinstance(t, ModelTaskInfo)
            row.update(task_type="model", name=t.name, description=t.description, formulation=t.formulation,
                       variables_json=t.variables or None, architecture=t.architecture, model_type=t.model_type,
                       hyperparameters_json=t.hyperparameters,
                       training_hyperparameters_json=t.training_hyperparameters)
        rows.append(row)
    if rows:
        session.execute(insert(Task), rows)
    _upsert_factors(session, loop, factors)


def _upsert_factors(session: Session, loop: Loop, factors: dict[str, dict[str, Any]]) -> None:
    """One factor implementation per (name, code); the first loop that produced it owns the row."""
    if not factors:
        return
    owners = dict(session.execute(select(Factor.factor_id, Factor.experiment_id)
                                  .where(Factor.factor_id.in_(list(factors)))).all())
    fresh = [row for fid, row in factors.items() if fid not in owners]
    if fresh:
        session.execute(insert(Factor), fresh)
    for fid, row in factors.items():
        if owners.get(fid) == loop.experiment_id:
            session.execute(update(Factor).where(Factor.factor_id == fid).values(**row))


def _replace_workspaces(session: Session, loop: Loop, snap: LoopSnapshot, now: datetime, *, created: bool) -> None:
    if not created:
        session.execute(delete(Artifact).where(Artifact.experiment_id == loop.experiment_id,
                                               Artifact.root_kind == "workspace"))
        session.execute(delete(Workspace).where(Workspace.experiment_id == loop.experiment_id))
    ids = [w.workspace_id for w in snap.workspaces]
    taken = set(session.scalars(select(Workspace.workspace_id).where(Workspace.workspace_id.in_(ids)))) if ids else set()
    ws_rows, art_rows = [], []
    for w in snap.workspaces:
        if w.workspace_id not in taken:  # a workspace another loop already owns keeps its owner
            ws_rows.append({"workspace_id": w.workspace_id, "task_run_id": loop.task_run_id, "loop_id": loop.loop_id,
                            "experiment_id": loop.experiment_id, "kind": w.kind, "recorded_path": w.recorded_path,
                            "workspace_path": w.workspace_path, "exists": w.exists, "task_index": w.task_index,
                            "created_at_utc": now, "updated_at_utc": now})
        art_rows.append({"task_run_id": loop.task_run_id, "loop_id": loop.loop_id, "experiment_id": loop.experiment_id,
                         "workspace_id": w.workspace_id, "artifact_type": f"{w.kind}_workspace", "name": w.workspace_id,
                         "status": "present" if w.exists else "missing", "root_kind": "workspace",
                         "created_at_utc": now, "updated_at_utc": now})
    if ws_rows:
        session.execute(insert(Workspace), ws_rows)
    if not art_rows:
        return
    art_ids = dict(session.execute(insert(Artifact).returning(Artifact.workspace_id, Artifact.artifact_id,
                                                              sort_by_parameter_order=True), art_rows).all())
    file_rows = [{"artifact_id": art_ids[w.workspace_id], "path": f.relpath, "size_bytes": f.size_bytes,
                  "sha256": f.sha256, "mime_type": mimetypes.guess_type(f.relpath)[0], "is_symlink": f.is_symlink,
                  "created_at_utc": now}
                 for w in snap.workspaces for f in w.files]
    if file_rows:
        session.execute(insert(ArtifactFile), file_rows)


def _replace_trace_files(session: Session, task_run_id: str, snap: LoopSnapshot, now: datetime, *,
                         created: bool) -> None:
    if not created:
        session.execute(delete(TraceFile).where(TraceFile.task_run_id == task_run_id,
                                                TraceFile.loop_id == snap.loop_id))
    bad = {e.file: e.message for e in snap.errors}
    rows = []
    for e in snap.entries:
        err = next((m for f, m in bad.items() if f.endswith(e.relpath)), None)
        rows.append({"task_run_id": task_run_id, "loop_id": snap.loop_id, "relpath": e.relpath,
                     "size_bytes": e.size_bytes, "mtime_ns": e.mtime_ns, "status": "error" if err else "ok",
                     "error": err, "seen_at_utc": now})
    if rows:
        session.execute(insert(TraceFile), rows)
