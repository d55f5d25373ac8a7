"""The platform database: its own engine setup and its own Alembic migrations, separate from the registry's.

SQLite by default (`$RDBRIDGE_HOME/platform.sqlite`, WAL, busy timeout, the driver's implicit transactions off so
one sync is one real transaction), PostgreSQL by URL. Alembic keeps its revision in `platform_alembic_version`, so
the platform may share a PostgreSQL database with a registry without the two histories meeting.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from rdbridge.config import home_dir

PLATFORM_DB_ENV = "RDBRIDGE_PLATFORM_DB"
VERSION_TABLE = "platform_alembic_version"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x706C_6174_666D  # "platfm": advisory lock id for platform schema changes on PostgreSQL
_IMMEDIATE = "rdbridge_platform_immediate"


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


def normalize_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise PlatformURLError(f"cannot parse platform database URL {str(url)!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend != "sqlite":
        raise PlatformURLError(
            f"platform database URL uses {backend!r}; use sqlite:///path/platform.sqlite or postgresql://user@host/db")
    return parsed


def make_engine(url: str | URL) -> Engine:
    """An engine for the platform database (parent folder of a SQLite file created)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 30000")
        if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE) else "BEGIN")

    return engine


@contextmanager
def session_scope(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """One transaction: commit at the end of the block, roll back on any error (a killed process commits nothing)."""
    bind = engine.execution_options(**{_IMMEDIATE: True}) if write else engine
    session = sessionmaker(bind=bind, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def init_platform_db(url: str | URL | Engine) -> Engine:
    """Bring the platform schema to head (idempotent; concurrent callers serialise on a lock) and return the engine."""
    from alembic import command

    engine = url if isinstance(url, Engine) else make_engine(url)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(**{_IMMEDIATE: True})
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
