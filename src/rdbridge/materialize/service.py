"""`rdbridge materialize`: choose the loops in scope, run the workers, report.

Scopes: `pending` (default: every loop the state machine says is pending, or running under a dead or expired lease),
`all` (every finished loop: failed ones are retried; done ones are left alone unless `force`), `task-run` (the same,
for one run, optionally one loop). `force` sends done loops of the scope back to pending, so they are rebuilt (with the
same bytes when nothing changed). Workers are processes (`workers > 1`) or this process (`workers == 1`).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from rdbridge.config import artifact_root
from rdbridge.contracts.artifacts import MaterializeCounts, MaterializeFailure, MaterializeReport
from rdbridge.materialize.worker import Outcome, reclaim_dead_leases, run_worker
from rdbridge.registry import DEFAULT_LEASE_SECONDS, Loop, init_db, make_engine, session_scope, state

ProgressHook = Callable[[int, int, str], None]


class MaterializeInputError(ValueError):
    """Unusable arguments (unknown task run or loop, bad worker count): nothing was done."""


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url


def _prepare_scope(engine: Engine, scope: str, task_run_id: str | None, loop_id: int | None,
                   force: bool) -> tuple[list[int] | None, int, int]:
    """(loop row ids to claim from or None for any, loops to do, loops skipped as already done)."""
    with session_scope(engine, write=False) as s:  # plain columns: a no-op run over 1,000 loops stays cheap
        q = select(Loop.id, Loop.materialization_status).where(Loop.status.in_(("completed", "failed")))
        if task_run_id is not None:
            q = q.where(Loop.task_run_id == task_run_id)
            if loop_id is not None:
                q = q.where(Loop.loop_id == loop_id)
        rows = s.execute(q.order_by(Loop.id)).all()
    if task_run_id is not None and not rows:
        what = f"loop {loop_id} of task run {task_run_id!r}" if loop_id is not None else f"task run {task_run_id!r}"
        raise MaterializeInputError(f"--task-run/--loop: no finished {what} in the registry (see `rdbridge loops`)")
    redo = [r.id for r in rows if (r.materialization_status == "failed" and (scope != "pending" or force))
            or (r.materialization_status == "done" and force)]
    if redo:
        with session_scope(engine) as s:  # one transaction for every transition
            for loop in s.scalars(select(Loop).where(Loop.id.in_(redo))):
                if loop.materialization_status == "failed":
                    state.retry(s, loop)
                elif loop.materialization_status == "done":
                    state.reset_to_pending(s, loop)
    skipped = sum(1 for r in rows if r.materialization_status == "done" and not force)
    todo = len(rows) - skipped - sum(1 for r in rows if r.materialization_status == "failed" and r.id not in redo)
    only = [r.id for r in rows] if task_run_id is not None else None
    return only, todo, skipped


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass(frozen=True)
class _Finished:
    """A worker's last message: it is done, and the CPU time it used."""

    cpu_seconds: float


def _worker_main(url: str, root: str, worker: int, lease: float, only: list[int] | None, out: mp.Queue) -> None:
    engine = make_engine(url)
    try:
        run_worker(engine, Path(root), worker=worker, lease_seconds=lease, only=only, on_outcome=out.put)
    finally:
        engine.dispose()
        out.put(_Finished(cpu_seconds()))  # this worker is finished


def materialize(*, db_url: str, scope: str = "pending", task_run_id: str | None = None, loop_id: int | None = None,
                workers: int = 1, force: bool = False, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                root: Path | None = None, on_progress: ProgressHook | None = None) -> MaterializeReport:
    """Materialize the loops in scope; see the module docstring. Raises MaterializeInputError for unusable arguments."""
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    worker_cpu: list[float] = []
    if scope not in ("pending", "all", "task-run"):
        raise MaterializeInputError(f"unknown scope {scope!r}")
    if scope == "task-run" and not task_run_id:
        raise MaterializeInputError("--task-run needs a task run id")
    if loop_id is not None and scope != "task-run":
        raise MaterializeInputError("--loop needs --task-run")
    if workers < 1:
        raise MaterializeInputError(f"--workers must be at least 1, got {workers}")
    root = Path(root) if root is not None else artifact_root()
    root.mkdir(parents=True, exist_ok=True)
    engine = init_db(make_engine(db_url))
    outcomes: list[Outcome] = []
    try:
        reclaim_dead_leases(engine)
        only, todo, skipped = _prepare_scope(engine, scope, task_run_id if scope == "task-run" else None, loop_id,
                                             force)

        def collect(o: Outcome) -> None:
            outcomes.append(o)
            if on_progress is not None:
                on_progress(len(outcomes), max(todo, len(outcomes)), o.experiment_id)

        if todo == 0:
            pass  # nothing pending or running in scope: no worker to start (a no-op rerun stays a few queries)
        elif workers == 1:
            run_worker(engine, root, worker=0, lease_seconds=lease_seconds, only=only, on_outcome=collect)
        else:
            engine.dispose()  # no pooled connection crosses a fork
            worker_cpu = _run_processes(db_url, root, workers, lease_seconds, only, collect)
    finally:
        engine.dispose()
    failures = [MaterializeFailure(experiment_id=o.experiment_id, error=o.error or "") for o in outcomes
                if o.status == "failed"]
    counts = MaterializeCounts(done=sum(o.status == "done" for o in outcomes), failed=len(failures), skipped=skipped)
    scope_text = scope if scope != "task-run" else f"task-run {task_run_id}" + (
        f" loop {loop_id}" if loop_id is not None else "")
    return MaterializeReport(ok=not failures, db=_redact(db_url), scope=scope_text, workers=workers, force=force,
                             counts=counts, seconds=round(time.perf_counter() - t0, 3), failures=failures,
                             artifact_root=str(root), cpu_seconds=round(cpu_seconds() - cpu0 + sum(worker_cpu), 3))


# Imported once by the fork server, so each worker process starts with them (~1-2 s of CPU per import round).
PRELOAD = ("rdbridge.materialize.worker", "matplotlib.backends.backend_agg", "matplotlib.figure", "matplotlib.dates",
           "tables", "pyarrow.parquet", "jinja2.sandbox", "yaml")


def _context() -> Any:
    """Worker processes come from a fork server (a fresh process that imported PRELOAD and never ran anything): a
    fork of the calling process would inherit Polars' thread pool without its threads and hang once the caller had
    used Polars (e.g. after a one-worker run in the same process); spawning pays every import in every worker."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
        return ctx
    return mp.get_context("spawn")


def _run_processes(url: str, root: Path, workers: int, lease: float, only: list[int] | None,
                   collect: Callable[[Outcome], None]) -> list[float]:
    """Run the worker processes; the CPU seconds each reported."""
    ctx = _context()
    cpu: list[float] = []
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(url, str(root), i, lease, only, out), daemon=True)
             for i in range(workers)]
    for p in procs:
        p.start()
    running = len(procs)
    while running:
        try:
            item = out.get(timeout=1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                break  # a worker died without saying so; its loop stays leased and is taken over next time
            continue
        if isinstance(item, _Finished):
            running -= 1
            cpu.append(item.cpu_seconds)
        else:
            collect(item)
    for p in procs:
        p.join()
    return cpu
