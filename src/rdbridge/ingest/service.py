"""`rdbridge ingest`: RD-Agent log trace + workspaces -> registry, idempotent, incremental and crash-safe.

Per loop: stat its pickles; if their (path, size, mtime) fingerprint matches what is stored and the loop had no
errors, skip it without unpickling. Otherwise read it (allow-listed unpickler, in the isolated reader pool) and write
it in ONE transaction. A SIGKILL therefore loses at most the loop in flight, and the next run redoes exactly that.
When no loop of a run needs reading, no reader process is started at all (workers start on the first task). Each
invocation leaves an `ingest_runs` row whose `finished_at_utc` stays NULL if it was killed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from rdbridge.contracts.ingest import IngestCounts, IngestReport, LoopIssue
from rdbridge.ingest import fingerprint as fp
from rdbridge.ingest.reading import read_loops_isolated, read_run_isolated
from rdbridge.ingest.writer import finish_task_run, upsert_task_run, write_loop
from rdbridge.rdagent_trace import discover_runs, scan_run
from rdbridge.rdagent_trace.files import default_max_pickle_bytes
from rdbridge.rdagent_trace.isolation import ReaderPool
from rdbridge.rdagent_trace.loop_reader import ReadOptions, run_facts
from rdbridge.rdagent_trace.walker import LoopScan
from rdbridge.registry import Artifact, IngestRun, Loop, experiment_id_for, init_db, make_engine, session_scope, utcnow

ProgressHook = Callable[[str, int, int], None]


class IngestInputError(ValueError):
    """The ingest cannot start: a root folder is missing or is not a folder. Names the option and the path."""


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is reported by make_engine, not here
        return url


def _check_root(option: str, path: Path) -> Path:
    if not path.exists():
        raise IngestInputError(f"{option} {path}: no such folder")
    if not path.is_dir():
        raise IngestInputError(f"{option} {path}: not a folder")
    return path.resolve()


def ingest(
    *,
    log_root: Path,
    workspace_root: Path,
    db_url: str,
    signing_key: bytes | None = None,
    on_progress: ProgressHook | None = None,
    max_pickle_bytes: int | None = None,
    data_roots: Sequence[Path] = (),
    file_timeout: float | None = None,
    reader_processes: int | None = None,
) -> IngestReport:
    """Ingest every run under `log_root` (or `log_root` itself when it is one run) into the registry at `db_url`.

    Trace pickles are read in an isolated worker pool (`reader_processes` workers, `file_timeout` seconds without
    progress per file, each worker under an address-space limit); a trace pickle above `max_pickle_bytes` (default
    env RDBRIDGE_MAX_PICKLE_BYTES, else 256 MiB) is refused; symbolic links in workspaces are followed only inside
    `workspace_root` and the `data_roots`.
    """
    t0 = time.perf_counter()
    log_root = _check_root("--log-root", Path(log_root))
    workspace_root = _check_root("--workspace-root", Path(workspace_root))
    roots = tuple(_check_root("--data-root", Path(r)) for r in data_roots)
    options = ReadOptions(max_pickle_bytes=max_pickle_bytes or default_max_pickle_bytes(), data_roots=roots)
    pool = ReaderPool(reader_processes, file_timeout=file_timeout)
    engine = init_db(make_engine(db_url))
    counts = IngestCounts()
    issues: list[LoopIssue] = []
    run_ids: list[str] = []
    try:
        with session_scope(engine) as s:
            ingest_row = IngestRun(log_root=str(log_root), workspace_root=str(workspace_root), status="running")
            s.add(ingest_row)
            s.flush()
            ingest_id = ingest_row.id

        runs = discover_runs(log_root)
        scans = [(run_dir, scan_run(run_dir)) for run_dir in runs]
        total = sum(len(sc.loop_ids) for _, sc in scans)
        done = 0
        for run_dir, scan in scans:
            facts = run_facts(run_dir, workspace_root, scan)  # no pickle read
            stored = _stored_fingerprints(engine, facts.task_run_id)
            stored_ws = _stored_workspace_ids(engine, facts.task_run_id)
            to_read: list[tuple[int, LoopScan]] = []
            entries_fps: dict[int, str] = {}
            for loop_id in scan.loop_ids:
                counts.loops_seen += 1
                entries_fp = fp.entries_fingerprint(scan.loops[loop_id].entries)
                entries_fps[loop_id] = entries_fp
                state_fp = fp.with_workspaces(entries_fp, workspace_root, stored_ws.get(loop_id, ()))
                if not fp.needs_read(stored.get(loop_id), state_fp, key_given=signing_key is not None):
                    counts.loops_unchanged += 1
                    done += 1
                    if on_progress is not None:
                        on_progress(facts.task_run_id, done, total)
                else:
                    to_read.append((loop_id, scan.loops[loop_id]))
            # The scenario is the one run fact that unpickles: only infer it (in the pool, which starts its first
            # worker here) when some loop is read; otherwise "unknown" keeps the scenario the registry stored.
            run = (read_run_isolated(pool, run_dir, workspace_root, key=signing_key, scan=scan, options=options)
                   if to_read else facts)
            run_ids.append(run.task_run_id)
            counts.task_runs_seen += 1
            with session_scope(engine) as s:
                if upsert_task_run(s, run):
                    counts.task_runs_new += 1
            for loop_id, snap in read_loops_isolated(pool, run_dir, to_read, workspace_root=workspace_root,
                                                     key=signing_key, scenario=run.scenario, options=options):
                state_fp = fp.with_workspaces(entries_fps[loop_id], workspace_root,
                                              [w.workspace_id for w in snap.workspaces])
                with session_scope(engine) as s:
                    change = write_loop(s, run.task_run_id, snap, fp.combine(state_fp, fp.snapshot_digest(snap)))
                setattr(counts, f"loops_{change}", getattr(counts, f"loops_{change}") + 1)
                if change != "unchanged" and snap.status in ("completed", "failed"):
                    counts.loops_marked_pending += 1
                if snap.errors:
                    counts.loops_with_errors += 1
                    eid = experiment_id_for(run.task_run_id, loop_id)
                    issues.extend(LoopIssue(experiment_id=eid, file=e.file, kind=e.kind, message=e.message)
                                  for e in snap.errors)
                counts.workspaces += len(snap.workspaces)
                counts.tasks += len(snap.tasks)
                counts.artifact_files += sum(len(w.files) for w in snap.workspaces)
                done += 1
                if on_progress is not None:
                    on_progress(run.task_run_id, done, total)
            with session_scope(engine) as s:
                finish_task_run(s, run.task_run_id)

        with session_scope(engine) as s:
            row = s.get(IngestRun, ingest_id)
            if row is not None:
                row.finished_at_utc = utcnow()
                row.status = "completed"
                row.counts_json = counts.model_dump()
    finally:
        pool.close()
        engine.dispose()
    changes = counts.changes
    return IngestReport(ok=not issues, db=_redact(db_url), log_root=str(log_root), workspace_root=str(workspace_root),
                        signature_check="key given" if signing_key is not None else "no key: signatures unverified",
                        counts=counts, changes=changes, task_run_ids=run_ids, issues=issues,
                        elapsed_seconds=round(time.perf_counter() - t0, 3))


def _stored_fingerprints(engine: Engine, task_run_id: str) -> dict[int, tuple[str | None, bool, str | None]]:
    """loop_id -> (stored fingerprint, had errors, signature status) for one run, in one query."""
    with session_scope(engine, write=False) as s:
        rows = s.execute(select(Loop.loop_id, Loop.trace_fingerprint, Loop.error, Loop.signature_status)
                         .where(Loop.task_run_id == task_run_id)).all()
    return {r.loop_id: (r.trace_fingerprint, r.error is not None, r.signature_status) for r in rows}


def _stored_workspace_ids(engine: Engine, task_run_id: str) -> dict[int, list[str]]:
    """loop_id -> ids of the workspaces stored for it (their state joins the loop's fingerprint), in one query."""
    out: dict[int, list[str]] = {}
    with session_scope(engine, write=False) as s:
        rows = s.execute(select(Artifact.loop_id, Artifact.workspace_id)
                         .where(Artifact.task_run_id == task_run_id, Artifact.root_kind == "workspace")).all()
    for r in rows:
        if r.workspace_id is not None:
            out.setdefault(r.loop_id, []).append(r.workspace_id)
    return out
