"""Atomic file writes, shared by every layer that writes files (artifact store, catalogs, factor package, reports).

A reader (or a process started after a crash) sees the old bytes or the new ones, never a part: temp file in the same
folder, fsync, rename, then fsync of the folder so the rename itself survives a power loss.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, tmp_suffix: str = ".tmp") -> None:
    """Write `data` to `path` atomically (parents created). A temp file a killed writer leaves ends in `tmp_suffix`,
    so the owner of the folder can sweep it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=tmp_suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_many(folder: Path, files: dict[str, bytes], *, tmp_suffix: str = ".tmp") -> None:
    """`write_atomic` for several files of one folder with fewer flushes: every temp file is written and fsynced,
    then all are renamed and the folder is fsynced once. Each target holds its old bytes or its new ones; after the
    return all of them are durable (a later file written with `write_atomic`, e.g. a manifest, can rely on that)."""
    folder.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[str, Path]] = []
    try:
        for name, data in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=tmp_suffix, dir=folder)
            temps.append((tmp, folder / name))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, target in temps:
            os.replace(tmp, target)
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(folder)
