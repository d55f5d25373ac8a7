"""Real processes: two `materialize` commands at once do each loop exactly once; a SIGKILLed one leaves nothing stuck,
half-written or orphaned, and the next run finishes the work. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from rdbridge.ingest import ingest
from rdbridge.registry import Loop, make_engine, session_scope
from support import tracegen

from .conftest import check_store_matches_registry, loops

KEY = b"k" * 32


def _trace(tmp_path: Path, db_url: str, n: int) -> None:
    paths = tracegen.write_trace(tmp_path / "trace", loops=n, key=KEY, fail_last=True)
    report = ingest(log_root=paths.log_root, workspace_root=paths.workspace_root, db_url=db_url, signing_key=KEY)
    assert report.ok and report.counts.loops_seen == n


def _cmd(db_url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rdbridge.cli", "materialize", "--db", db_url, "--json", *extra]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "RDBRIDGE_HOME": str(home)}


def _done_count(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with session_scope(engine, write=False) as s:
            return int(s.scalar(select(func.count()).select_from(Loop)
                                .where(Loop.materialization_status == "done")) or 0)
    finally:
        engine.dispose()


def test_two_concurrent_commands_do_each_loop_once(db_url: str, tmp_path: Path) -> None:
    n = 8
    _trace(tmp_path, db_url, n)
    home = tmp_path / "home"
    procs = [subprocess.Popen(_cmd(db_url, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(home)) for extra in ((), ("--workers", "2"))]
    reports = []
    for p in procs:
        out, errs = p.communicate(timeout=600)
        assert p.returncode == 0, errs
        reports.append(json.loads(out))
    assert sum(r["counts"]["done"] for r in reports) == n, reports
    rows = loops(db_url)
    assert all(lp.materialization_status == "done" and lp.materialization_attempts == 1 for lp in rows), \
        [(lp.experiment_id, lp.materialization_status, lp.materialization_attempts) for lp in rows]
    check_store_matches_registry(db_url, home / "artifacts")


def test_sigkill_mid_materialize_then_rerun(db_url: str, tmp_path: Path) -> None:
    n = 12
    _trace(tmp_path, db_url, n)
    home = tmp_path / "home"
    proc = subprocess.Popen(_cmd(db_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(home))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and _done_count(db_url) < 2:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed; make the trace bigger"
    time.sleep(0.3)  # land somewhere inside a loop
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _done_count(db_url)
    assert 2 <= done_before < n
    # the killed run's loop is `running` under a dead lease (or between loops): the rerun takes it over at once
    rerun = subprocess.run(_cmd(db_url), capture_output=True, text=True, env=_env(home), timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["counts"]["done"] == n - done_before and report["counts"]["failed"] == 0
    assert {lp.materialization_status for lp in loops(db_url)} == {"done"}
    store = home / "artifacts"
    assert not [p for p in store.rglob("*") if p.name.endswith(".rdbridge-tmp")], "a half-written file was left"
    check_store_matches_registry(db_url, store)  # no orphan row, no unregistered file, manifests complete


def test_heartbeat_keeps_the_lease_while_a_loop_is_built(tmp_path: Path) -> None:
    """A loop whose build outlasts its lease is not taken over while its worker's heartbeat renews the lease."""
    from rdbridge.materialize.worker import Heartbeat
    from rdbridge.registry import state

    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    _trace(tmp_path, url, 2)
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            loop = state.claim_next(s, "host:1:0", lease_seconds=1.0)
            loop_row = loop.id
        beat = Heartbeat(engine, "host:1:0", lease_seconds=1.0)
        try:
            with beat.watch(loop_row):
                time.sleep(2.5)  # 2.5 leases long
                with session_scope(engine) as s:
                    other = state.claim_next(s, "thief", lease_seconds=1.0)
                    assert other is None or other.id != loop_row
            time.sleep(1.2)  # the thread still runs, but watches no loop
        finally:
            beat.stop()
        time.sleep(1.2)  # no heartbeat any more: the lease runs out and another worker may take the loop
        with session_scope(engine) as s:
            taken = [state.claim_next(s, "thief2", lease_seconds=60) for _ in range(2)]
        assert loop_row in {t.id for t in taken if t is not None}
    finally:
        engine.dispose()
