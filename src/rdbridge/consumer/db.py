"""The platform database: its own engine setup and its own Alembic migrations, separate from the registry's.

SQLite by default (`$RDBRIDGE_HOME/platform.sqlite`, WAL, busy timeout, the driver's implicit transactions off so
one sync is one real transaction), PostgreSQL by URL. Alembic keeps its revision in `platform_alembic_version`, so
the platform may share a PostgreSQL database with a registry without the two histories meeting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import URL

from rdbridge.config import home_dir
from rdbridge.sqldb import IMMEDIATE_OPTION, create_tuned_engine, parse_db_url, session_scope, stamped_revision

__all__ = [
    "PlatformURLError",
    "default_platform_db_url",
    "default_store_dir",
    "normalize_url",
    "make_engine",
    "session_scope",
    "init_platform_db",
    "downgrade_platform_db",
]

PLATFORM_DB_ENV = "RDBRIDGE_PLATFORM_DB"
VERSION_TABLE = "platform_alembic_version"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x706C_6174_666D  # "platfm": advisory lock id for platform schema changes on PostgreSQL


class PlatformURLError(ValueError):
    """The platform database URL cannot be parsed or names an unsupported backend."""


def default_platform_db_url() -> str:
    """`--db` wins (callers pass it), then $RDBRIDGE_PLATFORM_DB, then `$RDBRIDGE_HOME/platform.sqlite`."""
    env = os.environ.get(PLATFORM_DB_ENV)
    if env:
        return env
    return f"sqlite:///{(home_dir() / 'platform.sqlite').resolve()}"


def default_store_dir(db_url: str) -> Path:
    """The file store that goes with a database: beside a SQLite file, else `$RDBRIDGE_HOME/platform_files`."""
    parsed = normalize_url(db_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        db = Path(parsed.database).expanduser()
        return db.parent / f"{db.stem}_files"
    return home_dir() / "platform_files"


_URL_HINT = "use sqlite:///path/platform.sqlite or postgresql://user@host/db (set it with --db or $RDBRIDGE_PLATFORM_DB)"


def normalize_url(url: str | URL) -> URL:
    """Parse a platform database URL; PostgreSQL gets the psycopg 3 driver."""
    return parse_db_url(url, PlatformURLError, "platform database", _URL_HINT)


def make_engine(url: str | URL) -> Engine:
    """An engine for the platform database, tuned for concurrent use like the registry's (`rdbridge.sqldb`)."""
    return create_tuned_engine(normalize_url(url))


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


HEAD_REVISION = "p0002_factor_verdicts"
"""The newest platform migration: a database stamped with it is answered without Alembic (a test checks the
constant against Alembic's script directory)."""


def init_platform_db(url: str | URL | Engine) -> Engine:
    """Bring the platform schema to head (idempotent; concurrent callers serialise on a lock) and return the engine.
    One SELECT answers a database already at head, without importing Alembic."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    if stamped_revision(engine, VERSION_TABLE) == HEAD_REVISION:
        return engine
    from alembic import command

    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(**{IMMEDIATE_OPTION: True})
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            command.upgrade(alembic_config(conn), "head")
    return engine


def downgrade_platform_db(engine: Engine, revision: str = "base") -> None:
    """Alembic downgrade of the platform schema (tests of the migrations)."""
    from alembic import command

    with engine.connect() as conn, conn.begin():
        command.downgrade(alembic_config(conn), revision)
