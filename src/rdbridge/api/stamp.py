"""A cheap registry change stamp: a value that differs whenever any write was committed since it was last read.

The response cache compares it on every request, so it must cost microseconds and never be wrong in the stale
direction (a change always changes the stamp; a stamp may also change without a change to our tables, which only
costs a cache miss).

- SQLite file: `PRAGMA data_version` on one connection this process keeps open and never writes with; SQLite
  changes it whenever another connection commits. The pragma reads the WAL index only (no lock wait: busy timeout 0;
  a busy answer means "unknown", and the request is served uncached).
- PostgreSQL: the text of the current transaction snapshot (xmin:xmax:running xids). Any write transaction that
  commits or aborts moves xmax or leaves the running list (cluster-wide: other databases' writes also move it).
- Anything else (e.g. an in-memory SQLite): no stamp, no cache.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, text

Stamp = Callable[[], str | None]
"""Returns the current stamp, or None when it cannot be read now (then nothing is cached or served from cache)."""


def sqlite_stamp(path: str) -> Stamp:
    """data_version of a private connection to the SQLite file at `path`."""
    lock = threading.Lock()
    state: dict[str, sqlite3.Connection | None] = {"conn": None}

    def read() -> str | None:
        with lock:
            try:
                conn = state["conn"]
                if conn is None:  # mode=rw: never creates a missing registry file
                    conn = state["conn"] = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=rw", uri=True,
                                                           timeout=0, check_same_thread=False, isolation_level=None)
                return f"s{conn.execute('PRAGMA data_version').fetchone()[0]}"
            except sqlite3.Error:
                state["conn"] = None
                return None

    return read


def postgres_stamp(engine: Engine) -> Stamp:
    """The snapshot text of a fresh read (one round trip on a pooled connection)."""
    q = text("SELECT pg_current_snapshot()::text")

    def read() -> str | None:
        try:
            with engine.connect() as conn:
                return "p" + str(conn.execute(q).scalar_one())
        except Exception:  # noqa: BLE001 - an unreadable stamp only disables caching for this request
            return None

    return read


def stamp_for(engine: Engine) -> tuple[Stamp | None, bool]:
    """(stamp reader or None, whether reading it blocks on the network and belongs in a worker thread)."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        db = url.database
        if not db or db == ":memory:" or db.startswith("file:"):
            return None, False
        return sqlite_stamp(db), False
    if url.get_backend_name() == "postgresql":
        return postgres_stamp(engine), True
    return None, False
