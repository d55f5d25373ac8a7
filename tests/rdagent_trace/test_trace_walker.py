"""The trace walker: runs, loops, steps, tags, entries; stats only; tolerant of stray files."""

from __future__ import annotations

import builtins
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rdbridge.rdagent_trace import discover_runs, run_started_at, scan_run
from rdtrace_helpers import SAMPLE, copy_trace, only_run


def test_discover_from_log_root_or_run_folder(tmp_path: Path) -> None:
    run = only_run(SAMPLE)
    assert discover_runs(SAMPLE / "log") == [run]
    assert discover_runs(run) == [run]
    assert discover_runs(tmp_path) == []
    assert discover_runs(tmp_path / "absent") == []
    (tmp_path / "2026-02-01_00-00-00-000000" / "__session__").mkdir(parents=True)  # started, no loop logged yet
    (tmp_path / "not_a_run").mkdir()
    assert [p.name for p in discover_runs(tmp_path)] == ["2026-02-01_00-00-00-000000"]


def test_scan_of_the_sample_matches_the_files_on_disk() -> None:
    run = only_run(SAMPLE)
    scan = scan_run(run)
    assert scan.loop_ids == [0, 1, 2, 3]
    on_disk = sorted(p for p in run.rglob("*.pkl") if "__session__" not in p.parts)
    listed = sorted(e.path for lp in scan.loops.values() for e in lp.entries) + [e.path for e in scan.run_entries]
    assert sorted(listed) == on_disk
    for lp in scan.loops.values():
        for e in lp.entries:
            st = os.stat(e.path)
            assert (e.size_bytes, e.mtime_ns) == (st.st_size, st.st_mtime_ns)
            assert e.relpath == e.path.relative_to(run).as_posix()
            assert e.relpath.split("/")[1:3] == [e.step, e.tag]
            assert e.logged_at_utc == datetime.strptime(e.path.stem, "%Y-%m-%d_%H-%M-%S-%f").replace(
                tzinfo=timezone.utc)
    steps3 = scan.loops[3].steps()
    assert "running" not in steps3 and "feedback" in steps3
    assert set(scan.loops[1].steps()["running"]) == {"runner result", "Qlib_execute_log",
                                                     "Quantitative Backtesting Chart"}


def test_scan_only_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_open(*a: object, **k: object) -> None:
        raise AssertionError("scan_run opened a file")

    monkeypatch.setattr(builtins, "open", no_open)
    monkeypatch.setattr(Path, "read_bytes", no_open)
    scan = scan_run(only_run(SAMPLE))
    assert sum(len(lp.entries) for lp in scan.loops.values()) > 20


def test_session_stray_files_and_nested_tags(tmp_path: Path) -> None:
    run = only_run(copy_trace(SAMPLE, tmp_path / "t"))
    (run / "__session__" / "0").mkdir(parents=True)
    (run / "__session__" / "0" / "1_coding").write_bytes(b"garbage")
    (run / "__session__" / "0" / "2026-01-01_00-00-00-000000.pkl").write_bytes(b"garbage")
    (run / "Loop_0" / "notes.txt").write_text("hi")
    (run / "Loop_0" / "coding" / "x.pkl").write_bytes(b"")  # too shallow to be an entry
    evo = run / "Loop_0" / "coding" / "evo_loop_3" / "evolving code" / "77"
    evo.mkdir(parents=True)
    (evo / "2026-12-31_08-00-09-000000.pkl").write_bytes(b"")
    odd = run / "Loop_0" / "odd step" / "odd tag" / "1"
    odd.mkdir(parents=True)
    (odd / "not-a-timestamp.pkl").write_bytes(b"")
    (run / "Loop_x").mkdir()
    (run / "README").write_text("stray")
    scan = scan_run(run)
    assert scan.loop_ids == [0, 1, 2, 3]
    assert not any("__session__" in e.relpath for lp in scan.loops.values() for e in lp.entries)
    assert not any("__session__" in r for r in scan.ignored)
    nested = [e for e in scan.loops[0].entries if e.pid == "77"]
    assert len(nested) == 1 and nested[0].tag == "evolving code" and nested[0].tag_path == "evo_loop_3/evolving code"
    assert scan.loops[0].latest("evolving code") == nested[0]  # the newest round
    odd_e = [e for e in scan.loops[0].entries if e.step == "odd step"]
    assert len(odd_e) == 1 and odd_e[0].logged_at_utc is None
    assert "Loop_0/notes.txt" in scan.ignored and "Loop_0/coding/x.pkl" in scan.ignored and "README" in scan.ignored


def test_run_started_at() -> None:
    assert run_started_at(Path("/x/2026-01-05_08-00-07-000000")) == datetime(2026, 1, 5, 8, 0, 7,
                                                                              tzinfo=timezone.utc)
    assert run_started_at(Path("/x/my_run")) is None


def test_timestamp_fast_path_agrees_with_strptime() -> None:
    """The digit parser of RD-Agent's file names gives exactly what `strptime` gives (None where it refuses)."""
    import random

    from rdbridge.rdagent_trace.walker import TIMESTAMP_FORMAT, parse_log_timestamp

    def reference(text: str) -> datetime | None:
        try:
            return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            return None

    rng = random.Random(3)
    cases = ["2026-01-05_08-00-07-000000", "2024-02-29_23-59-59-999999", "2023-02-29_00-00-00-000000",
             "2026-13-01_00-00-00-000000", "2026-00-10_00-00-00-000000", "2026-01-32_00-00-00-000000",
             "2026-01-05_24-00-00-000000", "2026-01-05_08-60-00-000000", "2026-01-05_08-00-60-000000",
             "0000-01-01_00-00-00-000000", "2026-1-5_8-0-7-5", "2026-01-05_08-00-07-0000001", "not-a-timestamp",
             "2026-01-05_08-00-07-000000 ", "２０２６-01-05_08-00-07-000000", ""]
    for _ in range(3000):
        cases.append(f"{rng.randint(0, 9999):04d}-{rng.randint(0, 14):02d}-{rng.randint(0, 33):02d}_"
                     f"{rng.randint(0, 25):02d}-{rng.randint(0, 61):02d}-{rng.randint(0, 61):02d}-"
                     f"{rng.randint(0, 999999):06d}")
    for text in cases:
        assert parse_log_timestamp(text) == reference(text), text
    assert sum(reference(t) is not None for t in cases) > 1000  # the random cases are mostly valid ones


def test_entry_path_is_built_from_the_scanned_file() -> None:
    run = only_run(SAMPLE)
    e = scan_run(run).loops[0].entries[0]
    assert e.path == Path(e.file) == run / e.relpath and e.path is e.path  # built once, then kept
