"""One producer for the platform tests: the sample trace ingested, its loops through the state machine (charts
registered, the last one failed), a factor with a hostile name, served by a real `rdbridge serve` with a token."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from consumer.registry_setup import ingest_sample, materialize_stand_in, rename_a_factor
from consumer.servers import Proc, start_serve

TOKEN = "platform-test-token-7f3a"


@dataclass
class Producer:
    api: Proc
    home: Path
    registry_url: str
    done: list[str]
    renamed_from: str

    @property
    def url(self) -> str:
        return self.api.url


@pytest.fixture(scope="session")
def producer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Producer]:
    home = tmp_path_factory.mktemp("producer")
    registry = f"sqlite:///{home / 'registry.sqlite'}"
    ingest_sample(home, registry)
    renamed = rename_a_factor(registry)
    done = materialize_stand_in(registry, home / "artifacts")
    proc = start_serve(home, registry, TOKEN)
    try:
        yield Producer(api=proc, home=home, registry_url=registry, done=done, renamed_from=renamed)
    finally:
        proc.stop()


def _pg_admin() -> str:
    return os.environ.get("RDBRIDGE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def platform_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty platform database: a SQLite file, or a fresh PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'platform.sqlite'}"
        return
    admin = _pg_admin()
    name = f"rdbridge_platform_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rpartition("/")[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
