"""Registry reads behind the record routes (runs, loops, workspaces, artifacts, factors): SQLAlchemy Core, no ORM.

None of these return a server path: run folders, workspace locations and log paths stay in the registry.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from rdbridge.api.files import is_clean_relpath
from rdbridge.catalog.loops import filter_loops
from rdbridge.catalog.paging import Filters, PageRequest, text_match
from rdbridge.contracts.api import (
    ArtifactFileOut,
    ArtifactOut,
    FactorImplementation,
    FactorRecord,
    FactorTaskRef,
    LoopArtifacts,
    LoopDetail,
    LoopOut,
    TaskOut,
    TaskRunOut,
    WorkspaceOut,
)
from rdbridge.registry.models import Artifact, ArtifactFile, Factor, Loop, Task, TaskRun, Workspace
from rdbridge.catalog.alpha158 import alpha158_entries

TR, LO, WS = TaskRun.__table__, Loop.__table__, Workspace.__table__
AR, AF, FA, TA = Artifact.__table__, ArtifactFile.__table__, Factor.__table__, Task.__table__

_LOOP_COLS = (LO.c.id, LO.c.task_run_id, LO.c.loop_id, LO.c.experiment_id, LO.c.action, LO.c.status, LO.c.last_step,
              LO.c.hypothesis, LO.c.has_result, LO.c.metrics_json, LO.c.decision, LO.c.signature_status, LO.c.error,
              LO.c.materialization_status, LO.c.materialization_error, LO.c.started_at_utc, LO.c.updated_at_utc)


def download_url(file_id: int) -> str:
    return f"/files/{file_id}"


def task_runs(conn: Connection, f: Filters, page: PageRequest) -> tuple[list[TaskRunOut], list[Any] | None]:
    """Ordered by task_run_id (filters: status, q, updated_since)."""
    stmt = select(TR.c.task_run_id, TR.c.scenario, TR.c.status, TR.c.loop_count, TR.c.started_at_utc,
                  TR.c.created_at_utc, TR.c.updated_at_utc).order_by(TR.c.task_run_id).limit(page.limit)
    if page.after:
        stmt = stmt.where(TR.c.task_run_id > page.after[0])
    if f.status:
        stmt = stmt.where(TR.c.status == f.status)
    if f.q:
        stmt = stmt.where(text_match(f.q, TR.c.task_run_id, TR.c.scenario))
    if f.updated_since is not None:
        stmt = stmt.where(TR.c.updated_at_utc >= f.updated_since)
    rows = conn.execute(stmt).all()
    items = [TaskRunOut(**r._mapping) for r in rows]
    return items, ([rows[-1].task_run_id] if len(rows) == page.limit else None)


def _loop_out(r: Any) -> dict[str, Any]:
    m = dict(r._mapping)
    m.pop("id", None)
    m["has_result"] = bool(m["has_result"])
    m["metrics"] = m.pop("metrics_json")
    return m


def loops(conn: Connection, f: Filters, page: PageRequest) -> tuple[list[LoopOut], list[Any] | None]:
    """Ordered by registry id (filters: action, status, has_result, materialization_status, task_run_id, q, ...)."""
    stmt = filter_loops(select(*_LOOP_COLS), f).order_by(LO.c.id).limit(page.limit)
    if page.after:
        stmt = stmt.where(LO.c.id > page.after[0])
    rows = conn.execute(stmt).all()
    return [LoopOut(**_loop_out(r)) for r in rows], ([rows[-1].id] if len(rows) == page.limit else None)


def workspaces(conn: Connection, f: Filters, page: PageRequest) -> tuple[list[WorkspaceOut], list[Any] | None]:
    """Ordered by workspace_id (filters: task_run_id, kind, updated_since)."""
    stmt = select(WS.c.workspace_id, WS.c.task_run_id, WS.c.loop_id, WS.c.experiment_id, WS.c.kind, WS.c.exists,
                  WS.c.task_index, WS.c.updated_at_utc).order_by(WS.c.workspace_id).limit(page.limit)
    if page.after:
        stmt = stmt.where(WS.c.workspace_id > page.after[0])
    if f.task_run_id:
        stmt = stmt.where(WS.c.task_run_id == f.task_run_id)
    if f.kind:
        stmt = stmt.where(WS.c.kind == f.kind)
    if f.updated_since is not None:
        stmt = stmt.where(WS.c.updated_at_utc >= f.updated_since)
    rows = conn.execute(stmt).all()
    items = [WorkspaceOut(**r._mapping) for r in rows]
    return items, ([rows[-1].workspace_id] if len(rows) == page.limit else None)


def loop_detail(conn: Connection, task_run_id: str, loop_id: int) -> LoopDetail | None:
    row = conn.execute(select(*_LOOP_COLS, LO.c.hypothesis_json, LO.c.feedback_json, LO.c.metrics_source,
                              LO.c.best_workspace_id, LO.c.experiment_workspace_id, LO.c.errors_json)
                       .where(LO.c.task_run_id == task_run_id, LO.c.loop_id == loop_id)).first()
    if row is None:
        return None
    m = _loop_out(row)
    m["hypothesis_doc"] = m.pop("hypothesis_json")
    m["feedback"] = m.pop("feedback_json")
    src = m.pop("metrics_source")
    m["metrics_source_kind"] = src.replace("\\", "/").rsplit("/", 1)[-1] if src else None
    m["errors"] = m.pop("errors_json")
    tasks = conn.execute(select(TA.c.task_index, TA.c.task_type, TA.c.name, TA.c.description, TA.c.formulation,
                                TA.c.variables_json, TA.c.architecture, TA.c.hyperparameters_json,
                                TA.c.training_hyperparameters_json, TA.c.model_type, TA.c.workspace_id)
                         .where(TA.c.experiment_id == row.experiment_id).order_by(TA.c.task_index)).all()
    m["tasks"] = [TaskOut(task_index=t.task_index, task_type=t.task_type, name=t.name, description=t.description,
                          formulation=t.formulation, variables=t.variables_json, architecture=t.architecture,
                          hyperparameters=t.hyperparameters_json,
                          training_hyperparameters=t.training_hyperparameters_json, model_type=t.model_type,
                          workspace_id=t.workspace_id) for t in tasks]
    m["factor_ids"] = list(conn.scalars(select(FA.c.factor_id).where(FA.c.experiment_id == row.experiment_id)
                                        .order_by(FA.c.factor_id)))
    m["artifacts_url"] = f"/loops/{task_run_id}/{loop_id}/artifacts"
    return LoopDetail(**m)


def loop_artifacts(conn: Connection, task_run_id: str, loop_id: int) -> LoopArtifacts | None:
    eid = conn.scalar(select(LO.c.experiment_id).where(LO.c.task_run_id == task_run_id, LO.c.loop_id == loop_id))
    if eid is None:
        return None
    rows = conn.execute(select(AR.c.artifact_id, AR.c.artifact_type, AR.c.name, AR.c.status, AR.c.root_kind,
                               AR.c.workspace_id, AR.c.updated_at_utc, AF.c.id, AF.c.path, AF.c.size_bytes,
                               AF.c.sha256, AF.c.mime_type, AF.c.is_symlink)
                        .outerjoin(AF, AF.c.artifact_id == AR.c.artifact_id)
                        .where(AR.c.experiment_id == eid).order_by(AR.c.artifact_id, AF.c.path)).all()
    arts: dict[int, ArtifactOut] = {}
    for r in rows:
        a = arts.get(r.artifact_id)
        if a is None:
            a = arts[r.artifact_id] = ArtifactOut(artifact_id=r.artifact_id, artifact_type=r.artifact_type,
                                                  name=r.name, status=r.status, root_kind=r.root_kind,
                                                  workspace_id=r.workspace_id or None,
                                                  updated_at_utc=r.updated_at_utc, files=[])
        if r.id is not None:
            path = r.path if is_clean_relpath(r.path) else r.path.replace("\\", "/").rsplit("/", 1)[-1]
            a.files.append(ArtifactFileOut(file_id=r.id, path=path, size_bytes=r.size_bytes, sha256=r.sha256,
                                           mime_type=r.mime_type, is_symlink=r.is_symlink,
                                           download_url=download_url(r.id)))
    return LoopArtifacts(task_run_id=task_run_id, loop_id=loop_id, experiment_id=eid, artifacts=list(arts.values()))


def factor_record(conn: Connection, name: str) -> FactorRecord | None:
    """Every implementation and task under `name` (exact text), plus the Alpha158 definition of that name."""
    impls = conn.execute(select(FA.c.factor_id, FA.c.experiment_id, FA.c.task_run_id, FA.c.loop_id,
                                FA.c.workspace_id, FA.c.description, FA.c.formulation, FA.c.variables_json,
                                FA.c.code_sha256, FA.c.created_at_utc, LO.c.decision, LO.c.metrics_json)
                         .join(LO, LO.c.experiment_id == FA.c.experiment_id)
                         .where(FA.c.factor_name == name).order_by(FA.c.created_at_utc, FA.c.factor_id)).all()
    tasks = conn.execute(select(TA.c.experiment_id, TA.c.task_index, TA.c.description, TA.c.formulation)
                         .where(TA.c.name == name, TA.c.task_type == "factor")
                         .order_by(TA.c.experiment_id, TA.c.task_index)).all()
    alpha = next((e for e in alpha158_entries() if e.name == name), None)
    if not impls and not tasks and alpha is None:
        return None
    sources = (["alpha158"] if alpha else []) + (["rdagent"] if impls or tasks else [])
    return FactorRecord(
        name=name, sources=sources, alpha158=alpha.model_dump() if alpha else None,
        implementations=[FactorImplementation(
            factor_id=r.factor_id, experiment_id=r.experiment_id, task_run_id=r.task_run_id, loop_id=r.loop_id,
            workspace_id=r.workspace_id, description=r.description, formulation=r.formulation,
            variables=r.variables_json, code_sha256=r.code_sha256, created_at_utc=r.created_at_utc,
            decision=r.decision, metrics=r.metrics_json) for r in impls],
        tasks=[FactorTaskRef(experiment_id=t.experiment_id, task_index=t.task_index, description=t.description,
                             formulation=t.formulation) for t in tasks])


def registered_file(conn: Connection, file_id: int) -> dict[str, Any] | None:
    """What the download route needs about one registered file: its path, size, hash and its artifact's root."""
    r = conn.execute(select(AF.c.path, AF.c.size_bytes, AF.c.sha256, AF.c.mime_type, AR.c.root_kind, AR.c.status,
                            AR.c.workspace_id, WS.c.workspace_path, TR.c.workspace_root)
                     .join(AR, AR.c.artifact_id == AF.c.artifact_id)
                     .join(TR, TR.c.task_run_id == AR.c.task_run_id)
                     .outerjoin(WS, WS.c.workspace_id == AR.c.workspace_id)
                     .where(AF.c.id == file_id)).first()
    return dict(r._mapping) if r is not None else None


