"""API test fixtures: one seeded registry per backend (SQLite file, fresh PostgreSQL database) and real
`rdbridge serve` processes on random loopback ports, with and without a token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from rdbridge.registry import init_db
from .world import World, build_world

TOKEN = "s3cret-token-ü"[:12]
PG_ADMIN = os.environ.get("RDBRIDGE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    token: str | None
    world: World
    db_url: str

    def client(self, auth: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)


def launch(db_url: str, home: Path, token: str | None, world: World) -> Server:
    """Start `rdbridge serve` as a user runs it, on a free loopback port (call `wait_ready` next)."""
    port = free_port()
    env = dict(os.environ, RDBRIDGE_HOME=str(home), PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("RDBRIDGE_API_TOKEN", None)
    cmd = [sys.executable, "-m", "rdbridge.cli", "serve", "--port", str(port), "--db", db_url]
    if token:
        cmd += ["--token", token]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Server(f"http://127.0.0.1:{port}", proc, token, world, db_url)


def wait_ready(server: Server) -> Server:
    """Wait until the server answers /health (or fail with its stderr)."""
    proc = server.proc
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(server.base + "/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"rdbridge serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("rdbridge serve did not answer /health within 120 s")
        time.sleep(0.2)


def stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="package", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    """A seeded registry (URL, world) on SQLite or on a fresh PostgreSQL database, shared by the package's tests (tests that write undo it)."""
    root = tmp_path_factory.mktemp(f"api_{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'registry.sqlite'}"
        dbname = None
    else:
        dbname = f"rdbridge_api_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}" ENCODING \'UTF8\' TEMPLATE template0')
        url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{dbname}"
    engine = init_db(url)
    try:
        world = build_world(engine, root)
    finally:
        engine.dispose()
    yield url, world
    if dbname:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')


@pytest.fixture(scope="package")
def servers(backend: tuple[str, World]) -> Iterator[tuple[Server, Server]]:
    """The API without and with a bearer token, started side by side (start-up is mostly imports)."""
    url, world = backend
    pair = (launch(url, world.root / "home", None, world), launch(url, world.root / "home", TOKEN, world))
    try:
        yield (wait_ready(pair[0]), wait_ready(pair[1]))
    finally:
        for srv in pair:
            stop(srv)


@pytest.fixture(scope="package")
def server(servers: tuple[Server, Server]) -> Server:
    return servers[0]


@pytest.fixture(scope="package")
def token_server(servers: tuple[Server, Server]) -> Server:
    return servers[1]
