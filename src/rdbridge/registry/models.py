"""The registry tables: one row per RD-Agent run, loop, task, factor implementation, workspace and artifact.

Field names are fixed by the platform that reads them. Conventions that hold on SQLite and PostgreSQL alike:
every `*_utc` column is a timezone-aware UTC datetime (`UtcDateTime`); JSON columns are `JsonDoc`; key columns of
UNIQUE constraints are never NULL (NULLs never collide in a UNIQUE constraint, so `artifacts` uses '' for "none").
The Alembic migration in `migrations/versions/` must produce exactly this schema; a test compares the two.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from rdbridge.registry.types import JsonDoc, UtcDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RUN_STATUSES = ("running", "completed", "failed")
LOOP_STATUSES = ("running", "completed", "failed")
FINAL_LOOP_STATUSES = ("completed", "failed")
ACTIONS = ("factor", "model", "quant")
MATERIALIZATION_STATUSES = ("pending", "running", "done", "failed")
TASK_TYPES = ("factor", "model")
WORKSPACE_KINDS = ("factor", "model", "experiment", "unknown")
ARTIFACT_STATUSES = ("present", "missing")
ROOT_KINDS = ("workspace", "store")
TRACE_FILE_STATUSES = ("ok", "error")
PROMOTION_STATUSES = ("promoted", "refused")


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name)


def experiment_id_for(task_run_id: str, loop_id: int) -> str:
    """The public id of one loop: `<task_run_id>/<loop_id>`."""
    return f"{task_run_id}/{loop_id}"


def factor_id_for(factor_name: str, code: str) -> str:
    """Stable id of one factor implementation: the same name with different code is a different factor."""
    digest = hashlib.sha256(factor_name.encode("utf-8") + b"\0" + code.encode("utf-8")).hexdigest()
    return digest[:16]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JsonDoc, list[Any]: JsonDoc}


class TaskRun(Base):
    """One RD-Agent run: one folder under the log root."""

    __tablename__ = "task_runs"
    __table_args__ = (_one_of("status", RUN_STATUSES, "status"),)

    task_run_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    run_folder: Mapped[str] = mapped_column(Text)
    scenario: Mapped[str] = mapped_column(String(64), default="unknown")
    log_trace_path: Mapped[str] = mapped_column(Text)
    workspace_root: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="running")
    loop_count: Mapped[int] = mapped_column(Integer, default=0)
    started_at_utc: Mapped[datetime | None]
    created_at_utc: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at_utc: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    loops: Mapped[list[Loop]] = relationship(
        back_populates="task_run", cascade="all, delete-orphan", passive_deletes=True, order_by="Loop.loop_id"
    )


class Loop(Base):
    """One loop of a run (an "experiment" on the platform), with its materialization state machine."""

    __tablename__ = "loops"
    __table_args__ = (
        UniqueConstraint("task_run_id", "loop_id"),
        _one_of("action", ACTIONS, "action"),
        _one_of("status", LOOP_STATUSES, "status"),
        _one_of("materialization_status", MATERIALIZATION_STATUSES, "materialization_status"),
        CheckConstraint("has_result IN (0, 1)", name="has_result"),
        Index(None, "materialization_status"),
        Index(None, "action"),
        Index(None, "has_result"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_run_id: Mapped[str] = mapped_column(ForeignKey("task_runs.task_run_id", ondelete="CASCADE"))
    loop_id: Mapped[int] = mapped_column(Integer)
    experiment_id: Mapped[str] = mapped_column(String(300), unique=True)
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="running")
    last_step: Mapped[str | None] = mapped_column(String(128))
    hypothesis: Mapped[str | None] = mapped_column(Text)
    hypothesis_json: Mapped[dict[str, Any] | None]
    has_result: Mapped[int] = mapped_column(Integer, default=0)
    metrics_json: Mapped[dict[str, Any] | None]
    metrics_source: Mapped[str | None] = mapped_column(Text)
    feedback_json: Mapped[dict[str, Any] | None]
    decision: Mapped[bool | None] = mapped_column(Boolean)
    best_workspace_id: Mapped[str | None] = mapped_column(String(255))
    experiment_workspace_id: Mapped[str | None] = mapped_column(String(255))
    signature_status: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    errors_json: Mapped[list[Any] | None]
    trace_fingerprint: Mapped[str | None] = mapped_column(String(128))
    materialization_status: Mapped[str | None] = mapped_column(String(16))
    materialization_error: Mapped[str | None] = mapped_column(Text)
    materialization_updated_at_utc: Mapped[datetime | None]
    materialization_lease_owner: Mapped[str | None] = mapped_column(String(255))
    materialization_lease_expires_at_utc: Mapped[datetime | None]
    materialization_attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at_utc: Mapped[datetime | None]
    created_at_utc: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at_utc: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    task_run: Mapped[TaskRun] = relationship(back_populates="loops")
    tasks: Mapped[list[Task]] = relationship(
        back_populates="loop", cascade="all, delete-orphan", passive_deletes=True, order_by="Task.task_index"
    )


class Task(Base):
    """One task (factor or model) proposed in a loop; `name` is the LLM's text, kept exactly."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("experiment_id", "task_index"),
        _one_of("task_type", TASK_TYPES, "task_type"),
        Index(None, "name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("loops.experiment_id", ondelete="CASCADE"))
    task_run_id: Mapped[str] = mapped_column(String(255))
    loop_id: Mapped[int] = mapped_column(Integer)
    task_index: Mapped[int] = mapped_column(Integer)
    task_type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    formulation: Mapped[str | None] = mapped_column(Text)
    variables_json: Mapped[dict[str, Any] | None]
    architecture: Mapped[str | None] = mapped_column(Text)
    hyperparameters_json: Mapped[dict[str, Any] | None]
    training_hyperparameters_json: Mapped[dict[str, Any] | None]
    model_type: Mapped[str | None] = mapped_column(String(64))
    workspace_id: Mapped[str | None] = mapped_column(String(255))

    loop: Mapped[Loop] = relationship(back_populates="tasks")


class Factor(Base):
    """One factor implementation, first seen in `experiment_id`; id = `factor_id_for(name, code)`."""

    __tablename__ = "factors"
    __table_args__ = (Index(None, "factor_name"), Index(None, "experiment_id"))

    factor_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    factor_name: Mapped[str] = mapped_column(Text)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("loops.experiment_id", ondelete="CASCADE"))
    task_run_id: Mapped[str] = mapped_column(String(255))
    loop_id: Mapped[int] = mapped_column(Integer)
    workspace_id: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    formulation: Mapped[str | None] = mapped_column(Text)
    variables_json: Mapped[dict[str, Any] | None]
    code_sha256: Mapped[str] = mapped_column(String(64))
    created_at_utc: Mapped[datetime] = mapped_column(default=utcnow)
    # Where the factor lives in rd_factors_lib once promoted (all three NULL until then), and why it was not.
    impl_module: Mapped[str | None] = mapped_column(String(255))
    impl_func: Mapped[str | None] = mapped_column(String(255))
    impl_version: Mapped[str | None] = mapped_column(String(64))
    promotion_status: Mapped[str | None] = mapped_column(String(16))
    promotion_error: Mapped[str | None] = mapped_column(Text)


