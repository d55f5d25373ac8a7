"""Reading runs and loops for ingest through the isolated reader pool (`rdagent_trace.isolation`).

Why here: ingest must survive any trace file. The loop is read whole in a worker (one task per loop, several loops in
flight); when the worker dies or stalls on a file, that file gets the named error ("crashed", "timed out", "too
large") and the loop is read again without it, so only that file's facts are lost - never the loop, never the ingest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from rdbridge.contracts.trace import LoopSnapshot, RunSnapshot, TraceFileError
from rdbridge.rdagent_trace.isolation import ReaderPool, TaskFailure, decode_loop, decode_run
from rdbridge.rdagent_trace.loop_reader import ReadOptions, run_facts
from rdbridge.rdagent_trace.walker import LoopScan, RunScan

__all__ = ["read_run_isolated", "read_loops_isolated"]


def _fallback_loop(run_dir: Path, loop_id: int, loop_scan: LoopScan, scenario: str,
                   errors: list[TraceFileError]) -> LoopSnapshot:
    return LoopSnapshot(loop_id=loop_id, action="model" if scenario == "fin_model" else "factor", status="running",
                        entries=[e.to_info() for e in loop_scan.entries], errors=errors)


def read_run_isolated(pool: ReaderPool, run_dir: Path, workspace_root: Path, *, key: bytes | None, scan: RunScan,
                      options: ReadOptions) -> RunSnapshot:
    """`read_run` in the pool; if the worker cannot finish, the scenario is inferred as unknown (loops still read)."""
    out = next(pool.imap([(None, "read_run", (str(run_dir), str(workspace_root), key, scan, options), None)]))[1]
    if isinstance(out, TaskFailure):
        return run_facts(run_dir, workspace_root, scan)  # reads no pickle
    return decode_run(out)


def _job(run_dir: Path, loop_id: int, loop_scan: LoopScan, workspace_root: Path, key: bytes | None, scenario: str,
         options: ReadOptions, skip: dict[str, TraceFileError]) -> tuple[str, tuple[object, ...], str | None]:
    args = (str(run_dir), loop_id, loop_scan.entries, str(workspace_root), key, scenario, options,
            {k: v.model_dump() for k, v in skip.items()})
    first = str(loop_scan.entries[0].path) if loop_scan.entries else None
    return "read_loop", args, first


def read_loops_isolated(pool: ReaderPool, run_dir: Path, loops: Iterable[tuple[int, LoopScan]], *,
                        workspace_root: Path, key: bytes | None, scenario: str, options: ReadOptions
                        ) -> Iterator[tuple[int, LoopSnapshot]]:
    """(loop_id, snapshot) for each loop, in order. Never raises for a bad file: it becomes an error on its loop."""
    loops = list(loops)
    scans = dict(loops)
    jobs = ((lid, *_job(run_dir, lid, sc, workspace_root, key, scenario, options, {})) for lid, sc in loops)
    for lid, out in pool.imap(jobs):
        if not isinstance(out, TaskFailure):
            yield lid, decode_loop(out)
            continue
        yield lid, _retry(pool, run_dir, lid, scans[lid], out, workspace_root=workspace_root, key=key,
                          scenario=scenario, options=options)


def _retry(pool: ReaderPool, run_dir: Path, loop_id: int, loop_scan: LoopScan, failure: TaskFailure, *,
           workspace_root: Path, key: bytes | None, scenario: str, options: ReadOptions) -> LoopSnapshot:
    """Read the loop again without each file a worker could not survive, until it reads (bounded by its files)."""
    skip: dict[str, TraceFileError] = {}
    for _attempt in range(len(loop_scan.entries) + 8):
        culprit = failure.error.path if failure.error.path not in ("<reader>", "") else failure.file
        if culprit is None or culprit in skip:
            break
        skip[culprit] = failure.error.to_contract()
        task, args, first = _job(run_dir, loop_id, loop_scan, workspace_root, key, scenario, options, skip)
        out = next(pool.imap([(loop_id, task, args, first)]))[1]
        if not isinstance(out, TaskFailure):
            return decode_loop(out)
        failure = out
    errors = list(skip.values())
    if failure.error.to_contract() not in errors:
        errors.append(failure.error.to_contract())
    return _fallback_loop(run_dir, loop_id, loop_scan, scenario, errors)
