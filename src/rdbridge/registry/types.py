"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has no timestamp type and PostgreSQL returns times in the session's time zone; `UtcDateTime` makes both hand
back timezone-aware UTC datetimes and makes SQLite store fixed-width ISO-8601 text (`2024-05-01T08:30:00.000000Z`),
which sorts correctly as text so lease-expiry comparisons work in SQL. `JsonDoc` is JSON, stored as JSONB on PG.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

_SQLITE_UTC = sqlite.DATETIME(
    storage_format="%(year)04d-%(month)02d-%(day)02dT%(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06dZ",
    regexp=r"(\d+)-(\d+)-(\d+)[T ](\d+):(\d+):(\d+)(?:\.(\d+))?",
)


class NaiveDatetimeError(ValueError):
    """A datetime without tzinfo reached the registry: its meaning (local? UTC?) would be guessed, so refuse it."""


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLITE_UTC)
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime for a *_utc column, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(
                f"naive datetime {value.isoformat()} given for a *_utc column; attach a time zone "
                "(e.g. value.replace(tzinfo=timezone.utc) if it is UTC) or use rdbridge.registry.utcnow()"
            )
        utc = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    """Now, timezone-aware UTC: the only clock the registry uses."""
    return datetime.now(timezone.utc)


JsonDoc: TypeEngine[Any] = JSON().with_variant(postgresql.JSONB(), "postgresql")
"""A JSON document column (JSONB on PostgreSQL so the API can index into it later)."""