class FactorPackageVersion(Base):
    """One version of the rd_factors_lib package: its immutable tar.gz snapshot in the artifact store (by sha256)
    and the factors that version added or changed."""

    __tablename__ = "factor_package_versions"
    __table_args__ = (UniqueConstraint("version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    archive_path: Mapped[str] = mapped_column(String(1024))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    package_path: Mapped[str] = mapped_column(Text)
    added_json: Mapped[list[Any] | None]
    changed_json: Mapped[list[Any] | None]
    created_at_utc: Mapped[datetime] = mapped_column(default=utcnow)


class Workspace(Base):
    """One RD-Agent workspace folder, as recorded in the trace and as resolved on this machine."""

    __tablename__ = "workspaces"
    __table_args__ = (_one_of("kind", WORKSPACE_KINDS, "kind"), Index(None, "experiment_id"))

    workspace_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    task_run_id: Mapped[str] = mapped_column(ForeignKey("task_runs.task_run_id", ondelete="CASCADE"))
    loop_id: Mapped[int | None] = mapped_column(Integer)
    experiment_id: Mapped[str | None] = mapped_column(ForeignKey("loops.experiment_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="unknown")
    recorded_path: Mapped[str | None] = mapped_column(Text)
    workspace_path: Mapped[str | None] = mapped_column(Text)
    exists: Mapped[bool] = mapped_column(Boolean, default=False)
    task_index: Mapped[int | None] = mapped_column(Integer)
    created_at_utc: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at_utc: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Artifact(Base):
    """A named thing produced for a loop (a workspace file set, a materialized document, a chart).

    `experiment_id` and `workspace_id` are '' (never NULL) when not applicable, so the UNIQUE key holds on every
    database; assigning None is turned into '' for you.
    """

    __tablename__ = "artifacts"
    __table_args__ = (
        UniqueConstraint("experiment_id", "workspace_id", "artifact_type", "name"),
        _one_of("status", ARTIFACT_STATUSES, "status"),
        _one_of("root_kind", ROOT_KINDS, "root_kind"),
        Index(None, "task_run_id"),
        Index(None, "artifact_type"),
    )

    artifact_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_run_id: Mapped[str] = mapped_column(ForeignKey("task_runs.task_run_id", ondelete="CASCADE"))
    loop_id: Mapped[int | None] = mapped_column(Integer)
    experiment_id: Mapped[str] = mapped_column(String(300), default="", server_default="")
    workspace_id: Mapped[str] = mapped_column(String(255), default="", server_default="")
    artifact_type: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="present")
    root_kind: Mapped[str] = mapped_column(String(16))
    created_at_utc: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at_utc: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    files: Mapped[list[ArtifactFile]] = relationship(
        back_populates="artifact", cascade="all, delete-orphan", passive_deletes=True, order_by="ArtifactFile.path"
    )

    @validates("experiment_id", "workspace_id")
    def _none_is_empty(self, _key: str, value: str | None) -> str:
        return "" if value is None else value


class ArtifactFile(Base):
    """One file of an artifact; `path` is POSIX, relative to the artifact's root (workspace or store)."""

    __tablename__ = "artifact_files"
    __table_args__ = (UniqueConstraint("artifact_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.artifact_id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    mime_type: Mapped[str | None] = mapped_column(String(128))
    is_symlink: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at_utc: Mapped[datetime] = mapped_column(default=utcnow)

    artifact: Mapped[Artifact] = relationship(back_populates="files")


class TraceFile(Base):
    """One pickle of a trace as last seen (size + mtime), so a re-ingest reads only what changed."""

    __tablename__ = "trace_files"
    __table_args__ = (UniqueConstraint("task_run_id", "relpath"), _one_of("status", TRACE_FILE_STATUSES, "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_run_id: Mapped[str] = mapped_column(ForeignKey("task_runs.task_run_id", ondelete="CASCADE"))
    loop_id: Mapped[int | None] = mapped_column(Integer)
    relpath: Mapped[str] = mapped_column(String(1024))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="ok")
    error: Mapped[str | None] = mapped_column(Text)
    seen_at_utc: Mapped[datetime] = mapped_column(default=utcnow)


class IngestRun(Base):
    """One `rdbridge ingest` invocation; `finished_at_utc` NULL means it crashed or is still running."""

    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at_utc: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at_utc: Mapped[datetime | None]
    log_root: Mapped[str] = mapped_column(Text)
    workspace_root: Mapped[str | None] = mapped_column(Text)
    counts_json: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16), default="running")
