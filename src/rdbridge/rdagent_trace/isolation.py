"""Unpickling trace data in worker processes, so whatever the allow-list misses costs a named error, not the ingest.

Why: the safe unpickler refuses every known route to code execution, but numpy / pandas / pyarrow are C code, and a
forged object that slips past every check could still segfault, allocate without bound or spin. So trace pickles are
unpickled (and interpreted into plain contract values) only in a small pool of worker processes:

* each worker limits its own address space (`RLIMIT_AS`, set in the worker initializer) so an allocation bomb is a
  `MemoryError` -> "too large", not the kernel's OOM killer;
* the worker announces each file before reading it (`progress.note_file`) and every global it resolves (a shared
  buffer), so when it dies the parent names the file and class: "crashed" (killed by a signal), "timed out" (no
  progress for `file_timeout` seconds: the parent kills it), "too large";
* a dead worker is replaced; the pool is reused across files and loops (a process per file would be far too slow).

Results come back as JSON (contract values) or, for `safe_load_file`, as a pickle the worker re-wrote from the
rebuilt object, which this process loads with the same `SafeUnpickler` (so it is checked twice).
"""

from __future__ import annotations

import atexit
import ctypes
import faulthandler
import io
import json
import multiprocessing as mp
import os
import pickle
import types
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from rdbridge.contracts.trace import LoopSnapshot, RunSnapshot, TraceFileError
from rdbridge.rdagent_trace import progress
from rdbridge.rdagent_trace.errors import (
    CrashedError,
    ForbiddenClassError,
    TimedOutError,
    TooLargeError,
    TraceReadError,
    UnreadableFileError,
)
from rdbridge.rdagent_trace.files import default_max_pickle_bytes
from rdbridge.rdagent_trace.safe_unpickle import RdagentRecord, SafeUnpickler, load_pickle_file, safe_loads

__all__ = ["ReaderPool", "TaskFailure", "default_pool", "safe_load_file", "WORKER_MEMORY_ENV", "FILE_TIMEOUT_ENV"]

WORKER_MEMORY_ENV = "RDBRIDGE_READER_MEMORY_MB"
FILE_TIMEOUT_ENV = "RDBRIDGE_READER_TIMEOUT_S"
DEFAULT_WORKER_MEMORY = 2048 << 20  # address space a worker may add to what it inherited
DEFAULT_FILE_TIMEOUT = 60.0
_PROGRESS_SIZE = 600


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value > 0 else default


# --------------------------------------------------------------------------------------------------------------------
# worker side


