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
        mm = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            mm.madvise(mmap.MADV_NOHUGEPAGE)
        return mm

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
    size = max(-(-count * dt.itemsize // _PAGE), 1) * _PAGE
    mm = _POOL.take(size)
    owner = (ctypes.c_char * size).from_buffer(mm)  # every view of the array keeps this alive
    weakref.finalize(owner, _POOL.give, size, mm)
    return np.frombuffer(owner, dtype=dt, count=count).reshape(dims)


def idle_bytes() -> int:
    """Bytes held in idle mappings, waiting for reuse."""
    return _POOL.idle_bytes()


def release_idle(*, wait: bool = False) -> None:
    """Unmap every idle buffer (the end of a compute), on a background thread unless ``wait``; memory in use is
    untouched."""
    _POOL.release_idle(wait=wait)
