"""Initial registry schema: runs, loops (with the materialization state machine), tasks, factors, workspaces,
artifacts and their files, trace-file bookkeeping and ingest runs.

Written out in full (not `create_all`) so that later revisions have a fixed starting point; a test checks that
it produces exactly the schema of `rdbridge.registry.models`.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str) -> sa.Column:
    return sa.Column(name, sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True)


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=name)


def upgrade() -> None:
    op.create_table(
        "task_runs",
        sa.Column("task_run_id", sa.String(255), nullable=False),
        sa.Column("run_folder", sa.Text(), nullable=False),
        sa.Column("scenario", sa.String(64), nullable=False),
        sa.Column("log_trace_path", sa.Text(), nullable=False),
        sa.Column("workspace_root", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("loop_count", sa.Integer(), nullable=False),
        _utc("started_at_utc", nullable=True),
        _utc("created_at_utc"),
        _utc("updated_at_utc"),
        sa.PrimaryKeyConstraint("task_run_id", name="pk_task_runs"),
        _one_of("status", ("running", "completed", "failed"), "ck_task_runs_status"),
    )

    op.create_table(
        "loops",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_run_id", sa.String(255), nullable=False),
        sa.Column("loop_id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.String(300), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_step", sa.String(128), nullable=True),
        sa.Column("hypothesis", sa.Text(), nullable=True),
        _json("hypothesis_json"),
        sa.Column("has_result", sa.Integer(), nullable=False),
        _json("metrics_json"),
        sa.Column("metrics_source", sa.Text(), nullable=True),
        _json("feedback_json"),
        sa.Column("decision", sa.Boolean(), nullable=True),
        sa.Column("best_workspace_id", sa.String(255), nullable=True),
        sa.Column("experiment_workspace_id", sa.String(255), nullable=True),
        sa.Column("signature_status", sa.String(16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _json("errors_json"),
        sa.Column("trace_fingerprint", sa.String(128), nullable=True),
        sa.Column("materialization_status", sa.String(16), nullable=True),
        sa.Column("materialization_error", sa.Text(), nullable=True),
        _utc("materialization_updated_at_utc", nullable=True),
        sa.Column("materialization_lease_owner", sa.String(255), nullable=True),
        _utc("materialization_lease_expires_at_utc", nullable=True),
        sa.Column("materialization_attempts", sa.Integer(), nullable=False),
        _utc("started_at_utc", nullable=True),
        _utc("created_at_utc"),
        _utc("updated_at_utc"),
        sa.PrimaryKeyConstraint("id", name="pk_loops"),
        sa.ForeignKeyConstraint(
            ["task_run_id"], ["task_runs.task_run_id"], name="fk_loops_task_run_id_task_runs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("task_run_id", "loop_id", name="uq_loops_task_run_id_loop_id"),
        sa.UniqueConstraint("experiment_id", name="uq_loops_experiment_id"),
        _one_of("action", ("factor", "model", "quant"), "ck_loops_action"),
        _one_of("status", ("running", "completed", "failed"), "ck_loops_status"),
        _one_of("materialization_status", ("pending", "running", "done", "failed"), "ck_loops_materialization_status"),
        sa.CheckConstraint("has_result IN (0, 1)", name="ck_loops_has_result"),
    )
    op.create_index("ix_loops_materialization_status", "loops", ["materialization_status"])
    op.create_index("ix_loops_action", "loops", ["action"])
    op.create_index("ix_loops_has_result", "loops", ["has_result"])

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("experiment_id", sa.String(300), nullable=False),
        sa.Column("task_run_id", sa.String(255), nullable=False),
        sa.Column("loop_id", sa.Integer(), nullable=False),
        sa.Column("task_index", sa.Integer(), nullable=False),
        sa.Column("task_type", sa.String(16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("formulation", sa.Text(), nullable=True),
        _json("variables_json"),
        sa.Column("architecture", sa.Text(), nullable=True),
        _json("hyperparameters_json"),
        _json("training_hyperparameters_json"),
        sa.Column("model_type", sa.String(64), nullable=True),
        sa.Column("workspace_id", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["loops.experiment_id"], name="fk_tasks_experiment_id_loops", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("experiment_id", "task_index", name="uq_tasks_experiment_id_task_index"),
        _one_of("task_type", ("factor", "model"), "ck_tasks_task_type"),
    )
    op.create_index("ix_tasks_name", "tasks", ["name"])

    op.create_table(
        "factors",
        sa.Column("factor_id", sa.String(16), nullable=False),
        sa.Column("factor_name", sa.Text(), nullable=False),
        sa.Column("experiment_id", sa.String(300), nullable=False),
        sa.Column("task_run_id", sa.String(255), nullable=False),
        sa.Column("loop_id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.String(255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("formulation", sa.Text(), nullable=True),
        _json("variables_json"),
        sa.Column("code_sha256", sa.String(64), nullable=False),
        _utc("created_at_utc"),
        sa.PrimaryKeyConstraint("factor_id", name="pk_factors"),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["loops.experiment_id"], name="fk_factors_experiment_id_loops", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_factors_factor_name", "factors", ["factor_name"])
    op.create_index("ix_factors_experiment_id", "factors", ["experiment_id"])

    op.create_table(
        "workspaces",
        sa.Column("workspace_id", sa.String(255), nullable=False),
        sa.Column("task_run_id", sa.String(255), nullable=False),
        sa.Column("loop_id", sa.Integer(), nullable=True),
        sa.Column("experiment_id", sa.String(300), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("recorded_path", sa.Text(), nullable=True),
        sa.Column("workspace_path", sa.Text(), nullable=True),
        sa.Column("exists", sa.Boolean(), nullable=False),
        sa.Column("task_index", sa.Integer(), nullable=True),
        _utc("created_at_utc"),
        _utc("updated_at_utc"),
        sa.PrimaryKeyConstraint("workspace_id", name="pk_workspaces"),
        sa.ForeignKeyConstraint(
            ["task_run_id"], ["task_runs.task_run_id"], name="fk_workspaces_task_run_id_task_runs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["loops.experiment_id"], name="fk_workspaces_experiment_id_loops", ondelete="CASCADE"
        ),
        _one_of("kind", ("factor", "model", "experiment", "unknown"), "ck_workspaces_kind"),
    )
    op.create_index("ix_workspaces_experiment_id", "workspaces", ["experiment_id"])

    op.create_table(
        "artifacts",
        sa.Column("artifact_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_run_id", sa.String(255), nullable=False),
        sa.Column("loop_id", sa.Integer(), nullable=True),
        sa.Column("experiment_id", sa.String(300), server_default="", nullable=False),
        sa.Column("workspace_id", sa.String(255), server_default="", nullable=False),
        sa.Column("artifact_type", sa.String(64), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("root_kind", sa.String(16), nullable=False),
        _utc("created_at_utc"),
        _utc("updated_at_utc"),
        sa.PrimaryKeyConstraint("artifact_id", name="pk_artifacts"),
        sa.ForeignKeyConstraint(
            ["task_run_id"], ["task_runs.task_run_id"], name="fk_artifacts_task_run_id_task_runs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint(
            "experiment_id",
            "workspace_id",
            "artifact_type",
            "name",
            name="uq_artifacts_experiment_id_workspace_id_artifact_type_name",
        ),
        _one_of("status", ("present", "missing"), "ck_artifacts_status"),
        _one_of("root_kind", ("workspace", "store"), "ck_artifacts_root_kind"),
    )
    op.create_index("ix_artifacts_task_run_id", "artifacts", ["task_run_id"])
    op.create_index("ix_artifacts_artifact_type", "artifacts", ["artifact_type"])

    op.create_table(
        "artifact_files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("artifact_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("mime_type", sa.String(128), nullable=True),
        sa.Column("is_symlink", sa.Boolean(), nullable=False),
        _utc("created_at_utc"),
        sa.PrimaryKeyConstraint("id", name="pk_artifact_files"),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.artifact_id"],
            name="fk_artifact_files_artifact_id_artifacts",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("artifact_id", "path", name="uq_artifact_files_artifact_id_path"),
    )

    op.create_table(
        "trace_files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_run_id", sa.String(255), nullable=False),
        sa.Column("loop_id", sa.Integer(), nullable=True),
        sa.Column("relpath", sa.String(1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _utc("seen_at_utc"),
        sa.PrimaryKeyConstraint("id", name="pk_trace_files"),
        sa.ForeignKeyConstraint(
            ["task_run_id"], ["task_runs.task_run_id"], name="fk_trace_files_task_run_id_task_runs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("task_run_id", "relpath", name="uq_trace_files_task_run_id_relpath"),
        _one_of("status", ("ok", "error"), "ck_trace_files_status"),
    )

    op.create_table(
        "ingest_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _utc("started_at_utc"),
        _utc("finished_at_utc", nullable=True),
        sa.Column("log_root", sa.Text(), nullable=False),
        sa.Column("workspace_root", sa.Text(), nullable=True),
        _json("counts_json"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ingest_runs"),
    )


def downgrade() -> None:
    for table in (
        "ingest_runs",
        "trace_files",
        "artifact_files",
        "artifacts",
        "workspaces",
        "factors",
        "tasks",
        "loops",
        "task_runs",
    ):
        op.drop_table(table)
