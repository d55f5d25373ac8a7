"""The loop materialization state machine, on SQLite and PostgreSQL, including concurrent workers."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select, update

from rdbridge.registry import (
    IllegalTransition,
    LeaseLost,
    Loop,
    claim_next,
    complete,
    fail,
    initial_materialization_status,
    make_engine,
    mark_pending,
    renew_lease,
    reset_to_pending,
    retry,
    session_scope,
)

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
STATES = [None, "pending", "running", "done", "failed"]

# The machine, written out independently of the code: (start state, transition) -> resulting state.
LEGAL = {
    (None, "mark_pending"): "pending",
    ("pending", "claim"): "running",
    ("running", "renew_lease"): "running",
    ("running", "complete"): "done",
    ("running", "fail"): "failed",
    ("failed", "retry"): "pending",
    (None, "reset_to_pending"): "pending",
    ("pending", "reset_to_pending"): "pending",
    ("running", "reset_to_pending"): "pending",
    ("done", "reset_to_pending"): "pending",
    ("failed", "reset_to_pending"): "pending",
}
OWNER = "host:1:w0"


def _load(s, eid: str) -> Loop:
    return s.scalar(select(Loop).where(Loop.experiment_id == eid))


def _force(engine: Engine, eid: str, state: str | None, **extra: object) -> None:
    """Put a loop in `state` directly (as if a worker had left it there), bypassing the machine."""
    values: dict[str, object] = {"materialization_status": state, **extra}
    if state == "running":
        values.setdefault("materialization_lease_owner", OWNER)
        values.setdefault("materialization_lease_expires_at_utc", T0 + timedelta(hours=1))
    with session_scope(engine) as s:
        s.execute(update(Loop).where(Loop.experiment_id == eid).values(**values))


def _do(s, loop: Loop, transition: str) -> Loop | None:
    if transition == "mark_pending":
        return mark_pending(s, loop, now=T0)
    if transition == "claim":
        return claim_next(s, "host:2:w1", 60, now=T0)
    if transition == "renew_lease":
        return renew_lease(s, loop, OWNER, 60, now=T0)
    if transition == "complete":
        return complete(s, loop, OWNER, now=T0)
    if transition == "fail":
        return fail(s, loop, OWNER, "chart failed", now=T0)
    if transition == "retry":
        return retry(s, loop, now=T0)
    if transition == "reset_to_pending":
        return reset_to_pending(s, loop, now=T0)
    raise AssertionError(transition)


TRANSITION_NAMES = sorted({t for _, t in LEGAL})


@pytest.mark.parametrize("transition", TRANSITION_NAMES)
def test_every_transition_from_every_state(registry_engine: Engine, seed_loops, transition: str) -> None:
    ids = seed_loops(len(STATES), materialization=None)
    for eid, state in zip(ids, STATES, strict=True):
        _force(registry_engine, eid, state)
    for eid, state in zip(ids, STATES, strict=True):
        expected = LEGAL.get((state, transition))
        if transition == "claim":
            # claim picks a loop itself: isolate the one under test by parking the others
            for other in ids:
                if other != eid:
                    _force(registry_engine, other, "done")
            _force(registry_engine, eid, state)
        with session_scope(registry_engine) as s:
            loop = _load(s, eid)
            if expected is None:
                if transition == "claim":
                    assert _do(s, loop, transition) is None, state
                else:
                    with pytest.raises(IllegalTransition, match=rf"{eid}: cannot {transition}"):
                        _do(s, loop, transition)
            else:
                result = _do(s, loop, transition)
                assert result is not None and result.materialization_status == expected
        with session_scope(registry_engine, write=False) as s:
            assert _load(s, eid).materialization_status == (expected or state), (state, transition)


def test_mark_pending_only_for_finished_loops(registry_engine: Engine, seed_loops) -> None:
    (eid,) = seed_loops(1, status="running", materialization=None)
    with session_scope(registry_engine) as s, pytest.raises(IllegalTransition, match="still 'running'"):
        mark_pending(s, _load(s, eid))
    with session_scope(registry_engine) as s:
        loop = _load(s, eid)
        loop.status = "failed"  # RD-Agent finished it (failed loops still get their feedback materialized)
        mark_pending(s, loop, now=T0)
    with session_scope(registry_engine, write=False) as s:
        loop = _load(s, eid)
        assert (loop.materialization_status, loop.materialization_updated_at_utc) == ("pending", T0)
    assert initial_materialization_status("completed") == "pending"
    assert initial_materialization_status("failed") == "pending"
    assert initial_materialization_status("running") is None


def test_claim_sets_the_lease_and_nothing_unfinished_is_claimed(registry_engine: Engine, seed_loops) -> None:
    seed_loops(2, run="run_a", status="running", materialization=None)
    (eid,) = seed_loops(1, run="run_b")
    with session_scope(registry_engine) as s:
        loop = claim_next(s, OWNER, 90, now=T0)
        assert loop is not None and loop.experiment_id == eid
    with session_scope(registry_engine) as s:
        assert claim_next(s, "other", 90, now=T0) is None
    with session_scope(registry_engine, write=False) as s:
        loop = _load(s, eid)
        assert loop.materialization_status == "running"
        assert loop.materialization_lease_owner == OWNER
        assert loop.materialization_lease_expires_at_utc == T0 + timedelta(seconds=90)
        assert loop.materialization_attempts == 1
    with session_scope(registry_engine) as s, pytest.raises(ValueError, match="owner"):
        claim_next(s, "", 90)


def test_expired_lease_is_claimed_again_and_the_old_worker_loses_it(registry_engine: Engine, seed_loops) -> None:
    (eid,) = seed_loops(1)
    with session_scope(registry_engine) as s:
        assert claim_next(s, "w-old", 10, now=T0) is not None
    with session_scope(registry_engine) as s:
        assert claim_next(s, "w-new", 10, now=T0 + timedelta(seconds=5)) is None  # lease still valid
    with session_scope(registry_engine) as s:
        loop = claim_next(s, "w-new", 10, now=T0 + timedelta(seconds=11))
        assert loop is not None and loop.experiment_id == eid
        assert (loop.materialization_lease_owner, loop.materialization_attempts) == ("w-new", 2)
    with session_scope(registry_engine) as s, pytest.raises(LeaseLost, match="belongs to 'w-new', not 'w-old'"):
        complete(s, _load(s, eid), "w-old")
    with session_scope(registry_engine) as s, pytest.raises(LeaseLost):
        fail(s, _load(s, eid), "w-old", "late")
    with session_scope(registry_engine) as s:
        complete(s, _load(s, eid), "w-new", now=T0 + timedelta(seconds=12))
    with session_scope(registry_engine, write=False) as s:
        loop = _load(s, eid)
        assert loop.materialization_status == "done"
        assert loop.materialization_lease_owner is None and loop.materialization_lease_expires_at_utc is None


def test_renewed_lease_is_not_taken_over(registry_engine: Engine, seed_loops) -> None:
    (eid,) = seed_loops(1)
    with session_scope(registry_engine) as s:
        claim_next(s, OWNER, 10, now=T0)
    with session_scope(registry_engine) as s:
        renew_lease(s, _load(s, eid), OWNER, 60, now=T0 + timedelta(seconds=8))
    with session_scope(registry_engine) as s:
        assert claim_next(s, "thief", 10, now=T0 + timedelta(seconds=30)) is None
    with session_scope(registry_engine) as s, pytest.raises(LeaseLost):
        renew_lease(s, _load(s, eid), "thief", 60)


def test_failed_then_retry_then_done(registry_engine: Engine, seed_loops) -> None:
    (eid,) = seed_loops(1)
    with session_scope(registry_engine) as s:
        loop = claim_next(s, OWNER, now=T0)
        fail(s, loop, OWNER, "portfolio report unreadable: ret.pkl", now=T0)
    with session_scope(registry_engine, write=False) as s:
        loop = _load(s, eid)
        assert (loop.materialization_status, loop.materialization_error) == ("failed", "portfolio report unreadable: ret.pkl")
    with session_scope(registry_engine) as s:
        assert claim_next(s, OWNER, now=T0) is None  # failed loops wait for an explicit retry
        retry(s, _load(s, eid), now=T0)
    with session_scope(registry_engine) as s:
        loop = claim_next(s, OWNER, now=T0)
        assert loop is not None and loop.materialization_attempts == 2
        assert loop.materialization_error is None
        complete(s, loop, OWNER, now=T0)
    with session_scope(registry_engine, write=False) as s:
        assert _load(s, eid).materialization_status == "done"


def test_reset_while_running_invalidates_the_worker(registry_engine: Engine, seed_loops) -> None:
    (eid,) = seed_loops(1)
    with session_scope(registry_engine) as s:
        claim_next(s, OWNER, now=T0)
    with session_scope(registry_engine) as s:  # ingest saw the finished loop change
        reset_to_pending(s, _load(s, eid), now=T0)
    with session_scope(registry_engine) as s, pytest.raises(LeaseLost, match="no longer holds it"):
        complete(s, _load(s, eid), OWNER)
    with session_scope(registry_engine, write=False) as s:
        loop = _load(s, eid)
        assert (loop.materialization_status, loop.materialization_attempts) == ("pending", 0)


def test_a_stale_object_cannot_overwrite_newer_state(registry_engine: Engine, seed_loops) -> None:
    """The database row decides: an object read before another worker moved the loop is refused."""
    (eid,) = seed_loops(1)
    with session_scope(registry_engine) as s:
        claim_next(s, OWNER, now=T0)
    with session_scope(registry_engine, write=False) as reader:
        stale = _load(reader, eid)  # sees 'running'
    assert stale.materialization_status == "running"
    with session_scope(registry_engine) as s:
        fail(s, _load(s, eid), OWNER, "x", now=T0)
    with session_scope(registry_engine) as s:
        s.add(stale)
        with pytest.raises(IllegalTransition):
            complete(s, stale, OWNER)
        assert stale.materialization_status == "failed"  # refreshed from the row


def _worker(
    url: str, name: str, start: threading.Barrier, got: list[str], errors: list[BaseException], write: bool
) -> None:
    engine = make_engine(url)
    try:
        start.wait()
        while True:
            with session_scope(engine, write=write) as s:
                loop = claim_next(s, name, 60)
                if loop is None:
                    return
                got.append(loop.experiment_id)
            with session_scope(engine) as s:
                complete(s, s.get(Loop, loop.id), name)
    except BaseException as exc:  # noqa: BLE001 - reported to the main thread
        errors.append(exc)
    finally:
        engine.dispose()


@pytest.mark.parametrize("claim_write", [True, False], ids=["immediate", "deferred"])
def test_concurrent_workers_never_claim_the_same_loop(
    registry_engine: Engine, seed_loops, db_url: str, claim_write: bool
) -> None:
    """Six threads, each with its own engine, drain 60 loops. On SQLite both transaction modes are covered: with a
    deferred BEGIN the single UPDATE ... RETURNING must be atomic by itself."""
    ids = seed_loops(60)
    workers = 6
    start = threading.Barrier(workers)
    claimed: list[list[str]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_worker, args=(db_url, f"w{i}", start, claimed[i], errors, claim_write)) for i in range(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    everything = [eid for per_worker in claimed for eid in per_worker]
    duplicates = [eid for eid, n in Counter(everything).items() if n > 1]
    assert duplicates == []
    assert sorted(everything) == sorted(ids)
    assert sum(1 for per_worker in claimed if per_worker) >= 2  # the work really was shared
    with session_scope(registry_engine, write=False) as s:
        states = Counter(s.scalars(select(Loop.materialization_status)))
        attempts = set(s.scalars(select(Loop.materialization_attempts)))
    assert states == {"done": len(ids)} and attempts == {1}
