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


def test_head_constant_is_alembics_head_and_a_database_at_head_skips_alembic(platform_url: str) -> None:
    """`HEAD_REVISION` is the newest platform migration, and a fresh process opening a platform database at head
    imports no Alembic, while one a revision behind is still migrated."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from alembic.script import ScriptDirectory

    from rdbridge.consumer.db import HEAD_REVISION, alembic_config

    assert HEAD_REVISION == ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine = init_platform_db(platform_url)
    code = ("import sys; from rdbridge.consumer.db import init_platform_db\n"
            "init_platform_db(sys.argv[1]); print('ALEMBIC', 'alembic' in sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    try:
        out = subprocess.run([sys.executable, "-c", code, platform_url], env=env, capture_output=True, text=True,
                             timeout=120)
        assert "ALEMBIC False" in out.stdout, out.stdout + out.stderr
        downgrade_platform_db(engine, "p0001_initial")
        out = subprocess.run([sys.executable, "-c", code, platform_url], env=env, capture_output=True, text=True,
                             timeout=120)
        assert "ALEMBIC True" in out.stdout, out.stdout + out.stderr
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert ctx.get_current_revision() == HEAD_REVISION
    finally:
        engine.dispose()
