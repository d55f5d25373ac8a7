"""Cheap change detection for incremental ingest: a loop whose trace files did not change is not re-read."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from rdbridge.contracts.trace import LoopSnapshot, TraceEntryInfo


def entries_fingerprint(entries: Iterable[TraceEntryInfo]) -> str:
    """Digest of (path, size, mtime) of every pickle of a loop: stat-only, so an unchanged loop costs no unpickling."""
    h = hashlib.sha256(b"v1")
    for e in sorted(entries, key=lambda e: e.relpath):
        h.update(f"\n{e.relpath}\x00{e.size_bytes}\x00{e.mtime_ns}".encode())
    return h.hexdigest()[:32]


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
