"""Serving a registered artifact file, and nothing else.

The client names a file id only. The bytes are served when the registry lists that file, its relative path is
clean (no absolute path, no `..`, no backslash, no NUL), the real path (all symlinks resolved) lies inside a
known root - the artifact store for `store` artifacts, the workspace folder (itself inside its task run's registered
workspace root) for `workspace` ones - it is a regular file, and its size and sha256 still match the registry. The
file is opened once (O_NOFOLLOW on the resolved path) and checked and served through that descriptor, so a file
swapped after the check is not what gets served. Error messages never contain server paths.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from rdbridge.api.errors import ApiError

IN_MEMORY_MAX = 16 * 1024 * 1024
"""Files up to this size are read once (hash + body); larger ones are hashed, then streamed from the same fd."""
_CHUNK = 1024 * 1024
_verified: dict[tuple[int, int, int, int, int], str] = {}
_verified_lock = threading.Lock()


@dataclass
class OpenedFile:
    fd: int
    size: int
    sha256: str
    mime_type: str
    filename: str
    body: bytes | None
    """The whole content when it was small enough to keep after hashing."""

    def chunks(self) -> Iterator[bytes]:
        try:
            offset = 0
            while offset < self.size:
                block = os.pread(self.fd, min(_CHUNK, self.size - offset), offset)
                if not block:
                    break
                offset += len(block)
                yield block
        finally:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def is_clean_relpath(path: str) -> bool:
    """A relative POSIX path that can only point below its root: no `/` start, `..`, `.`, empty part, `\\`, NUL
    or drive-like first part."""
    return not (not path or "\0" in path or "\\" in path or path.startswith("/")
                or any(part in ("", ".", "..") for part in path.split("/")) or ":" in path.split("/", 1)[0])


def clean_relpath(path: str) -> PurePosixPath:
    """The registered relative path, or ApiError when it could point anywhere but below its root."""
    if not is_clean_relpath(path):
        raise ApiError(403, "forbidden", "this file's registered path is not servable")
    return PurePosixPath(path)


def _inside(child: Path, root: Path) -> bool:
    return child == root or child.is_relative_to(root)


def artifact_root_of(meta: dict[str, Any], store_root: Path) -> Path:
    """The real (symlink-free) root a file of this artifact must stay under."""
    if meta["root_kind"] == "store":
        return Path(os.path.realpath(store_root))
    if meta["root_kind"] == "workspace" and meta["workspace_path"] and meta["workspace_root"]:
        ws = Path(os.path.realpath(meta["workspace_path"]))
        if _inside(ws, Path(os.path.realpath(meta["workspace_root"]))):
            return ws
    raise ApiError(403, "forbidden", "this file's artifact has no servable root")


def _sha256_fd(fd: int, size: int, keep: bool) -> tuple[str, bytes | None]:
    h = hashlib.sha256()
    parts: list[bytes] = []
    offset = 0
    while offset < size:
        block = os.pread(fd, min(_CHUNK, size - offset), offset)
        if not block:
            break
        offset += len(block)
        h.update(block)
        if keep:
            parts.append(block)
    return h.hexdigest(), (b"".join(parts) if keep else None)


def open_registered(file_id: int, meta: dict[str, Any], store_root: Path) -> OpenedFile:
    """Open and check one registered file (see the module docstring); the caller serves and closes it."""
    if meta["status"] != "present":
        raise ApiError(404, "not_found", "this file's artifact is missing")
    rel = clean_relpath(meta["path"])
    root = artifact_root_of(meta, store_root)
    real = Path(os.path.realpath(root.joinpath(*rel.parts)))
    if not _inside(real, root) or real == root:
        raise ApiError(403, "forbidden", "this file resolves outside its artifact's root")
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ApiError(404, "not_found", "this file is registered but no longer on disk") from None
    except OSError:
        raise ApiError(403, "forbidden", "this file cannot be opened") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ApiError(403, "forbidden", "this file is not a regular file")
        if meta["size_bytes"] is not None and st.st_size != meta["size_bytes"]:
            raise ApiError(409, "file_changed", "this file's size differs from the registered size")
        expected = meta["sha256"]
        if not expected:
            raise ApiError(409, "file_unverifiable", "this file has no registered sha256")
        key = (file_id, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        small = st.st_size <= IN_MEMORY_MAX
        with _verified_lock:
            known = _verified.get(key)
        body = None
        if known is None or small:
            digest, body = _sha256_fd(fd, st.st_size, keep=small)
            if digest != expected:
                raise ApiError(409, "file_changed", "this file's sha256 differs from the registered hash")
            with _verified_lock:
                _verified[key] = digest
        return OpenedFile(fd=fd, size=st.st_size, sha256=expected,
                          mime_type=meta["mime_type"] or "application/octet-stream",
                          filename=rel.name, body=body)
    except BaseException:
        os.close(fd)
        raise
