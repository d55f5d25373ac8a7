"""Keep one optional library that numba probes for, and the engine never uses, out of an engine process's start-up.

numba sets up its CPU target on the first compiled or cache-loaded call (``kernels.py`` makes that call when it is
imported). That set-up imports ``numba.np.arraymath``, whose ``_HAVE_BLAS`` check imports ``scipy.linalg`` when
scipy is installed (pyqlib brings it): ~50 ms here, a tenth of what `engine compute` spends before its compute.
The check only chooses BLAS over numba's own loop for ``np.correlate`` / ``np.convolve``, which no engine kernel
calls; ``np.dot`` and ``np.linalg`` in jitted code still work afterwards, because numba imports scipy again when it
types them (``ensure_blas``). So that one call runs with ``scipy.linalg`` hidden from this thread's imports; other
threads, and every import after the block, see it as usual.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


class _Hide(importlib.abc.MetaPathFinder):
    """A finder that answers "no such module" for ``names`` on one thread."""

    def __init__(self, names: frozenset[str], thread: int) -> None:
        self.names = names
        self.thread = thread

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname in self.names and threading.get_ident() == self.thread:
            raise ModuleNotFoundError(f"{fullname} is hidden during numba's set-up", name=fullname)
        return None


@contextmanager
def hidden_modules(names: Sequence[str]) -> Iterator[frozenset[str]]:
    """Inside the block, importing one of ``names`` on this thread raises ModuleNotFoundError, unless it is already
    imported (then nothing changes). Yields the names actually hidden."""
    hide = frozenset(n for n in names if n not in sys.modules)
    if not hide:
        yield hide
        return
    finder = _Hide(hide, threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        yield hide
    finally:
        sys.meta_path.remove(finder)
