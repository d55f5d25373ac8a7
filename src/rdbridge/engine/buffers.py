"""Output arrays for the kernels: recycled anonymous mappings on small pages, never transparent huge pages.

A compute allocates a few hundred multi-megabyte columns that live briefly, and on this kind of VM the cost of
memory is first touch, not allocation. Measured per Alpha158 compute at 300 x 2,500 (`benchmarks/profile_engine.py`
and `/proc/vmstat` thp_fault_alloc):

- numpy's allocator (glibc) returns large arrays to the system on free, so every kernel output was first-touched
  again: ~360k page faults;
- Arrow's default pool (mimalloc) keeps its pages but commits its arena as transparent huge pages, and here a huge
  page takes several times longer to fault in than the same memory in small pages (0.47 s against 0.14 s for 427
  MB): ~300 huge-page faults, 0.8-1.8 s of system time, about a quarter of the whole compute in `clear_page`.

So each buffer is its own anonymous mapping with ``MADV_NOHUGEPAGE``, handed back to a free list (by exact size)
when the last view of it dies, and reused by the next kernel that asks for that size; ``release_idle`` unmaps the
idle ones when a compute ends (on a background thread: munmap is not free either). The arrays can still be handed
to Arrow and Polars without a copy.
"""

from __future__ import annotations

import ctypes
import mmap
import threading
import weakref

import numpy as np

_PAGE = mmap.PAGESIZE
_MADV_POPULATE_WRITE = 23  # Linux >= 5.14; elsewhere madvise fails and the pages fault in on first write instead
try:
    _madvise = ctypes.CDLL(None, use_errno=True).madvise
    _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    _madvise.restype = ctypes.c_int
except (OSError, AttributeError):  # no C library symbols to call: prefill still maps, without populating
    _madvise = None


class _Pool:
    """Idle mappings by size. Thread-safe: kernels run on Polars' threads, and views die on any thread."""

    def __init__(self) -> None:
        self._idle: dict[int, list[mmap.mmap]] = {}
        self._lock = threading.Lock()

    def take(self, size: int) -> mmap.mmap:
        with self._lock:
            idle = self._idle.get(size)
            if idle:
                return idle.pop()
        return self._new(size)

    @staticmethod
    def _new(size: int) -> mmap.mmap:
        mm = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            mm.madvise(mmap.MADV_NOHUGEPAGE)
        return mm

    def prefill(self, size: int, count: int) -> None:
        """Map ``count`` buffers of ``size`` bytes and fault them in (one system call each, without the GIL), adding
        each to the idle list as it is ready."""
        for _ in range(count):
            mm = self._new(size)
            if _madvise is not None:
                owner = ctypes.c_char.from_buffer(mm)
                _madvise(ctypes.addressof(owner), size, _MADV_POPULATE_WRITE)
                del owner  # no export may outlive the mapping's hand-over
            self.give(size, mm)

    def give(self, size: int, mm: mmap.mmap) -> None:
        with self._lock:
            self._idle.setdefault(size, []).append(mm)

    def idle_bytes(self) -> int:
        with self._lock:
            return sum(size * len(v) for size, v in self._idle.items())

    def release_idle(self, *, wait: bool = False) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        maps = [mm for group in idle.values() for mm in group]
        if not maps:
            return

        def unmap() -> None:
            for mm in maps:
                mm.close()

        if wait:
            unmap()
        else:  # unmapping hundreds of MB takes tens of ms of system time: off the caller's path
            threading.Thread(target=unmap, name="rdbridge-unmap", daemon=True).start()


_POOL = _Pool()


def empty(shape: int | tuple[int, ...], dtype: type | np.dtype = np.float64) -> np.ndarray:
    """An uninitialised, writable, C-contiguous, page-aligned array whose memory is reused once no view is left."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    dt = np.dtype(dtype)
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    size = nbytes(count, dt)
    mm = _POOL.take(size)
    owner = (ctypes.c_char * size).from_buffer(mm)  # every view of the array keeps this alive
    weakref.finalize(owner, _POOL.give, size, mm)
    return np.frombuffer(owner, dtype=dt, count=count).reshape(dims)


def nbytes(count: int, dtype: type | np.dtype) -> int:
    """The mapping size ``empty`` uses for ``count`` items of ``dtype``."""
    return max(-(-count * np.dtype(dtype).itemsize // _PAGE), 1) * _PAGE


PREFILL_BUDGET = 256 * 2**20
"""Bytes one ``prefill`` call may map ahead: about what this VM populates in the ~80 ms a compute spends parsing
and laying out, and a bound that keeps a large panel's request from mapping gigabytes it may not use."""

_PREFILLING: list[threading.Thread] = []


def prefill(requests: list[tuple[int, int]]) -> threading.Thread:
    """Fault in buffers for ``(size, count)`` requests (at most ``PREFILL_BUDGET`` bytes in all) on a background
    thread, while the caller does serial work on one core: the page faults a compute would take inside its
    parallel passes are taken on the idle core instead. Unused buffers go with the next ``release_idle``."""
    budget = PREFILL_BUDGET
    plan: list[tuple[int, int]] = []
    for size, count in requests:
        n = max(min(count, budget // size), 0)
        budget -= n * size
        plan.append((size, n))

    def run() -> None:
        for size, n in plan:
            _POOL.prefill(size, n)

    t = threading.Thread(target=run, name="rdbridge-prefill", daemon=True)
    _PREFILLING.append(t)
    t.start()
    return t


def idle_bytes() -> int:
    """Bytes held in idle mappings, waiting for reuse."""
    return _POOL.idle_bytes()


def release_idle(*, wait: bool = False) -> None:
    """Unmap every idle buffer (the end of a compute), on a background thread unless ``wait``; memory in use is
    untouched. Waits for running ``prefill`` threads first, so none adds buffers after the release."""
    while _PREFILLING:
        _PREFILLING.pop().join()
    _POOL.release_idle(wait=wait)