def _vm_size() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _limit_address_space(extra_bytes: int) -> None:
    """RLIMIT_AS = what the (forked) worker already maps + `extra_bytes`: big allocations fail with MemoryError."""
    limit = _vm_size() + extra_bytes
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _write_progress(buf: Any, offset: int, text: str) -> None:
    data = text.encode("utf-8", "replace")[:_PROGRESS_SIZE // 2 - 1] + b"\0"
    ctypes.memmove(ctypes.addressof(buf) + offset, data, len(data))


def _read_progress(buf: Any, offset: int) -> str:
    raw = bytes(buf[offset:offset + _PROGRESS_SIZE // 2])
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _pristine_dispatch() -> dict[type, Any]:
    """The standard library's own save table. Importing dill (pyqlib does) rewrites `pickle._Pickler.dispatch` with
    reducers that name `dill._dill` globals, which the parent's allow-list rightly refuses; a forked worker inherits
    that, so the table is rebuilt here from the standard methods."""
    p = pickle._Pickler  # type: ignore[attr-defined]
    table: dict[type, Any] = {k: v for k, v in p.dispatch.items() if getattr(v, "__module__", None) == "pickle"}
    table.update({type(None): p.save_none, bool: p.save_bool, int: p.save_long, float: p.save_float,
                  bytes: p.save_bytes, bytearray: p.save_bytearray, str: p.save_str, tuple: p.save_tuple,
                  list: p.save_list, dict: p.save_dict, set: p.save_set, frozenset: p.save_frozenset,
                  types.FunctionType: p.save_global, type: p.save_type, pickle.PickleBuffer: p.save_picklebuffer})
    return table


class _RecordPickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """Re-pickles a rebuilt object for the parent: record stubs are written under their RD-Agent class path (the
    parent's SafeUnpickler maps that back to a record), everything else as the standard library writes it."""

    dispatch = _pristine_dispatch()

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if isinstance(obj, type) and issubclass(obj, RdagentRecord) and obj is not RdagentRecord:
            module, _, qual = obj.class_path.rpartition(".")
            self.save(module)
            self.save(qual)
            self.write(pickle.STACK_GLOBAL)
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _repickle(obj: Any) -> bytes:
    out = io.BytesIO()
    _RecordPickler(out, protocol=4).dump(obj)
    return out.getvalue()


def _task_load_file(path: str, max_bytes: int, trusted_roots: tuple[str, ...]) -> bytes:
    progress.note_file(path)
    obj = load_pickle_file(Path(path), max_bytes=max_bytes, trusted_roots=tuple(Path(r) for r in trusted_roots))
    return _repickle(obj)


def _task_read_loop(run_dir: str, loop_id: int, entries: Any, workspace_root: str, key: bytes | None,
                    scenario: str | None, options: Any, skip: dict[str, dict[str, str]]) -> bytes:
    from rdbridge.rdagent_trace.loop_reader import read_loop

    snap = read_loop(Path(run_dir), loop_id, entries, workspace_root=Path(workspace_root), key=key,
                     scenario=scenario, options=options,
                     skip={k: TraceFileError.model_validate(v) for k, v in skip.items()})
    return snap.model_dump_json().encode()


def _task_read_run(run_dir: str, workspace_root: str, key: bytes | None, scan: Any, options: Any) -> bytes:
    from rdbridge.rdagent_trace.loop_reader import read_run

    return read_run(Path(run_dir), Path(workspace_root), key=key, scan=scan, options=options
                    ).model_dump_json().encode()


def _task_echo(value: Any) -> bytes:  # used by tests to check the pool round trip
    return json.dumps(value).encode()


def _task_selftest(mode: str, path: str) -> bytes:
    """Real failures of a real worker, for the tests of the parent's handling (not reachable from trace data):
    a segfault, an allocation past RLIMIT_AS, a hang."""
    progress.note_file(path)
    SafeUnpickler.progress(f"selftest.{mode}") if SafeUnpickler.progress else None
    if mode == "segv":
        ctypes.string_at(0)
    elif mode == "alloc":
        return bytes(bytearray(64 << 30))[:1]
    elif mode == "hang":
        time.sleep(3600)
    return b""


def _task_check_many(cases: list[bytes], start: int) -> bytes:
    """Outcome of safely loading each of `cases` (and showing the result as text, which reads every value):
    "loaded", the error kind, or "unnamed:<type>" for an exception that is not a `TraceReadError` (a bug).
    Used by the fuzz test and `benchmarks/fuzz_unpickle.py`; announces each case so a crash names it."""
    from rdbridge.rdagent_trace.loop_reader import safe_text

    out: list[str] = []
    for i, data in enumerate(cases, start=start):
        progress.note_file(f"case:{i}")
        try:
            obj = safe_loads(data, source=f"case:{i}")
            safe_text(obj)
            out.append("loaded")
        except TraceReadError as e:
            out.append(e.kind)
        except MemoryError:
            out.append("too_large")
        except BaseException as e:  # noqa: BLE001 - counted, so the fuzzer reports it
            out.append(f"unnamed:{type(e).__name__}")
    return json.dumps(out).encode()


_TASKS: dict[str, Callable[..., bytes]] = {"load_file": _task_load_file, "read_loop": _task_read_loop,
                                           "read_run": _task_read_run, "echo": _task_echo,
                                           "selftest": _task_selftest, "check_many": _task_check_many}


def _worker_main(conn: Connection, buf: Any, extra_bytes: int) -> None:
    """Worker loop: run tasks sent by the parent; reply b"F<path>" (heartbeat), b"O<bytes>" (result) or b"E<json>"."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    faulthandler.disable()  # a crash is reported by the parent, naming file and class; no traceback dump here
    _limit_address_space(extra_bytes)

    def on_file(path: str) -> None:
        _write_progress(buf, 0, path)
        _write_progress(buf, _PROGRESS_SIZE // 2, "")
        conn.send_bytes(b"F" + path.encode("utf-8", "replace"))

    progress.set_file_hook(on_file)
    SafeUnpickler.progress = lambda name: _write_progress(buf, _PROGRESS_SIZE // 2, name)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        name, args = msg
        try:
            out = b"O" + _TASKS[name](*args)
        except TraceReadError as e:
            out = b"E" + json.dumps({"path": e.path, "kind": e.kind, "message": e.message}).encode()
        except MemoryError:
            out = b"E" + json.dumps({"path": _read_progress(buf, 0), "kind": "too_large",
                                     "message": "reading needs more memory than the reader's limit "
                                                f"({RDBRIDGE_MEMORY_HINT}); not loaded"}).encode()
        except BaseException as e:  # noqa: BLE001 - reported to the parent as a named error on the file
            out = b"E" + json.dumps({"path": _read_progress(buf, 0), "kind": "unreadable",
                                     "message": f"reader failed ({type(e).__name__}: {str(e)[:300]})"}).encode()
        try:
            conn.send_bytes(out)
        except MemoryError:
            conn.send_bytes(b"E" + json.dumps({"path": _read_progress(buf, 0), "kind": "too_large",
                                               "message": "result too large to return"}).encode())


RDBRIDGE_MEMORY_HINT = f"{WORKER_MEMORY_ENV}"


# --------------------------------------------------------------------------------------------------------------------
# parent side


def named_error(path: str, kind: str, message: str) -> TraceReadError:
    """The `TraceReadError` subclass for `kind` (as the worker raised it), with the worker's message unchanged."""
    cls = next((c for c in _error_classes() if c.default_kind == kind), TraceReadError)
    err = cls.__new__(cls)
    TraceReadError.__init__(err, path, kind, message)
    if isinstance(err, ForbiddenClassError):
        err.global_name = ""
    return err


def _error_classes() -> list[type[TraceReadError]]:
    from rdbridge.rdagent_trace import errors

    return [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, TraceReadError)
            and c not in (TraceReadError, errors._FixedKind)]


@dataclass
class TaskFailure:
    """A task the worker could not finish: the named error (file, kind, message) and the file it was on."""

    error: TraceReadError
    file: str | None


class _Worker:
    def __init__(self, ctx: Any, extra_bytes: int) -> None:
        self.buf = ctx.RawArray(ctypes.c_char, _PROGRESS_SIZE)
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, self.buf, extra_bytes), daemon=True,
                                name="rdbridge-reader")
        self.proc.start()
        child.close()
        self.file: str | None = None
        self.deadline = 0.0

    def position(self) -> tuple[str | None, str]:
        return self.file, _read_progress(self.buf, _PROGRESS_SIZE // 2)

    def stop(self, kill: bool = False) -> None:
        try:
            if kill:
                self.proc.kill()
            else:
                self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.proc.join(2 if not kill else 5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


class ReaderPool:
    """A few long-lived worker processes that read trace data (see module docstring).

    `run(task, args)` runs one task and returns its bytes or raises the worker's named `TraceReadError`;
    `imap(jobs)` runs many with up to `size` in flight and yields `(job_key, bytes | TaskFailure)` in job order.
    A worker that dies or stalls is replaced; its task becomes a `CrashedError` / `TimedOutError` naming the file (and
    the class last resolved). Workers start on the first task, not with the pool: creating one is free.
    """

    def __init__(self, size: int | None = None, *, memory_bytes: int | None = None,
                 file_timeout: float | None = None) -> None:
        self.size = max(1, size if size is not None else min(2, os.cpu_count() or 1))
        self.memory_bytes = int(memory_bytes or _env_number(WORKER_MEMORY_ENV, DEFAULT_WORKER_MEMORY / 2**20) * 2**20)
        self.file_timeout = float(file_timeout or _env_number(FILE_TIMEOUT_ENV, DEFAULT_FILE_TIMEOUT))
        methods = mp.get_all_start_methods()
        self._ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._warm = False
        self.replaced = 0
        self.started = 0  # worker processes started so far (0 when nothing needed reading)

    # workers -------------------------------------------------------------------------------------------------------

    def _take(self) -> _Worker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if not self._warm:
                # import numpy / pandas and build the check tables once, before the first fork: workers inherit
                # them. Not in __init__: a pool that never reads (a re-ingest with nothing changed) costs nothing.
                _warm_up()
                self._warm = True
            w = _Worker(self._ctx, self.memory_bytes)
            self.started += 1
            self._all.append(w)
            return w

    def _give_back(self, w: _Worker) -> None:
        with self._lock:
            self._idle.append(w)

    def _discard(self, w: _Worker, *, kill: bool) -> None:
        w.stop(kill=kill)
        with self._lock:
            if w in self._all:
                self._all.remove(w)
        self.replaced += 1

    def close(self) -> None:
        with self._lock:
            workers, self._all, self._idle = self._all, [], []
        for w in workers:
            w.stop()

    def __enter__(self) -> "ReaderPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # tasks ---------------------------------------------------------------------------------------------------------

    def _start(self, w: _Worker, task: str, args: tuple[Any, ...], first_file: str | None) -> None:
        w.file = first_file
        _write_progress(w.buf, 0, first_file or "")
        _write_progress(w.buf, _PROGRESS_SIZE // 2, "")
        w.deadline = time.monotonic() + self.file_timeout
        w.conn.send((task, args))

    def _step(self, w: _Worker) -> bytes | TaskFailure | None:
        """Handle one message of a busy worker: None for a heartbeat, else the task's outcome."""
        try:
            msg = w.conn.recv_bytes()
        except (EOFError, OSError):
            return self._died(w)
        tag, body = msg[:1], msg[1:]
        if tag == b"F":
            w.file = body.decode("utf-8", "replace")
            w.deadline = time.monotonic() + self.file_timeout
            return None
        self._give_back(w)
        if tag == b"O":
            return body
        info = json.loads(body)
        kind = info.get("kind", "unreadable")
        err = named_error(info.get("path") or w.file or "<reader>", kind, info.get("message", ""))
        return TaskFailure(err, w.file)

    def _died(self, w: _Worker) -> TaskFailure:
        file, cls = w.position()
        w.proc.join(5)
        code = w.proc.exitcode
        self._discard(w, kill=True)
        where = f" while rebuilding {cls}" if cls else ""
        if code is not None and code < 0:
            sig = -code
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            if sig == signal.SIGKILL:
                err: TraceReadError = TooLargeError(file or "<reader>", f"the reader process was killed (SIGKILL, "
                                                    f"likely out of memory){where}; the file was not loaded")
            else:
                err = CrashedError(file or "<reader>", f"the reader process crashed ({name}){where}; the file was "
                                                       "not loaded (it may be malicious or damaged)")
        else:
            err = CrashedError(file or "<reader>", f"the reader process exited unexpectedly (code {code}){where}")
        return TaskFailure(err, file)

    def _timed_out(self, w: _Worker) -> TaskFailure:
        file, cls = w.position()
        self._discard(w, kill=True)
        where = f" while rebuilding {cls}" if cls else ""
        return TaskFailure(TimedOutError(file or "<reader>", f"reading took longer than {self.file_timeout:g}s"
                                                             f"{where}; the reader was stopped ({FILE_TIMEOUT_ENV})"),
                           file)

    def run(self, task: str, args: tuple[Any, ...], *, first_file: str | None = None) -> bytes:
        """Run one task to the end; raise its named error (a `TraceReadError`) if it failed."""
        for _key, out in self.imap([(None, task, args, first_file)]):
            if isinstance(out, TaskFailure):
                raise out.error
            return out
        raise AssertionError("unreachable")  # pragma: no cover

    def imap(self, jobs: Iterable[tuple[Any, str, tuple[Any, ...], str | None]]
             ) -> Iterator[tuple[Any, bytes | TaskFailure]]:
        """Run `(key, task, args, first_file)` jobs, `size` at a time; yield `(key, outcome)` in job order."""
        it = iter(jobs)
        pending: dict[int, tuple[Any, _Worker]] = {}
        done: dict[int, tuple[Any, bytes | TaskFailure]] = {}
        next_in, next_out = 0, 0
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.size:
                job = next(it, None)
                if job is None:
                    exhausted = True
                    break
                key, task, args, first = job
                w = self._take()
                try:
                    self._start(w, task, args, first)
                except (OSError, ValueError):  # the worker died before taking the task
                    done[next_in] = (key, self._died(w))
                    next_in += 1
                    continue
                pending[next_in] = (key, w)
                next_in += 1
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
            if not pending:
                if exhausted and not done:
                    return
                continue
            by_conn = {w.conn: idx for idx, (_k, w) in pending.items()}
            timeout = max(0.0, min(w.deadline for _k, w in pending.values()) - time.monotonic())
            ready = wait(list(by_conn), timeout)
            for conn in ready:
                idx = by_conn[conn]  # type: ignore[index]
                key, w = pending[idx]
                out = self._step(w)
                if out is not None:
                    del pending[idx]
                    done[idx] = (key, out)
            now = time.monotonic()
            for idx, (key, w) in list(pending.items()):
                if w.deadline <= now and not w.conn.poll():
                    del pending[idx]
                    done[idx] = (key, self._timed_out(w))


def _warm_up() -> None:
    from rdbridge.rdagent_trace import guards, safe_unpickle

    guards.check_call(guards.Budget("<warm-up>", 0), slice, (0, 1), {}, how="REDUCE")
    guards.check_build(guards.Budget("<warm-up>", 0), safe_unpickle.record_class("rdagent.core.experiment.Task")(),
                       {})
    safe_unpickle._newobj_classes()
    safe_unpickle.allowed_global("numpy", "dtype")


_DEFAULT: ReaderPool | None = None


def default_pool() -> ReaderPool:
    """The process-wide pool (created on first use, closed at exit)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ReaderPool()
        atexit.register(_DEFAULT.close)
    return _DEFAULT


def safe_load_file(path: Path | str, *, max_bytes: int | None = None, trusted_roots: Iterable[Path] = (),
                   pool: ReaderPool | None = None) -> Any:
    """Load one pickle file (e.g. a workspace's legacy ``ret.pkl``) in the isolated reader pool.

    Returns the rebuilt object (RD-Agent objects as `RdagentRecord`s); raises a `TraceReadError` subclass naming the
    file: forbidden_class, corrupt, truncated, unreadable (not a regular file, link out of `trusted_roots`),
    too_large (above `max_bytes`, default the trace-pickle cap, or past the worker's memory limit), crashed,
    timed_out.
    """
    cap = int(max_bytes or default_max_pickle_bytes())
    path = Path(path)
    data = (pool or default_pool()).run("load_file", (str(path), cap, tuple(str(r) for r in trusted_roots)),
                                       first_file=str(path))
    try:
        return safe_loads(data, source=path)
    except TraceReadError:
        raise
    except Exception as e:  # pragma: no cover - the worker's own output failed the checks
        raise UnreadableFileError(path, f"rebuilt object did not pass the checks ({type(e).__name__})") from None


def decode_loop(data: bytes) -> LoopSnapshot:
    return LoopSnapshot.model_validate_json(data)


def decode_run(data: bytes) -> RunSnapshot:
    return RunSnapshot.model_validate_json(data)
