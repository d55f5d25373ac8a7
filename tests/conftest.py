"""Shared fixtures: a registry database on each supported backend.

`db_url` is parametrized over a real SQLite file and a fresh PostgreSQL database on 127.0.0.1:5432 (trust auth,
user `postgres`, else `root`; override the admin URL with $RDBRIDGE_TEST_PG_ADMIN_URL). PostgreSQL is not optional:
when it is down the postgres cases fail (`scripts/test.sh` starts it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

PG_ADMIN_ENV = "RDBRIDGE_TEST_PG_ADMIN_URL"
_PG_USERS = ("postgres", "root")


def _pg_admin_conninfo() -> str:
    """A working admin connection string (the first candidate user that can connect)."""
    explicit = os.environ.get(PG_ADMIN_ENV)
    candidates = [explicit] if explicit else [f"postgresql://{u}@127.0.0.1:5432/postgres" for u in _PG_USERS]
    errors = []
    for conninfo in candidates:
        try:
            with psycopg.connect(conninfo, connect_timeout=5):
                return conninfo
        except psycopg.OperationalError as exc:
            errors.append(f"{conninfo}: {str(exc).strip()}")
    pytest.fail(
        "PostgreSQL on 127.0.0.1:5432 is required for the postgres cases (run scripts/test.sh, which starts it):\n"
        + "\n".join(errors)
    )


def _with_database(conninfo: str, dbname: str) -> str:
    base, _, _ = conninfo.rpartition("/")
    return f"{base}/{dbname}"


def _drop_pg_database(admin: str, dbname: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty registry database: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        return
    admin = _pg_admin_conninfo()
    dbname = f"rdbridge_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}" ENCODING \'UTF8\' TEMPLATE template0')
    try:
        yield _with_database(admin, dbname).replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        _drop_pg_database(admin, dbname)


@pytest.fixture
def registry_engine(db_url: str) -> Iterator[Engine]:
    """An engine on a migrated (Alembic `upgrade head`) registry; disposed afterwards."""
    from rdbridge.registry import init_db

    engine = init_db(db_url)
    try:
        yield engine
    finally:
        engine.dispose()
