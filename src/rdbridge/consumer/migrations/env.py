"""Alembic environment for the platform database, driven from `rdbridge.consumer.db.init_platform_db`."""

from __future__ import annotations

from alembic import context

from rdbridge.consumer.db import VERSION_TABLE
from rdbridge.consumer.models import Base

config = context.config


def _run(connection: object) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE,
                      compare_type=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:
    raise SystemExit("the platform schema is migrated by rdbridge.consumer.db.init_platform_db(url)")
_run(connection)
