"""One materialization worker: claim a loop (lease), build its set, write it, register it and mark it done.

Order of effects, so a SIGKILL at any point leaves things consistent: the manifest of an older set is removed, each
file is written atomically, the manifest is written last, then ONE transaction replaces the loop's store rows and
moves it to done (only if this worker still holds the lease). A worker killed before that commit leaves the loop
`running` under its lease; the next `materialize` takes it over (at once when the lease owner is a dead process on this
host, else when the lease expires) and rewrites the same bytes. A heartbeat thread renews the lease while a loop is
built, so a slow loop is never taken over by a second worker.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from rdbridge.materialize import documents, store
from rdbridge.materialize.errors import LoopInputError
from rdbridge.materialize.gather import gather
from rdbridge.registry import Loop, session_scope, state, utcnow


@dataclass(frozen=True)
class Outcome:
    experiment_id: str
    status: str  # done | failed | lost (another worker or an ingest took the loop over)
    error: str | None = None


def owner_name(worker: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{worker}"


class Heartbeat:
    """Renews `owner`'s lease on the loop being built every lease/3 seconds: one thread per worker, started at the
    first loop, pointed at each loop in turn (`watch`), so a loop costs no thread start and join."""

    def __init__(self, engine: Engine, owner: str, lease_seconds: float) -> None:
        self._engine, self._owner, self._lease = engine, owner, lease_seconds
        self._current: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self._lease / 3):
            loop_row_id = self._current
            if loop_row_id is None:
                continue
            try:
                with session_scope(self._engine) as s:
                    loop = s.get(Loop, loop_row_id)
                    if loop is not None:
                        state.renew_lease(s, loop, self._owner, self._lease)
            except state.LeaseLost:
                continue  # the loop was finished or taken over meanwhile; its final transaction decides
            except Exception:  # noqa: BLE001 - a transient database error: try again at the next beat
                continue

    @contextmanager
    def watch(self, loop_row_id: int) -> Iterator[None]:
        """Keep this loop's lease alive while the block runs."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
            self._thread.start()
        self._current = loop_row_id
        try:
            yield
        finally:
            self._current = None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def write_set(folder: Path, files: dict[str, bytes]) -> None:
    """Atomic files, manifest last; files of an older set that this one lacks are removed before the manifest."""
    store.prepare_dir(folder)
    store.write_many(folder, {name: data for name, data in files.items() if name != store.MANIFEST})
    store.prune(folder, set(files))
    store.write_atomic(folder / store.MANIFEST, files[store.MANIFEST])


def _finish(engine: Engine, loop_row_id: int, owner: str, files: dict[str, bytes] | None, error: str | None) -> None:
    with session_scope(engine) as s:
        loop = s.get(Loop, loop_row_id)
        if loop is None:
            raise state.LeaseLost("?", "complete", None, "the loop row is gone")
        if files is None:
            state.fail(s, loop, owner, error or "failed")
            return
        store.register(s, task_run_id=loop.task_run_id, loop_id=loop.loop_id, experiment_id=loop.experiment_id,
                       files=files, when=utcnow())
        state.complete(s, loop, owner)


def process_one(engine: Engine, root: Path, loop_row_id: int, experiment_id: str, owner: str,
                lease_seconds: float, heartbeat: Heartbeat | None = None) -> Outcome:
    """Build, write and register one claimed loop; the loop ends done or failed (or lost, then nothing is kept).

    `heartbeat`: the worker's lease renewer (one is made for this loop when None)."""
    beat = heartbeat if heartbeat is not None else Heartbeat(engine, owner, lease_seconds)
    try:
        with beat.watch(loop_row_id):
            files, error = _build(engine, root, experiment_id)
    finally:
        if heartbeat is None:
            beat.stop()
    try:
        _finish(engine, loop_row_id, owner, files, error)
    except state.IllegalTransition:
        return Outcome(experiment_id, "lost", "the lease was lost (another worker or an ingest took the loop)")
    return Outcome(experiment_id, "done" if files is not None else "failed", error)


def _build(engine: Engine, root: Path, experiment_id: str) -> tuple[dict[str, bytes] | None, str | None]:
    """(the set's files, None) once written, or (None, the error for the user)."""
    try:
        with session_scope(engine, write=False) as s:
            data = gather(s, experiment_id)
        files = documents.build_set(data)
        write_set(store.loop_dir(root, data.task_run_id, data.loop_id), files)
        return files, None
    except LoopInputError as e:
        return None, str(e)
    except store.UnsafeIdentifierError as e:
        return None, str(e)
    except OSError as e:
        return None, f"{e.filename or root}: cannot write the artifact store ({e.strerror or e})"
    except Exception as e:  # noqa: BLE001 - one strange loop must not stop the others: recorded on the loop
        return None, f"unexpected {type(e).__name__} while materializing: {e}"


def run_worker(engine: Engine, root: Path, *, worker: int, lease_seconds: float, only: list[int] | None,
               on_outcome: Callable[[Outcome], None]) -> None:
    """Claim and process loops until none is left to claim."""
    owner = owner_name(worker)
    heartbeat = Heartbeat(engine, owner, lease_seconds)
    try:
        while True:
            with session_scope(engine) as s:
                loop = state.claim_next(s, owner, lease_seconds, only=only)
                claimed = (loop.id, loop.experiment_id) if loop is not None else None
            if claimed is None:
                return
            on_outcome(process_one(engine, root, claimed[0], claimed[1], owner, lease_seconds, heartbeat))
    finally:
        heartbeat.stop()


def reclaim_dead_leases(engine: Engine) -> int:
    """Loops `running` under a lease whose owner is a process of this host that no longer exists: back to pending.

    Without this, a SIGKILLed materialize would leave its loop stuck until the lease expires.
    """
    host = socket.gethostname()
    n = 0
    with session_scope(engine) as s:
        rows = list(s.scalars(select(Loop).where(Loop.materialization_status == "running")))
        for loop in rows:
            parts = (loop.materialization_lease_owner or "").rsplit(":", 2)
            if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
                continue
            if _alive(int(parts[1])):
                continue
            state.reset_to_pending(s, loop)
            n += 1
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
