"""SQLAlchemy engines and transactions tuned for several processes at once, shared by the registry and the platform.

The registry (producer side) and the platform database (consumer side) are separate databases with separate
schemas and migrations, but they meet the same concurrency problem, so the connection setup lives here once:
SQLite in WAL so readers never block the writer, a busy timeout so writers queue instead of failing, foreign keys
on. The driver's own transaction handling is switched off and SQLAlchemy emits BEGIN itself, so a transaction
really is one (reads included) and a writer can ask for `BEGIN IMMEDIATE` (take the write lock up front, waiting
politely) instead of failing with "database is locked" when it upgrades a read to a write. PostgreSQL URLs get the
psycopg 3 driver.
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

SQLITE_BUSY_TIMEOUT_MS = 30_000
IMMEDIATE_OPTION = "rdbridge_sqlite_immediate"
"""Execution option: on SQLite, open the transaction with BEGIN IMMEDIATE (no effect elsewhere)."""


def parse_db_url(url: str | URL, error: type[ValueError], what: str, hint: str) -> URL:
    """Parse a database URL; `postgresql://` and `postgres://` become psycopg 3; anything but SQLite/PG is refused.

    `error` is the caller's own exception type and `what`/`hint` its words, so a bad URL names the setting it came
    from (the registry's `--db` / $RDBRIDGE_DB, the platform's `--db` / $RDBRIDGE_PLATFORM_DB).
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise error(f"cannot parse {what} URL {str(url)!r}: {exc}. {hint}") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        if parsed.drivername != "postgresql+psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise error(f"{what} URL {parsed.render_as_string(hide_password=True)!r} uses {backend!r}; {hint}")
    return parsed


def sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory and `file:` URIs."""
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db).expanduser()


def create_tuned_engine(parsed: URL, **kwargs: Any) -> Engine:
    """An engine for an already parsed URL, set up for concurrent use (module docstring).

    For a SQLite file the parent folder is created. Extra keyword arguments go to `sqlalchemy.create_engine`.
    """
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(parsed, **kwargs)
    path = sqlite_file(parsed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    connect_args.setdefault("check_same_thread", False)
    engine = create_engine(parsed, connect_args=connect_args, **kwargs)
    _install_sqlite_hooks(engine, wal=path is not None)
    return engine


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

    With an Engine, `write` picks BEGIN IMMEDIATE on SQLite (default: this helper is for changes; a killed process
    commits nothing); read-only callers pass `write=False` so they never wait for the write lock. With a
    sessionmaker, its own setting applies.
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


def stamped_revision(engine: Engine, version_table: str = "alembic_version") -> str | None:
    """The one revision in Alembic's ``version_table``, or None (no schema yet, several heads, or any error: then
    the caller's Alembic path decides). Lets a database already at head skip importing Alembic (~75 ms a command)."""
    if not version_table.isidentifier():
        raise ValueError(f"version table {version_table!r} is not an identifier")
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT version_num FROM {version_table}")).all()
    except Exception:  # noqa: BLE001 - no table yet, or anything else: let Alembic handle it
        return None
    return str(rows[0][0]) if len(rows) == 1 else None
