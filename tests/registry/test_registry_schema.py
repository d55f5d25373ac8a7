"""Migrations and engine setup, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text

from rdbridge.registry import (
    Base,
    IngestRun,
    RegistryURLError,
    current_revision,
    downgrade_db,
    head_revision,
    init_db,
    make_engine,
    normalize_url,
    session_scope,
    utcnow,
)

EXPECTED_TABLES = {
    "task_runs",
    "loops",
    "tasks",
    "factors",
    "workspaces",
    "artifacts",
    "artifact_files",
    "trace_files",
    "ingest_runs",
    "factor_package_versions",
}


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_migration_creates_every_table_and_second_init_is_a_noop(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        init_db(engine)
        assert _tables(engine) == EXPECTED_TABLES | {"alembic_version"}
        assert current_revision(engine) == head_revision() == "0002_factor_package"
        with session_scope(engine) as s:
            s.add(IngestRun(log_root="/logs", workspace_root="/ws", status="completed", counts_json={"loops": 3}))

        init_db(engine)  # again: nothing changes, nothing is lost

        assert current_revision(engine) == head_revision()
        with session_scope(engine, write=False) as s:
            rows = s.scalars(select(IngestRun)).all()
        assert [(r.log_root, r.counts_json) for r in rows] == [("/logs", {"loops": 3})]
    finally:
        engine.dispose()


def test_init_db_accepts_a_url_and_returns_a_working_engine(db_url: str) -> None:
    engine = init_db(db_url)
    try:
        assert EXPECTED_TABLES <= _tables(engine)
    finally:
        engine.dispose()


def test_migration_matches_the_models_exactly(registry_engine: Engine) -> None:
    with registry_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_filter_columns_are_indexed(registry_engine: Engine) -> None:
    insp = inspect(registry_engine)

    def indexed(table: str) -> set[tuple[str, ...]]:
        return {tuple(ix["column_names"]) for ix in insp.get_indexes(table)}

    assert {("materialization_status",), ("action",), ("has_result",)} <= indexed("loops")
    assert ("factor_name",) in indexed("factors")
    assert ("name",) in indexed("tasks")


def test_downgrade_to_base_then_upgrade_to_head(registry_engine: Engine) -> None:
    downgrade_db(registry_engine, "base")
    assert _tables(registry_engine) & EXPECTED_TABLES == set()
    assert current_revision(registry_engine) is None

    init_db(registry_engine)
    assert EXPECTED_TABLES <= _tables(registry_engine)
    assert current_revision(registry_engine) == head_revision()


def test_concurrent_init_db_from_separate_processes(db_url: str) -> None:
    """Several processes migrating a fresh database at once: all succeed, the schema is created once."""
    script = textwrap.dedent(
        """
        import sys, time
        from rdbridge.registry import init_db
        import alembic.command, alembic.runtime.migration  # imported before the start line
        time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
        init_db(sys.argv[1]).dispose()
        print("ok")
        """
    )
    start_at = str(time.time() + 3.0)  # all processes start migrating at the same instant
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url, start_at], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == "ok"
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        assert EXPECTED_TABLES <= _tables(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()


def test_wal_switch_waits_for_a_writer_holding_a_rollback_journal_lock(tmp_path) -> None:
    """The CI race: a fresh file still in rollback mode, another process inside BEGIN IMMEDIATE.

    SQLite refuses `PRAGMA journal_mode = WAL` at once in that state (no busy handler), so connecting must retry
    until the writer is done instead of failing with "database is locked".
    """
    path = tmp_path / "fresh.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (i INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.4, lambda: holder.execute("COMMIT"))
    release.start()
    engine = make_engine(f"sqlite:///{path}")
    try:
        started = time.monotonic()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
        assert time.monotonic() - started >= 0.2  # it did wait for the writer
    finally:
        release.join()
        engine.dispose()
        holder.close()


def test_engine_settings_for_the_backend(registry_engine: Engine, db_url: str) -> None:
    """SQLite: WAL on the file itself, foreign keys, busy timeout. PostgreSQL: psycopg 3, UTF-8."""
    with registry_engine.connect() as conn:
        if registry_engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1  # NORMAL
        else:
            assert registry_engine.dialect.driver == "psycopg"
            assert conn.exec_driver_sql("SHOW server_encoding").scalar_one() == "UTF8"
    if registry_engine.dialect.name == "sqlite":
        # WAL is a property of the file: a plain sqlite3 connection that never asked for it sees it too.
        raw = sqlite3.connect(registry_engine.url.database)
        try:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            raw.close()


def test_url_forms_are_accepted_and_bad_ones_explained(db_url: str, tmp_path) -> None:
    if db_url.startswith("sqlite"):
        nested = tmp_path / "a" / "b" / "registry.sqlite"
        engine = make_engine(f"sqlite:///{nested}")
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
            assert nested.parent.is_dir()  # parent folders made for the user
        finally:
            engine.dispose()
    else:
        plain = db_url.replace("postgresql+psycopg://", "postgresql://")
        assert normalize_url(plain).drivername == "postgresql+psycopg"
        assert normalize_url(plain.replace("postgresql://", "postgres://")).drivername == "postgresql+psycopg"
        engine = make_engine(plain)
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
        finally:
            engine.dispose()
    with pytest.raises(RegistryURLError, match="mysql.*sqlite:///.*postgresql://"):
        normalize_url("mysql://u@h/db")
    with pytest.raises(RegistryURLError, match="cannot parse registry URL"):
        normalize_url("not a url")


def test_session_scope_rolls_back_on_error(registry_engine: Engine) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with session_scope(registry_engine) as s:
            s.add(IngestRun(log_root="/rolled-back", status="running", started_at_utc=utcnow()))
            s.flush()
            raise RuntimeError("boom")
    with session_scope(registry_engine, write=False) as s:
        assert s.scalars(select(IngestRun.log_root)).all() == []


def test_head_constant_is_alembics_head_and_a_database_at_head_skips_alembic(db_url: str) -> None:
    """`HEAD_REVISION` names the newest migration (a new one cannot ship without it), and opening a registry at
    head imports no Alembic (a fresh process: the fast path), while an older one is still migrated."""
    import os
    from pathlib import Path

    from rdbridge.registry.db import HEAD_REVISION, downgrade_db

    assert HEAD_REVISION == head_revision()
    init_db(db_url).dispose()
    code = ("import sys; from rdbridge.registry import init_db, current_revision\n"
            "e = init_db(sys.argv[1]); print('ALEMBIC', 'alembic' in sys.modules)\n")
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code, db_url], env=env, capture_output=True, text=True, timeout=120)
    assert "ALEMBIC False" in out.stdout, out.stdout + out.stderr
    downgrade_db(db_url, "0001_initial").dispose()
    out = subprocess.run([sys.executable, "-c", code, db_url], env=env, capture_output=True, text=True, timeout=120)
    assert "ALEMBIC True" in out.stdout, out.stdout + out.stderr
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()
