"""A re-ingest with nothing changed starts no reader process; every kind of change still gets the loop read again.

The reader pool is observed from outside its own bookkeeping: `os.fork` (how multiprocessing's fork context starts a
worker) and the pool's worker class are both wrapped and counted for the duration of each ingest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from rdbridge.contracts.ingest import IngestReport
from rdbridge.ingest import ingest
from rdbridge.rdagent_trace import isolation
from rdbridge.registry import Artifact, ArtifactFile, TaskRun
from support import tracegen

from .conftest import loops_by_id, query

KEY = b"k" * 32


@dataclass
class Starts:
    forks: int = 0
    workers: int = 0


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Starts]:
    """Counts process forks and reader workers started from now on (reset it between ingests)."""
    seen = Starts()
    real_fork, real_init = os.fork, isolation._Worker.__init__

    def fork() -> int:
        seen.forks += 1
        return real_fork()

    def init(self: isolation._Worker, *a: object, **k: object) -> None:
        seen.workers += 1
        real_init(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fork", fork)
    monkeypatch.setattr(isolation._Worker, "__init__", init)
    yield seen


def _ingest(paths: tracegen.TracePaths, url: str) -> IngestReport:
    return ingest(log_root=paths.log_root, workspace_root=paths.workspace_root, db_url=url, signing_key=KEY)


def _reset(s: Starts) -> None:
    s.forks = s.workers = 0


def test_unchanged_reingest_starts_no_reader(db_url: str, tmp_path: Path, starts: Starts) -> None:
    paths = tracegen.write_trace(tmp_path / "t", loops=3, key=KEY, scenario="fin_quant")
    first = _ingest(paths, db_url)
    assert first.counts.loops_new == 3
    assert starts.workers >= 1 and starts.forks >= 1  # the counters see a real read
    before = {lid: lp.trace_fingerprint for lid, lp in loops_by_id(db_url).items()}

    _reset(starts)
    again = _ingest(paths, db_url)
    assert (again.changes, again.counts.loops_unchanged, again.counts.loops_seen) == (0, 3, 3)
    assert (starts.workers, starts.forks) == (0, 0)
    # nothing stored was touched: the run keeps the scenario only a reader could infer
    assert {lid: lp.trace_fingerprint for lid, lp in loops_by_id(db_url).items()} == before
    assert [r.scenario for r in query(db_url, select(TaskRun))] == ["fin_quant"]


def _copy_feedback_of(loop: int, src: tracegen.TracePaths, dst: tracegen.TracePaths) -> Path:
    """Overwrite `dst`'s feedback pickle of `loop` in place with `src`'s (another seed: another verdict text)."""
    def feedback(paths: tracegen.TracePaths) -> Path:
        return next((paths.run_dir / f"Loop_{loop}" / "feedback").rglob("*.pkl"))

    target = feedback(dst)
    target.write_bytes(feedback(src).read_bytes())
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a distinct mtime even on coarse clocks
    return target


def test_changed_pickle_is_read_again(sqlite_url: str, tmp_path: Path, starts: Starts) -> None:
    paths = tracegen.write_trace(tmp_path / "t", loops=3, key=KEY, fail_last=False)
    other = tracegen.write_trace(tmp_path / "o", loops=3, key=KEY, fail_last=False, seed=7)
    _ingest(paths, sqlite_url)
    old = loops_by_id(sqlite_url)[1].feedback_json
    _copy_feedback_of(1, other, paths)
    new = _ingest(other, f"sqlite:///{tmp_path / 'other.sqlite'}")  # what the other trace's loop 1 says
    expected = loops_by_id(f"sqlite:///{tmp_path / 'other.sqlite'}")[1].feedback_json
    assert new.ok and expected != old

    _reset(starts)
    r = _ingest(paths, sqlite_url)
    assert (r.counts.loops_updated, r.counts.loops_unchanged) == (1, 2)
    assert starts.workers >= 1
    assert loops_by_id(sqlite_url)[1].feedback_json == expected


def test_changed_workspace_file_is_read_again(sqlite_url: str, tmp_path: Path, starts: Starts) -> None:
    paths = tracegen.write_trace(tmp_path / "t", loops=3, key=KEY, fail_last=False)
    _ingest(paths, sqlite_url)
    ws_id = tracegen.loop_workspace_ids(1)["experiment"]
    res = paths.workspace_root / ws_id / "qlib_res.csv"
    res.write_text(res.read_text() + "extra_metric,1.5\n")

    _reset(starts)
    r = _ingest(paths, sqlite_url)
    assert (r.counts.loops_updated, r.counts.loops_unchanged) == (1, 2)
    assert starts.workers >= 1
    stored = query(sqlite_url, select(ArtifactFile.sha256).join(Artifact)
                   .where(Artifact.workspace_id == ws_id, ArtifactFile.path == "qlib_res.csv"))
    assert stored == [hashlib.sha256(res.read_bytes()).hexdigest()]


def test_new_loop_is_read(sqlite_url: str, tmp_path: Path, starts: Starts) -> None:
    paths = tracegen.write_trace(tmp_path / "t", loops=2, key=KEY, fail_last=False)
    _ingest(paths, sqlite_url)
    tracegen.write_trace(tmp_path / "t", loops=1, start_loop=2, key=KEY, fail_last=False)

    _reset(starts)
    r = _ingest(paths, sqlite_url)
    assert (r.counts.loops_new, r.counts.loops_unchanged) == (1, 2)
    assert starts.workers >= 1
    assert sorted(loops_by_id(sqlite_url)) == [0, 1, 2]
    assert loops_by_id(sqlite_url)[2].status == "completed"


def test_removed_workspace_after_unchanged_reingest_is_noticed(sqlite_url: str, tmp_path: Path,
                                                               starts: Starts) -> None:
    paths = tracegen.write_trace(tmp_path / "t", loops=2, key=KEY, fail_last=False)
    _ingest(paths, sqlite_url)
    assert _ingest(paths, sqlite_url).changes == 0
    shutil.rmtree(paths.workspace_root / tracegen.loop_workspace_ids(0)["experiment"])

    _reset(starts)
    r = _ingest(paths, sqlite_url)
    assert r.counts.loops_unchanged == 1 and starts.workers >= 1
    assert loops_by_id(sqlite_url)[0].error is not None  # the missing workspace is an error on its loop
