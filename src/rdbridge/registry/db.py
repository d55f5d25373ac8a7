"""Engines, sessions and schema migration for the registry, on SQLite (embedded, WAL) or PostgreSQL.

SQLite is set up for several processes at once (ingest, materializer workers, the API): WAL so readers never block
the writer, a busy timeout so writers queue instead of failing, foreign keys on. Its driver's own transaction
handling is switched off and SQLAlchemy emits BEGIN itself, so a transaction really is one (reads included) and a
writer can ask for `BEGIN IMMEDIATE` (take the write lock up front, waiting politely) instead of failing with
"database is locked" when it upgrades a read to a write. `session_scope(..., write=True)` does that.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from rdbridge.registry.types import utcnow

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
]

SQLITE_BUSY_TIMEOUT_MS = 30_000
IMMEDIATE_OPTION = "rdbridge_sqlite_immediate"
"""Execution option: on SQLite, open the transaction with BEGIN IMMEDIATE (no effect elsewhere)."""

_MIGRATION_LOCK_KEY = 0x7264_6272_6964  # "rdbrid": one advisory lock id for schema changes on PostgreSQL
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class RegistryURLError(ValueError):
    """The registry URL names a database rdbridge does not support or cannot parse."""


def normalize_url(url: str | URL) -> URL:
    """Parse a registry URL; `postgresql://` and `postgres://` become the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise RegistryURLError(
            f"cannot parse registry URL {str(url)!r}: {exc}. Use sqlite:///path/to/registry.sqlite or "
            "postgresql://user@host:5432/dbname (set it with --db or $RDBRIDGE_DB)"
        ) from exc
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        if parsed.drivername != "postgresql+psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise RegistryURLError(
            f"registry URL {parsed.render_as_string(hide_password=True)!r} uses {backend!r}; rdbridge supports "
            "sqlite:///... and postgresql://... (set it with --db or $RDBRIDGE_DB)"
        )
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db).expanduser()


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for the registry at `url`, tuned for concurrent use (see module docstring).

    For a SQLite file the parent folder is created. Extra keyword arguments go to `sqlalchemy.create_engine`.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        connect_args.setdefault("check_same_thread", False)
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        _install_sqlite_hooks(engine, wal=path is not None)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _switch_to_wal(cur: sqlite3.Cursor) -> None:
    """Put the database file in WAL mode, retrying while another process does the same.

    WAL mode is stored in the file, so this only races when several processes open a fresh database at once. The
    switch needs an exclusive lock, and SQLite answers "database is locked" at once (without its busy handler) when
    waiting could deadlock, so busy_timeout alone does not cover it: retry until the same deadline.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _install_sqlite_hooks(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if wal:
                _switch_to_wal(cur)
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def session_factory(engine: Engine, *, write: bool = False) -> sessionmaker[Session]:
    """A sessionmaker for `engine`. `write=True`: on SQLite each transaction takes the write lock when it begins.

    `expire_on_commit=False` so rows read in a finished transaction stay usable (the API and CLI print them).
    """
    bind = engine.execution_options(**{IMMEDIATE_OPTION: True}) if write else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


@contextmanager
def session_scope(engine_or_factory: Engine | sessionmaker[Session], *, write: bool = True) -> Iterator[Session]:
    """One transaction: commit when the block ends, roll back (and re-raise) on any error.

    With an Engine, `write` picks BEGIN IMMEDIATE on SQLite (default: this helper is for changes); read-only callers
    pass `write=False` so they never wait for the write lock. With a sessionmaker, its own setting applies.
    """
    factory = (
        session_factory(engine_or_factory, write=write) if isinstance(engine_or_factory, Engine) else engine_or_factory
    )
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


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


def init_db(url_or_engine: str | URL | Engine) -> Engine:
    """Bring the registry schema to the newest revision (Alembic `upgrade head`) and return an engine for it.

    Idempotent and safe to call from several processes at once: the upgrade runs in one transaction under a lock
    (PostgreSQL advisory lock; SQLite write lock), so a second caller waits, then finds nothing to do.
    """
    from alembic import command

    engine, _ = _as_engine(url_or_engine)
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
