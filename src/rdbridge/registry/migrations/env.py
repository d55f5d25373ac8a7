"""Alembic environment for the registry, driven from `rdbridge.registry.db` (no alembic.ini).

`init_db` passes an open connection (already inside the locked migration transaction) in
`config.attributes["connection"]`; the `alembic` command line can instead set `sqlalchemy.url`.
"""

from __future__ import annotations

from alembic import context

from rdbridge.registry.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_kwargs() -> dict[str, object]:
    return {"target_metadata": target_metadata, "compare_type": True, "render_as_batch": True}


def run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **_configure_kwargs())
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **_configure_kwargs())
        with context.begin_transaction():
            context.run_migrations()
        return
    from rdbridge.registry.db import make_engine

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no registry to migrate: set sqlalchemy.url, or call rdbridge.registry.init_db(url)")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context.configure(connection=conn, **_configure_kwargs())
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
