"""Where the reader is, for the isolated worker: which file it is on and which class it last resolved.

Why: when a worker process dies (a segfault in a C extension) or hangs, the parent can only name the culprit if the
worker said beforehand what it was reading. In the parent process both hooks are no-ops.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = ["note_file", "set_file_hook"]

_file_hook: Callable[[str], None] | None = None


def set_file_hook(hook: Callable[[str], None] | None) -> None:
    global _file_hook
    _file_hook = hook


def note_file(path: Path | str) -> None:
    """Called before a file is read (a trace pickle or a workspace folder): restarts the per-file timeout."""
    if _file_hook is not None:
        _file_hook(str(path))
