"""The platform's own tables: the five libraries sync fills, the user's annotations sync never touches, and sync's
bookkeeping. Library rows keep the API's content hash so a re-sync can tell created / updated / unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}
Json = JSON().with_variant(postgresql.JSONB(), "postgresql")
Utc = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class _Synced:
    content_hash: Mapped[str] = mapped_column(String(64))
    remote_updated_at_utc: Mapped[datetime | None] = mapped_column(Utc, nullable=True)
    synced_at_utc: Mapped[datetime] = mapped_column(Utc)


class LibFactor(_Synced, Base):
    """One catalog factor (Alpha158, package or RD-Agent implementation); `in_library` once its loop is done."""

    __tablename__ = "lib_factors"
    id: Mapped[str] = mapped_column(String(600), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    expression: Mapped[str | None] = mapped_column(Text, nullable=True)
    formula_hint: Mapped[str | None] = mapped_column(Text, nullable=True)
    variables: Mapped[Any] = mapped_column(Json, nullable=True)
    tags: Mapped[Any] = mapped_column(Json, nullable=True)
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    freq: Mapped[str | None] = mapped_column(String(32), nullable=True)
    align: Mapped[str | None] = mapped_column(String(64), nullable=True)
    nan_policy: Mapped[str | None] = mapped_column(String(64), nullable=True)
    best_metrics: Mapped[Any] = mapped_column(Json, nullable=True)
    experiment_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    factor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    impl_module: Mapped[str | None] = mapped_column(String(255), nullable=True)
    impl_func: Mapped[str | None] = mapped_column(String(255), nullable=True)
    impl_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_origin: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at_utc: Mapped[datetime | None] = mapped_column(Utc, nullable=True)
    in_library: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (Index("ix_lib_factors_name", "name"), Index("ix_lib_factors_experiment_id", "experiment_id"))


class LibExperiment(_Synced, Base):
    """Every loop the API lists; `in_library` only when its materialization is done (others show why not)."""

    __tablename__ = "lib_experiments"
    experiment_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    task_run_id: Mapped[str] = mapped_column(String(255))
    loop_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    has_result: Mapped[bool] = mapped_column(Boolean)
    key_metrics: Mapped[Any] = mapped_column(Json, nullable=True)
    decision: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    hypothesis: Mapped[str | None] = mapped_column(Text, nullable=True)
    materialization_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    materialization_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[Any] = mapped_column(Json, nullable=True)
    in_library: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (Index("ix_lib_experiments_task_run_id", "task_run_id", "loop_id"),)


class LibArtifactFile(Base):
    """A file of a library loop: where it sits in the local store (by sha256) or why it is not there."""

    __tablename__ = "lib_artifact_files"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(String(300))
    file_id: Mapped[int] = mapped_column(BigInteger)
    artifact_id: Mapped[int] = mapped_column(BigInteger)
    artifact_type: Mapped[str] = mapped_column(String(64))
    artifact_name: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mime_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # stored | refused | failed | unavailable
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    __table_args__ = (UniqueConstraint("experiment_id", "file_id", name="uq_lib_artifact_files_exp_file"),
                      Index("ix_lib_artifact_files_sha256", "sha256"))


class LibStrategy(_Synced, Base):
    __tablename__ = "lib_strategies"
    strategy_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    config_files: Mapped[Any] = mapped_column(Json, nullable=True)
    params: Mapped[Any] = mapped_column(Json, nullable=True)
    loops: Mapped[Any] = mapped_column(Json, nullable=True)


class LibModel(_Synced, Base):
    __tablename__ = "lib_models"
    experiment_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    task_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    model_class: Mapped[str | None] = mapped_column(String(255), nullable=True)
    architecture: Mapped[str | None] = mapped_column(Text, nullable=True)
    kwargs: Mapped[Any] = mapped_column(Json, nullable=True)
    training_kwargs: Mapped[Any] = mapped_column(Json, nullable=True)
    features: Mapped[Any] = mapped_column(Json, nullable=True)
    segments: Mapped[Any] = mapped_column(Json, nullable=True)
    metrics: Mapped[Any] = mapped_column(Json, nullable=True)
    decision: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    in_library: Mapped[bool] = mapped_column(Boolean, default=False)


class LibAlpha158(_Synced, Base):
    __tablename__ = "lib_alpha158"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    expression: Mapped[str] = mapped_column(Text)
    group: Mapped[str] = mapped_column(String(16))
    family: Mapped[str] = mapped_column(String(64))
    window: Mapped[int | None] = mapped_column(Integer, nullable=True)
    description: Mapped[str] = mapped_column(Text)
    impl_pointer: Mapped[str] = mapped_column(String(255))


class UserTag(Base):
    """The user's tags: written by the UI only, never by sync."""

    __tablename__ = "user_tags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_kind: Mapped[str] = mapped_column(String(32))
    target_key: Mapped[str] = mapped_column(Text)
    tag: Mapped[str] = mapped_column(String(64))
    created_at_utc: Mapped[datetime] = mapped_column(Utc)
    __table_args__ = (UniqueConstraint("target_kind", "target_key", "tag", name="uq_user_tags_target_tag"),)


class UserMark(Base):
    """One mark per target (candidate / rejected / verified ...): written by the UI only."""

    __tablename__ = "user_marks"
    target_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    target_key: Mapped[str] = mapped_column(String(600), primary_key=True)
    mark: Mapped[str] = mapped_column(String(32))
    updated_at_utc: Mapped[datetime] = mapped_column(Utc)


class UserNote(Base):
    __tablename__ = "user_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_kind: Mapped[str] = mapped_column(String(32))
    target_key: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    created_at_utc: Mapped[datetime] = mapped_column(Utc)
    __table_args__ = (Index("ix_user_notes_target", "target_kind", "target_key"),)


class SyncCursor(Base):
    """Per API list: the newest `updated_at_utc` applied, and the ETag of the last first-page answer."""

    __tablename__ = "sync_cursors"
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark_utc: Mapped[datetime | None] = mapped_column(Utc, nullable=True)
    etag_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at_utc: Mapped[datetime] = mapped_column(Utc)


class SyncRun(Base):
    """One row per finished sync (a killed sync leaves none: its transaction never committed)."""

    __tablename__ = "sync_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    api_url: Mapped[str] = mapped_column(Text)
    started_at_utc: Mapped[datetime] = mapped_column(Utc)
    finished_at_utc: Mapped[datetime] = mapped_column(Utc)
    ok: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[Any] = mapped_column(Json, nullable=True)


class FactorVerdict(Base):
    """One equivalence verification of a platform implementation against the reference at `impl_version`
    (written by `rdbridge verify`; history kept, the newest per factor is the verdict shown)."""

    __tablename__ = "factor_verdicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    factor_name: Mapped[str] = mapped_column(Text)
    verified: Mapped[bool] = mapped_column(Boolean)
    verified_at_utc: Mapped[datetime] = mapped_column(Utc)
    impl_version: Mapped[str] = mapped_column(String(64))
    dataset_name: Mapped[str] = mapped_column(String(255))
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    rtol: Mapped[float] = mapped_column(Float)
    atol: Mapped[float] = mapped_column(Float)
    candidate_kind: Mapped[str] = mapped_column(String(8))
    candidate: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    report_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    __table_args__ = (Index("ix_factor_verdicts_factor_name", "factor_name", "verified_at_utc"),)
