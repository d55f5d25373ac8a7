"""The isolated reader pool: real worker processes that really crash, hang and run out of address space.

`selftest` makes a real worker segfault (ctypes read of address 0), allocate 64 GiB (past its RLIMIT_AS), or sleep;
the parent must turn each into the named error with the file and class, replace the worker, and keep serving.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from rdbridge.rdagent_trace.errors import (
    CrashedError,
    ForbiddenClassError,
    TimedOutError,
    TooLargeError,
    UnreadableFileError,
)
from rdbridge.rdagent_trace.isolation import ReaderPool, safe_load_file
from rdbridge.rdagent_trace.safe_unpickle import RECORD_CACHE_SIZE, _RECORD_CLASSES, safe_loads
from rdbridge.rdagent_trace.workspace import workspace_name
from support import hostile


@pytest.fixture(scope="module")
def pool() -> Iterator[ReaderPool]:
    with ReaderPool(1, file_timeout=2.0) as p:
        yield p


def test_segfault_in_a_worker_is_a_named_crash_and_the_pool_recovers(pool: ReaderPool) -> None:
    before = pool.replaced
    with pytest.raises(CrashedError) as info:
        pool.run("selftest", ("segv", "/trace/Loop_1/x.pkl"))
    assert info.value.path == "/trace/Loop_1/x.pkl" and "SIGSEGV" in info.value.message
    assert "selftest.segv" in info.value.message, "the class being rebuilt is named"
    assert pool.replaced == before + 1
    assert pool.run("echo", ([1, 2],)) == b"[1, 2]"


def test_allocation_past_the_address_space_limit_is_too_large(pool: ReaderPool) -> None:
    with pytest.raises(TooLargeError) as info:
        pool.run("selftest", ("alloc", "/trace/big.pkl"))
    assert info.value.path == "/trace/big.pkl"
    assert pool.run("echo", ("still alive",)) == b'"still alive"'


def test_a_hang_is_timed_out_and_the_worker_replaced(pool: ReaderPool) -> None:
    before = pool.replaced
    with pytest.raises(TimedOutError) as info:
        pool.run("selftest", ("hang", "/trace/slow.pkl"))
    assert info.value.path == "/trace/slow.pkl" and "2s" in info.value.message
    assert pool.replaced == before + 1
    assert pool.run("echo", (3,)) == b"3"


def test_safe_load_file_returns_the_object_or_a_named_error(tmp_path: Path, pool: ReaderPool) -> None:
    df = pd.DataFrame({"a": [1.0, 2.0]}, index=pd.date_range("2024-01-01", periods=2, freq="B"))
    good = tmp_path / "ret.pkl"
    # written by a fresh interpreter: another test of the suite may have imported dill, which patches the pickler
    subprocess.run([sys.executable, "-c", "import pandas as pd, sys; pd.DataFrame({'a': [1.0, 2.0]}, index=pd."
                    "date_range('2024-01-01', periods=2, freq='B')).to_pickle(sys.argv[1])", str(good)], check=True)
    pd.testing.assert_frame_equal(safe_load_file(good, pool=pool), df)
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(hostile.dtype_object_pointer())
    with pytest.raises(ForbiddenClassError):
        safe_load_file(bad, pool=pool)
    with pytest.raises(TooLargeError):
        safe_load_file(good, max_bytes=10, pool=pool)
    fifo = tmp_path / "fifo.pkl"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableFileError, match="not a regular file"):
        safe_load_file(fifo, pool=pool)
    link = tmp_path / "zero.pkl"
    link.symlink_to("/dev/zero")
    with pytest.raises(UnreadableFileError, match="outside"):
        safe_load_file(link, pool=pool)


def test_record_class_cache_is_bounded() -> None:
    safe_loads(hostile.many_record_classes(RECORD_CACHE_SIZE + 500))
    assert len(_RECORD_CLASSES) <= RECORD_CACHE_SIZE


def test_workspace_names_are_full_matches() -> None:
    assert workspace_name("/ws/abc\n/") is None
    assert workspace_name("/ws/abc") == "abc"


def test_a_rebuilt_record_round_trips_through_the_worker(tmp_path: Path, pool: ReaderPool) -> None:
    f = tmp_path / "rec.pkl"
    f.write_bytes(b"\x80\x02crdagent.core.proposal\nHypothesis\n)\x81}X\x0a\x00\x00\x00hypothesisX\x02\x00\x00\x00hisb.")
    rec = safe_load_file(f, pool=pool)
    assert rec.class_path == "rdagent.core.proposal.Hypothesis" and rec.get("hypothesis") == "hi"
    assert pickle.dumps is not None  # the parent never unpickles with the standard unpickler


def test_fuzz_found_unbuilt_array_is_a_named_error_not_a_crash(tmp_path: Path, pool: ReaderPool) -> None:
    from rdbridge.rdagent_trace.errors import CorruptPickleError

    f = tmp_path / "unbuilt.pkl"
    f.write_bytes(hostile.unbuilt_datetime_array())
    with pytest.raises(CorruptPickleError, match="before its state was set"):
        safe_load_file(f, pool=pool)


def test_fuzz_found_short_object_array_is_a_named_error_not_a_crash(tmp_path: Path, pool: ReaderPool) -> None:
    from rdbridge.rdagent_trace.errors import CorruptPickleError

    f = tmp_path / "short.pkl"
    f.write_bytes(hostile.short_object_array())
    with pytest.raises(CorruptPickleError, match="object array of 5 items"):
        safe_load_file(f, pool=pool)


def test_pool_starts_no_process_until_its_first_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool that never gets a task (a re-ingest with nothing to read) forks nothing."""
    forks: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", fork)
    with ReaderPool(1, file_timeout=10.0) as p:
        assert (p.started, forks) == (0, [])
        assert json.loads(p.run("echo", ([1, "a"],))) == [1, "a"]
        assert p.started == 1 and len(forks) == 1
    with ReaderPool(1) as idle:
        pass
    assert idle.started == 0 and len(forks) == 1
