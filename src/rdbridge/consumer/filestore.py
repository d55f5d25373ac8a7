"""The platform's local file store: artifact bytes addressed by their sha256, written atomically, verified.

A file enters the store only when the bytes received hash to the sha256 the API announced; anything else is
refused and never becomes visible. Because names are content hashes, a killed sync leaves only complete verified
files (and stray temp files, swept on the next run), and the next sync reuses them instead of downloading again.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import IO

_SHA = re.compile(r"^[0-9a-f]{64}$")


class ChecksumMismatch(ValueError):
    """The bytes received do not hash to the announced sha256."""


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        """Where the file with this sha256 lives (the hash is checked, so it can never name another path)."""
        if not _SHA.match(sha256 or ""):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / "sha256" / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def sweep_temp(self) -> int:
        """Remove temp files a killed sync left behind; returns how many."""
        n = 0
        for p in (self.root / "tmp").glob("dl-*"):
            p.unlink(missing_ok=True)
            n += 1
        return n

    def writer(self, sha256: str) -> _Writer:
        return _Writer(self, sha256)


class _Writer:
    """Receives chunks (None = start again), then `commit()` verifies and renames into place, or `discard()`."""

    def __init__(self, store: FileStore, sha256: str) -> None:
        self.store = store
        self.expected = sha256
        self.target = store.path_for(sha256)
        fd, name = tempfile.mkstemp(prefix="dl-", dir=store.root / "tmp")
        self._tmp = Path(name)
        self._fh: IO[bytes] = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def __call__(self, chunk: bytes | None) -> None:
        if chunk is None:
            self._fh.seek(0)
            self._fh.truncate()
            self._hash = hashlib.sha256()
            self.size = 0
            return
        self._fh.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def commit(self) -> Path:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        got = self._hash.hexdigest()
        if got != self.expected:
            self._tmp.unlink(missing_ok=True)
            raise ChecksumMismatch(f"sha256 {got} of the {self.size} bytes received, the API announced {self.expected}")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, self.target)
        dir_fd = os.open(self.target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return self.target

    def discard(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)
