"""Keyset pagination and list filters shared by every list: opaque cursors, a stable order, no OFFSET.

A cursor is the sort key of the last item served, tagged with the list it belongs to, base64url-encoded JSON. The
next page starts strictly after that key, so rows that exist when a walk starts are served exactly once even when
rows are added between pages (OFFSET would shift and repeat or skip them).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


class CursorError(ValueError):
    """The cursor was not issued by this list (or was altered)."""


def encode_cursor(scope: str, key: list[Any]) -> str:
    """An opaque token for `key` (a list of JSON scalars) in the list named `scope`."""
    raw = json.dumps([scope, *key], separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(scope: str, token: str, types: tuple[type, ...]) -> list[Any]:
    """The key inside `token`; each part must have the matching type in `types`, else CursorError."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise CursorError("cursor is not a token this API issued") from exc
    if not isinstance(doc, list) or len(doc) != len(types) + 1 or doc[0] != scope:
        raise CursorError(f"cursor does not belong to this list ({scope})")
    key = doc[1:]
    for part, kind in zip(key, types, strict=True):
        if not isinstance(part, kind) or isinstance(part, bool):
            raise CursorError("cursor is not a token this API issued")
    return key


@dataclass(frozen=True)
class PageRequest:
    """`limit` items starting after the cursor key (`after`; None: from the start)."""

    limit: int = DEFAULT_LIMIT
    after: list[Any] | None = None


@dataclass(frozen=True)
class Filters:
    """Every list filter; a list ignores the ones that do not apply to it (documented per route)."""

    source: str | None = None
    tag: str | None = None
    action: str | None = None
    status: str | None = None
    has_result: bool | None = None
    materialization_status: str | None = None
    task_run_id: str | None = None
    kind: str | None = None
    q: str | None = None
    updated_since: datetime | None = None


def text_match(q: str, *columns: Any) -> ColumnElement[bool]:
    """Case-insensitive substring match of `q` in any of `columns` (% and _ in q are literal)."""
    from sqlalchemy import or_

    return or_(*(c.icontains(q, autoescape=True) for c in columns))
