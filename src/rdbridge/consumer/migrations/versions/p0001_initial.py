"""Platform schema: the five libraries (factors, experiments + their artifact files, strategies, models,
Alpha158), the user's tags / marks / notes, and sync bookkeeping (cursors, runs).

Revision ID: p0001_initial
Revises: 
Create Date: 2026-12-02 04:20:33.632075
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'p0001_initial'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('lib_alpha158',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('expression', sa.Text(), nullable=False),
    sa.Column('group', sa.String(length=16), nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('window', sa.Integer(), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('impl_pointer', sa.String(length=255), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('remote_updated_at_utc', sa.DateTime(timezone=True), nullable=True),
    sa.Column('synced_at_utc', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_lib_alpha158'))
    )
    op.create_table('lib_artifact_files',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('experiment_id', sa.String(length=300), nullable=False),
    sa.Column('file_id', sa.BigInteger(), nullable=False),
    sa.Column('artifact_id', sa.BigInteger(), nullable=False),
    sa.Column('artifact_type', sa.String(length=64), nullable=False),
    sa.Column('artifact_name', sa.Text(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('mime_type', sa.String(length=128), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lib_artifact_files')),
    sa.UniqueConstraint('experiment_id', 'file_id', name='uq_lib_artifact_files_exp_file')
    )
    with op.batch_alter_table('lib_artifact_files', schema=None) as batch_op:
        batch_op.create_index('ix_lib_artifact_files_sha256', ['sha256'], unique=False)

    op.create_table('lib_experiments',
    sa.Column('experiment_id', sa.String(length=300), nullable=False),
    sa.Column('task_run_id', sa.String(length=255), nullable=False),
    sa.Column('loop_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('has_result', sa.Boolean(), nullable=False),
    sa.Column('key_metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('decision', sa.Boolean(), nullable=True),
    sa.Column('hypothesis', sa.Text(), nullable=True),
    sa.Column('materialization_status', sa.String(length=16), nullable=True),
    sa.Column('materialization_error', sa.Text(), nullable=True),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('in_library', sa.Boolean(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('remote_updated_at_utc', sa.DateTime(timezone=True), nullable=True),
    sa.Column('synced_at_utc', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('experiment_id', name=op.f('pk_lib_experiments'))
    )
    with op.batch_alter_table('lib_experiments', schema=None) as batch_op:
        batch_op.create_index('ix_lib_experiments_task_run_id', ['task_run_id', 'loop_id'], unique=False)

    op.create_table('lib_factors',
    sa.Column('id', sa.String(length=600), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('expression', sa.Text(), nullable=True),
    sa.Column('formula_hint', sa.Text(), nullable=True),
    sa.Column('variables', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('region', sa.String(length=64), nullable=True),
    sa.Column('freq', sa.String(length=32), nullable=True),
    sa.Column('align', sa.String(length=64), nullable=True),
    sa.Column('nan_policy', sa.String(length=64), nullable=True),
    sa.Column('best_metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('experiment_id', sa.String(length=300), nullable=True),
    sa.Column('factor_id', sa.String(length=64), nullable=True),
    sa.Column('code_sha256', sa.String(length=64), nullable=True),
    sa.Column('impl_module', sa.String(length=255), nullable=True),
    sa.Column('impl_func', sa.String(length=255), nullable=True),
    sa.Column('impl_version', sa.String(length=64), nullable=True),
    sa.Column('source_code', sa.Text(), nullable=True),
    sa.Column('source_origin', sa.String(length=32), nullable=True),
    sa.Column('created_at_utc', sa.DateTime(timezone=True), nullable=True),
    sa.Column('in_library', sa.Boolean(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('remote_updated_at_utc', sa.DateTime(timezone=True), nullable=True),
    sa.Column('synced_at_utc', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lib_factors'))
    )
    with op.batch_alter_table('lib_factors', schema=None) as batch_op:
        batch_op.create_index('ix_lib_factors_experiment_id', ['experiment_id'], unique=False)
        batch_op.create_index('ix_lib_factors_name', ['name'], unique=False)

    op.create_table('lib_models',
    sa.Column('experiment_id', sa.String(length=300), nullable=False),
    sa.Column('task_index', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('model_class', sa.String(length=255), nullable=True),
    sa.Column('architecture', sa.Text(), nullable=True),
    sa.Column('kwargs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('training_kwargs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('features', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('segments', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('decision', sa.Boolean(), nullable=True),
    sa.Column('in_library', sa.Boolean(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('remote_updated_at_utc', sa.DateTime(timezone=True), nullable=True),
    sa.Column('synced_at_utc', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('experiment_id', 'task_index', name=op.f('pk_lib_models'))
    )
    op.create_table('lib_strategies',
    sa.Column('strategy_id', sa.String(length=255), nullable=False),
    sa.Column('config_files', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('loops', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('remote_updated_at_utc', sa.DateTime(timezone=True), nullable=True),
    sa.Column('synced_at_utc', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('strategy_id', name=op.f('pk_lib_strategies'))
    )
    op.create_table('sync_cursors',
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('watermark_utc', sa.DateTime(timezone=True), nullable=True),
    sa.Column('etag_url', sa.Text(), nullable=True),
    sa.Column('etag', sa.Text(), nullable=True),
    sa.Column('updated_at_utc', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('resource', name=op.f('pk_sync_cursors'))
    )
    op.create_table('sync_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('api_url', sa.Text(), nullable=False),
    sa.Column('started_at_utc', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at_utc', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('summary', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs'))
    )
    op.create_table('user_marks',
    sa.Column('target_kind', sa.String(length=32), nullable=False),
    sa.Column('target_key', sa.String(length=600), nullable=False),
    sa.Column('mark', sa.String(length=32), nullable=False),
    sa.Column('updated_at_utc', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('target_kind', 'target_key', name=op.f('pk_user_marks'))
    )
    op.create_table('user_notes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('target_kind', sa.String(length=32), nullable=False),
    sa.Column('target_key', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at_utc', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_notes'))
    )
    with op.batch_alter_table('user_notes', schema=None) as batch_op:
        batch_op.create_index('ix_user_notes_target', ['target_kind', 'target_key'], unique=False)

    op.create_table('user_tags',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('target_kind', sa.String(length=32), nullable=False),
    sa.Column('target_key', sa.Text(), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.Column('created_at_utc', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_tags')),
    sa.UniqueConstraint('target_kind', 'target_key', 'tag', name='uq_user_tags_target_tag')
    )



def downgrade() -> None:

    op.drop_table('user_tags')
    with op.batch_alter_table('user_notes', schema=None) as batch_op:
        batch_op.drop_index('ix_user_notes_target')

    op.drop_table('user_notes')
    op.drop_table('user_marks')
    op.drop_table('sync_runs')
    op.drop_table('sync_cursors')
    op.drop_table('lib_strategies')
    op.drop_table('lib_models')
    with op.batch_alter_table('lib_factors', schema=None) as batch_op:
        batch_op.drop_index('ix_lib_factors_name')
        batch_op.drop_index('ix_lib_factors_experiment_id')

    op.drop_table('lib_factors')
    with op.batch_alter_table('lib_experiments', schema=None) as batch_op:
        batch_op.drop_index('ix_lib_experiments_task_run_id')

    op.drop_table('lib_experiments')
    with op.batch_alter_table('lib_artifact_files', schema=None) as batch_op:
        batch_op.drop_index('ix_lib_artifact_files_sha256')

    op.drop_table('lib_artifact_files')
    op.drop_table('lib_alpha158')

