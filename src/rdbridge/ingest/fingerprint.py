"""Cheap change detection for incremental ingest: a loop whose trace files did not change is not re-read."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from rdbridge.contracts.trace import LoopSnapshot


class StatFacts(Protocol):
    """What the fingerprint needs of a trace file: a walker `TraceEntry` or a contract `TraceEntryInfo`."""

    @property
    def relpath(self) -> str: ...

    @property
    def size_bytes(self) -> int: ...

    @property
    def mtime_ns(self) -> int: ...


def entries_fingerprint(entries: Iterable[StatFacts]) -> str:
    """Digest of (path, size, mtime) of every pickle of a loop: stat-only, so an unchanged loop costs no unpickling.

    Takes the walker's entries as they are (no contract model per file: that was a tenth of a re-ingest).
    """
    h = hashlib.sha256(b"v1")
    for e in sorted(entries, key=lambda e: e.relpath):
        h.update(f"\n{e.relpath}\x00{e.size_bytes}\x00{e.mtime_ns}".encode())
    return h.hexdigest()[:32]


def workspace_state(workspace_root: Path, workspace_ids: Iterable[str]) -> str:
    """(relpath, type, size, mtime) of every entry of the loop's workspace folders, by lstat only (never opened).

    Why: a workspace can change after the last trace file (a backtest writes qlib_res.csv, a user re-copies the
    folder); with its state in the fingerprint the loop is re-read instead of keeping stale facts forever.
    """
    h = hashlib.sha256(b"ws1")
    root = os.fspath(workspace_root)
    for wid in sorted(set(workspace_ids)):
        top = os.path.join(root, wid)
        h.update(f"\n#{wid}".encode())
        try:
            st = os.lstat(top)
        except OSError:
            h.update(b"\x00missing")
            continue
        h.update(f"\x00{st.st_mode}\x00{st.st_mtime_ns}".encode())
        stack = [top]
        while stack:
            d = stack.pop()
            try:
                with os.scandir(d) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                try:
                    s = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                h.update(f"\n{e.path[len(top):]}\x00{s.st_mode}\x00{s.st_size}\x00{s.st_mtime_ns}".encode())
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    return h.hexdigest()[:16]


def with_workspaces(entries_fp: str, workspace_root: Path, workspace_ids: Iterable[str]) -> str:
    """The change-detection part of a loop's fingerprint: its trace files and its workspaces' state."""
    return f"{entries_fp}+{workspace_state(workspace_root, workspace_ids)}"


def snapshot_digest(snap: LoopSnapshot) -> str:
    """Digest of what a loop snapshot says (not when it was read): equal digests mean nothing to write."""
    payload = snap.model_dump_json(exclude={"entries"})
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def needs_read(stored: tuple[str | None, bool, str | None] | None, entries_fp: str, *, key_given: bool) -> bool:
    """Whether a loop must be (re-)read: new, changed files, earlier errors, or a key now given for unverified files.

    A key given later turns "unverified" into "verified" (or "tampered"), so that re-reads; running without the key
    after a verified ingest does not downgrade anything, since the files are unchanged.
    """
    if stored is None:
        return True
    fingerprint, had_errors, signature = stored
    if had_errors or entries_part(fingerprint) != entries_fp:
        return True
    return key_given and signature == "unverified"


def combine(entries_fp: str, digest: str) -> str:
    return f"{entries_fp}:{digest}"


def entries_part(fingerprint: str | None) -> str | None:
    return fingerprint.split(":", 1)[0] if fingerprint else None
