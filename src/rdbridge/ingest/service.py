"""`rdbridge ingest`: RD-Agent log trace + workspaces -> registry, idempotent, incremental and crash-safe.

Per loop: stat its pickles; if their (path, size, mtime) fingerprint matches what is stored and the loop had no
errors, skip it without unpickling. Otherwise read it (allow-listed unpickler) and write it in ONE transaction. A
SIGKILL therefore loses at most the loop in flight, and the next run redoes exactly that. Each invocation leaves an
`ingest_runs` row whose `finished_at_utc` stays NULL if it was killed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from rdbridge.contracts.ingest import IngestCounts, IngestReport, LoopIssue
from rdbridge.contracts.trace import LoopSnapshot, TraceFileError
from rdbridge.ingest import fingerprint as fp
from rdbridge.ingest.writer import finish_task_run, upsert_task_run, write_loop
from rdbridge.rdagent_trace import discover_runs, read_loop, read_run, scan_run
from rdbridge.rdagent_trace.walker import LoopScan
from rdbridge.registry import IngestRun, Loop, experiment_id_for, init_db, make_engine, session_scope, utcnow

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
) -> IngestReport:
    """Ingest every run under `log_root` (or `log_root` itself when it is one run) into the registry at `db_url`."""
    t0 = time.perf_counter()
    log_root = _check_root("--log-root", Path(log_root))
    workspace_root = _check_root("--workspace-root", Path(workspace_root))
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
            run = read_run(run_dir, workspace_root, key=signing_key, scan=scan)
            run_ids.append(run.task_run_id)
            counts.task_runs_seen += 1
            with session_scope(engine) as s:
                if upsert_task_run(s, run):
                    counts.task_runs_new += 1
            stored = _stored_fingerprints(engine, run.task_run_id)
            for loop_id in scan.loop_ids:
                counts.loops_seen += 1
                entries = scan.loops[loop_id].entries
                entries_fp = fp.entries_fingerprint(e.to_info() for e in entries)
                if not fp.needs_read(stored.get(loop_id), entries_fp, key_given=signing_key is not None):
                    counts.loops_unchanged += 1
                else:
                    snap = _read_loop_safely(run_dir, loop_id, scan.loops[loop_id], workspace_root, signing_key,
                                             run.scenario)
                    with session_scope(engine) as s:
                        change = write_loop(s, run.task_run_id, snap,
                                            fp.combine(entries_fp, fp.snapshot_digest(snap)))
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


def _read_loop_safely(run_dir: Path, loop_id: int, loop_scan: LoopScan, workspace_root: Path,
                      key: bytes | None, scenario: str) -> LoopSnapshot:
    """`read_loop` turns bad files into errors itself; this guards against anything it did not foresee, so one
    strange loop never stops the ingest of the others."""
    try:
        return read_loop(run_dir, loop_id, loop_scan, workspace_root=workspace_root, key=key, scenario=scenario)
    except Exception as exc:  # noqa: BLE001 - recorded on the loop with the folder that caused it
        folder = run_dir / f"Loop_{loop_id}"
        return LoopSnapshot(loop_id=loop_id, action="factor" if scenario != "fin_model" else "model", status="running",
                            entries=[e.to_info() for e in loop_scan.entries],
                            errors=[TraceFileError(file=str(folder), kind="unreadable",
                                                   message=f"{type(exc).__name__}: {exc}")])
