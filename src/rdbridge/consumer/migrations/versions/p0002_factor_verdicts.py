"""Equivalence verdicts of platform factor implementations (written by `rdbridge verify`).

Revision ID: p0002_factor_verdicts
Revises: p0001_initial
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "p0002_factor_verdicts"
down_revision: str | None = "p0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "factor_verdicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("factor_name", sa.Text(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("verified_at_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("impl_version", sa.String(length=64), nullable=False),
        sa.Column("dataset_name", sa.String(length=255), nullable=False),
        sa.Column("dataset_sha256", sa.String(length=64), nullable=False),
        sa.Column("rtol", sa.Float(), nullable=False),
        sa.Column("atol", sa.Float(), nullable=False),
        sa.Column("candidate_kind", sa.String(length=8), nullable=False),
        sa.Column("candidate", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("report_path", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_factor_verdicts")),
    )
    op.create_index("ix_factor_verdicts_factor_name", "factor_verdicts", ["factor_name", "verified_at_utc"])


def downgrade() -> None:
    op.drop_index("ix_factor_verdicts_factor_name", table_name="factor_verdicts")
    op.drop_table("factor_verdicts")
