"""Opening files of a trace or workspace without hanging, following a swapped link, or reading without bound.

Why: a FIFO or device file in a workspace blocks `open`/`read` forever (or, for `/dev/zero`, until memory runs out),
and an `lstat` followed by a plain `open` follows a link swapped in between. So every file is opened here only as a
regular file: `lstat`, then (for a link) its resolved target must lie inside a trusted root, then
`open(O_NOFOLLOW | O_NONBLOCK)`, then `fstat` on the descriptor must show a regular file - the same one that was
checked (device and inode) - and the size cap is applied to what `fstat` reports, and again while reading.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from rdbridge.rdagent_trace.errors import TooLargeError, UnreadableFileError

__all__ = ["DEFAULT_MAX_PICKLE_BYTES", "MAX_PICKLE_ENV", "default_max_pickle_bytes", "inside", "open_regular",
           "read_regular", "sha256_regular"]

MAX_PICKLE_ENV = "RDBRIDGE_MAX_PICKLE_BYTES"
DEFAULT_MAX_PICKLE_BYTES = 256 << 20  # RD-Agent's largest trace pickles (runner results) are a few MB
_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 20


def default_max_pickle_bytes() -> int:
    """The trace-pickle size cap: env RDBRIDGE_MAX_PICKLE_BYTES when set to a positive integer, else 256 MiB."""
    raw = os.environ.get(MAX_PICKLE_ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return DEFAULT_MAX_PICKLE_BYTES


def inside(path: Path, root: Path) -> bool:
    """Whether `path` (already resolved) is `root` or below it (`root` resolved too)."""
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def open_regular(path: Path, trusted_roots: Iterable[Path] = ()) -> tuple[int, os.stat_result]:
    """(descriptor, fstat) of `path` if it is a regular file; a link only when its target is inside a trusted root.

    Raises `UnreadableFileError` naming `path` for anything else (FIFO, device, socket, folder, link out of the
    trusted roots, dangling link, a file swapped between the check and the open).
    """
    path = Path(path)
    try:
        lst = os.lstat(path)
    except OSError as e:
        raise UnreadableFileError(path, f"cannot read: {e.strerror or e}") from None
    target = path
    if stat.S_ISLNK(lst.st_mode):
        resolved = Path(os.path.realpath(path))
        roots = [Path(os.path.realpath(r)) for r in trusted_roots]
        if not any(inside(resolved, r) for r in roots):
            raise UnreadableFileError(path, "symbolic link pointing outside the trusted folders (the workspace or "
                                            "log root, or a --data-root); not read")
        try:
            lst = os.lstat(resolved)
        except OSError as e:
            raise UnreadableFileError(path, f"cannot read the link target: {e.strerror or e}") from None
        target = resolved
    if not stat.S_ISREG(lst.st_mode):
        raise UnreadableFileError(path, f"not a regular file ({_kind(lst.st_mode)}); not read")
    try:
        fd = os.open(target, _FLAGS)
    except OSError as e:
        raise UnreadableFileError(path, f"cannot open: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (lst.st_dev, lst.st_ino):
            raise UnreadableFileError(path, "file was replaced while being opened; not read")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_regular(path: Path, max_bytes: int, trusted_roots: Iterable[Path] = ()) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (`TooLargeError` above it, checked before and while reading)."""
    fd, st = open_regular(path, trusted_roots)
    try:
        if st.st_size > max_bytes:
            raise TooLargeError(path, f"file is {st.st_size} bytes, above the cap of {max_bytes} bytes "
                                      "(--max-pickle-bytes / RDBRIDGE_MAX_PICKLE_BYTES); not read")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise TooLargeError(path, f"file grew above the cap of {max_bytes} bytes while being read")
        return b"".join(chunks)
    except OSError as e:
        raise UnreadableFileError(path, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)


def sha256_regular(path: Path, trusted_roots: Iterable[Path] = ()) -> tuple[str, os.stat_result]:
    """(sha256 hex, fstat) of a regular file, streamed; raises like `open_regular`."""
    fd, st = open_regular(path, trusted_roots)
    h = hashlib.sha256()
    try:
        while chunk := os.read(fd, _CHUNK):
            h.update(chunk)
    except OSError as e:
        raise UnreadableFileError(path, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    return h.hexdigest(), st


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"
