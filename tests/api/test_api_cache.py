"""The response cache: answers equal the uncached server's byte for byte, any registry commit is seen by the next
request, parameters in another order hit the same entry, and the change stamp moves on every commit."""

from __future__ import annotations

import gzip
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from rdbridge.api.cache import cache_key
from rdbridge.api.stamp import stamp_for
from rdbridge.registry import Loop, make_engine, session_scope

from .conftest import Server, launch, stop, wait_ready
from .test_api_routes import LISTS, RECORDS
from .world import RUN_A, World

SAMPLES = [(p, {}) for p in LISTS + RECORDS] + [
    ("/catalog/factors", {"source": "rdagent", "limit": 2}), ("/catalog/factors", {"tag": "volume", "limit": 50}),
    ("/catalog/loops", {"has_result": "false"}), ("/factors/Mom_10D", {}), ("/loops", {"q": "loop"})]


@pytest.fixture(scope="module")
def uncached(backend: tuple[str, World]) -> Iterator[Server]:
    url, world = backend
    mp = pytest.MonkeyPatch()
    mp.setenv("RDBRIDGE_API_CACHE_MB", "0")
    try:
        server = wait_ready(launch(url, world.root / "home", None, world))
    finally:
        mp.undo()
    try:
        yield server
    finally:
        stop(server)


def test_cached_answers_equal_uncached_ones(server: Server, uncached: Server) -> None:
    with server.client() as a, uncached.client() as b:
        for path, params in SAMPLES:
            for _ in range(2):  # the second answer comes from the cache
                got, want = a.get(path, params=params), b.get(path, params=params)
                assert got.status_code == want.status_code == 200, (path, got.text)
                assert got.content == want.content and got.headers["etag"] == want.headers["etag"], path
                assert got.headers["content-type"] == want.headers["content-type"]


def test_parameter_order_and_encoding_share_an_entry(server: Server) -> None:
    assert cache_key({"path": "/loops", "query_string": b"limit=2&action=factor"}) == \
        cache_key({"path": "/loops", "query_string": b"action=factor&limit=2"})
    assert cache_key({"path": "/loops", "query_string": b"q=a%20b"}) == \
        cache_key({"path": "/loops", "query_string": b"q=a+b"})
    assert cache_key({"path": "/loops", "query_string": b"q=a"}) != cache_key({"path": "/loops", "query_string": b"q=b"})
    with server.client() as c:
        one = c.get(f"{server.base}/catalog/factors?limit=3&source=rdagent")
        two = c.get(f"{server.base}/catalog/factors?source=rdagent&limit=3")
    assert one.content == two.content and one.headers["etag"] == two.headers["etag"]


def test_gzip_only_above_the_threshold_and_304_from_the_cache(server: Server) -> None:
    with server.client() as c:
        for _ in range(2):
            big = c.get("/catalog/factors", params={"limit": 200}, headers={"Accept-Encoding": "gzip"})
            assert big.headers["content-encoding"] == "gzip" and big.headers["vary"] == "Accept-Encoding"
            plain = c.get("/catalog/factors", params={"limit": 200}, headers={"Accept-Encoding": "identity"})
            assert "content-encoding" not in plain.headers and plain.content == big.content
            assert int(plain.headers["content-length"]) == len(plain.content)
            with c.stream("GET", "/catalog/factors", params={"limit": 200},
                          headers={"Accept-Encoding": "gzip"}) as raw:
                assert gzip.decompress(b"".join(raw.iter_raw())) == plain.content
            small = c.get("/catalog/factors", params={"limit": 1}, headers={"Accept-Encoding": "gzip"})
            assert "content-encoding" not in small.headers
            r304 = c.get("/catalog/factors", params={"limit": 200},
                         headers={"If-None-Match": f'W/"x", {big.headers["etag"]}'})
            assert r304.status_code == 304 and r304.content == b"" and r304.headers["etag"] == big.headers["etag"]
            head = c.head("/catalog/factors", params={"limit": 200}, headers={"Accept-Encoding": "identity"})
            assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == big.headers["etag"]


def test_a_commit_is_seen_by_the_next_request(server: Server) -> None:
    """Every cached answer depends on the registry: after each commit the same URL answers the new data."""
    engine = make_engine(server.db_url)
    path = f"/loops/{RUN_A}/0"
    where = (Loop.task_run_id == RUN_A, Loop.loop_id == 0)
    with session_scope(engine, write=False) as s:  # the registry is shared: put back exactly what was there
        original, stamp = s.execute(select(Loop.hypothesis, Loop.updated_at_utc).where(*where)).one()
    try:
        with server.client() as c:
            for i in range(3):
                c.get(path)  # cached
                with session_scope(engine) as s:
                    s.execute(update(Loop).where(*where).values(hypothesis=f"changed {i}", updated_at_utc=stamp))
                assert c.get(path).json()["hypothesis"] == f"changed {i}"
    finally:
        with session_scope(engine) as s:
            s.execute(update(Loop).where(*where).values(hypothesis=original, updated_at_utc=stamp))
        engine.dispose()


def test_stamp_moves_on_every_commit(backend: tuple[str, World]) -> None:
    url, _ = backend
    engine = make_engine(url)
    where = (Loop.task_run_id == RUN_A, Loop.loop_id == 0)
    with session_scope(engine, write=False) as s:
        when = s.execute(select(Loop.updated_at_utc).where(*where)).scalar_one()
    try:
        stamp, _threaded = stamp_for(engine)
        assert stamp is not None
        seen = [stamp()]
        assert stamp() == seen[0], "no commit, same stamp"
        for i in range(3):
            with session_scope(engine) as s:
                s.execute(update(Loop).where(*where).values(
                    materialization_attempts=Loop.materialization_attempts + 1, updated_at_utc=when))
            seen.append(stamp())
        assert None not in seen and len(set(seen)) == len(seen), seen
    finally:
        with session_scope(engine) as s:
            s.execute(update(Loop).where(*where).values(materialization_attempts=Loop.materialization_attempts - 3,
                                                        updated_at_utc=when))
        engine.dispose()


def test_no_stamp_no_cache(tmp_path: Path) -> None:
    """An in-memory registry has no stamp another process could move: nothing is cached."""
    assert stamp_for(make_engine("sqlite://"))[0] is None
    db = tmp_path / "odd name ü#" / "r.sqlite"
    missing = stamp_for(make_engine(f"sqlite:///{db}"))[0]
    assert missing is not None and missing() is None and not db.exists(), "a missing file is not created"
    db.parent.mkdir(exist_ok=True)
    sqlite3.connect(db).close()
    stamp = stamp_for(make_engine(f"sqlite:///{db}"))[0]
    assert stamp is not None and stamp() is not None
