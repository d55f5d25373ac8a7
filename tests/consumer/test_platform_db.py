"""The platform database's own Alembic history: upgrade, downgrade, and migration == models, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from rdbridge.consumer.db import VERSION_TABLE, downgrade_platform_db, init_platform_db
from rdbridge.consumer.models import Base


def test_migrations_match_models_and_round_trip(platform_url: str) -> None:
    engine = init_platform_db(platform_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
            assert ctx.get_current_revision() == "p0002_factor_verdicts"
        tables = set(inspect(engine).get_table_names())
        assert {"lib_factors", "user_tags", "sync_cursors", "factor_verdicts", VERSION_TABLE} <= tables
        assert "alembic_version" not in tables  # the registry's version table is not touched
        downgrade_platform_db(engine)
        assert set(inspect(engine).get_table_names()) <= {VERSION_TABLE}
        init_platform_db(engine)
        init_platform_db(engine)  # idempotent
        assert "lib_factors" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
