"""Engines, sessions and schema migration for the registry, on SQLite (embedded, WAL) or PostgreSQL.

SQLite is set up for several processes at once (ingest, materializer workers, the API) by `rdbridge.sqldb`, which
the platform database shares: WAL, a busy timeout, foreign keys, and `session_scope(..., write=True)` opening the
transaction with BEGIN IMMEDIATE so a writer queues for the lock instead of failing with "database is locked".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import URL

from rdbridge.registry.types import utcnow
from rdbridge.sqldb import (
    IMMEDIATE_OPTION,
    SQLITE_BUSY_TIMEOUT_MS,
    create_tuned_engine,
    parse_db_url,
    session_factory,
    session_scope,
    stamped_revision,
)

__all__ = [
    "RegistryURLError",
    "make_engine",
    "session_factory",
    "session_scope",
    "init_db",
    "downgrade_db",
    "current_revision",
    "head_revision",
    "utcnow",
    "IMMEDIATE_OPTION",
    "SQLITE_BUSY_TIMEOUT_MS",
]

_MIGRATION_LOCK_KEY = 0x7264_6272_6964  # "rdbrid": one advisory lock id for schema changes on PostgreSQL
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class RegistryURLError(ValueError):
    """The registry URL names a database rdbridge does not support or cannot parse."""


_URL_HINT = (
    "rdbridge supports sqlite:///path/to/registry.sqlite and postgresql://user@host:5432/dbname "
    "(set it with --db or $RDBRIDGE_DB)"
)


def normalize_url(url: str | URL) -> URL:
    """Parse a registry URL; `postgresql://` and `postgres://` become the psycopg 3 driver."""
    return parse_db_url(url, RegistryURLError, "registry", _URL_HINT)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for the registry at `url`, tuned for concurrent use (`rdbridge.sqldb`).

    For a SQLite file the parent folder is created. Extra keyword arguments go to `sqlalchemy.create_engine`.
    """
    return create_tuned_engine(normalize_url(url), **kwargs)


# --------------------------------------------------------------------------------------------------- migrations


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Any:
    """An Alembic Config pointing at the migrations packaged with rdbridge (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _as_engine(url_or_engine: str | URL | Engine) -> tuple[Engine, bool]:
    """The engine to use and whether we made it (then the caller may dispose of it)."""
    if isinstance(url_or_engine, Engine):
        return url_or_engine, False
    return make_engine(url_or_engine), True


@contextmanager
def _migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the schema lock: concurrent callers run one after the other, the later ones no-op."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(**{IMMEDIATE_OPTION: True})
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            yield conn


HEAD_REVISION = "0002_factor_package"
"""The newest migration shipped (``migrations/versions``): a database stamped with it needs no Alembic at all. A
test checks it against Alembic's own script directory, so a new migration cannot ship without updating it."""


def init_db(url_or_engine: str | URL | Engine) -> Engine:
    """Bring the registry schema to the newest revision (Alembic `upgrade head`) and return an engine for it.

    Idempotent and safe to call from several processes at once: the upgrade runs in one transaction under a lock
    (PostgreSQL advisory lock; SQLite write lock), so a second caller waits, then finds nothing to do. A database
    already at ``HEAD_REVISION`` is recognised by one SELECT, without importing Alembic (~75 ms of every command
    that opens the registry: ingest, materialize, promote).
    """
    engine, _ = _as_engine(url_or_engine)
    if stamped_revision(engine) == HEAD_REVISION:
        return engine
    from alembic import command

    with _migration_transaction(engine) as conn:
        command.upgrade(alembic_config(conn), "head")
    return engine


def downgrade_db(url_or_engine: str | URL | Engine, revision: str = "base") -> Engine:
    """Alembic `downgrade` to `revision` ("base" drops every registry table). For tests and rollbacks."""
    from alembic import command

    engine, _ = _as_engine(url_or_engine)
    with _migration_transaction(engine) as conn:
        command.downgrade(alembic_config(conn), revision)
    return engine


def current_revision(url_or_engine: str | URL | Engine) -> str | None:
    """The schema revision stamped in the database (None before `init_db`)."""
    from alembic.runtime.migration import MigrationContext

    engine, owned = _as_engine(url_or_engine)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def head_revision() -> str:
    """The newest revision shipped with this rdbridge."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "rdbridge ships at least one migration"
    return head
