"""rd_factors_lib promotion: where each factor lives in the package (impl_module, impl_func, impl_version), its
promotion outcome, and one row per package version with its content-addressed snapshot.

Revision ID: 0002_factor_package
Revises: 0001_initial
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_factor_package"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FACTOR_COLUMNS = (
    ("impl_module", sa.String(255)),
    ("impl_func", sa.String(255)),
    ("impl_version", sa.String(64)),
    ("promotion_status", sa.String(16)),
    ("promotion_error", sa.Text()),
)


def _json(name: str) -> sa.Column:
    return sa.Column(name, sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("factors") as batch:
        for name, type_ in _FACTOR_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_table(
        "factor_package_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("archive_path", sa.String(1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("package_path", sa.Text(), nullable=False),
        _json("added_json"),
        _json("changed_json"),
        sa.Column("created_at_utc", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_factor_package_versions"),
        sa.UniqueConstraint("version", name="uq_factor_package_versions_version"),
    )


def downgrade() -> None:
    op.drop_table("factor_package_versions")
    with op.batch_alter_table("factors") as batch:
        for name, _ in reversed(_FACTOR_COLUMNS):
            batch.drop_column(name)
