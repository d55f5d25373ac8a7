"""Pulling one API list completely: pages by opaque cursor, `updated_since` from the stored watermark, and the
first page's ETag so an unchanged list costs one 304. Items are validated against their contract."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, ValidationError

from rdbridge.consumer.client import ApiClient

OVERLAP = timedelta(seconds=120)
"""Re-ask for rows updated shortly before the watermark: a transaction that committed late is not missed (rows
seen twice are recognised as unchanged by their content hash)."""


@dataclass(frozen=True)
class Resource:
    name: str
    path: str
    model: type[BaseModel]
    list_key: str = "items"
    """Key of the list in a non-paged document (e.g. `factors` in Alpha158Meta)."""
    incremental: bool = True


@dataclass
class Pulled:
    resource: Resource
    items: list[BaseModel] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)
    not_modified: bool = False
    etag_url: str | None = None
    etag: str | None = None
    watermark: datetime | None = None


def _aware(ts: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; every stored one is UTC."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _iso(ts: datetime) -> str:
    return _aware(ts).astimezone(UTC).isoformat().replace("+00:00", "Z")


def pull(api: ApiClient, res: Resource, *, watermark: datetime | None, etag_url: str | None, etag: str | None,
         page_size: int, on_page: Callable[[int], None] | None = None) -> Pulled:
    """Every item of `res` updated since `watermark` (all of them when None)."""
    watermark = _aware(watermark) if watermark is not None else None
    out = Pulled(resource=res, watermark=watermark)
    params: dict[str, Any] = {"limit": page_size}
    if res.incremental and watermark is not None:
        params["updated_since"] = _iso(watermark - OVERLAP)
    first_url = f"{res.path}?{urlencode(sorted(params.items()))}"
    cursor: str | None = None
    first = True
    while True:
        page_params = dict(params, cursor=cursor) if cursor else params
        body, got_etag, not_modified = api.get_json(res.path, page_params,
                                                    etag=etag if first and etag_url == first_url else None)
        if first:
            out.etag_url, out.etag = first_url, got_etag
            if not_modified:
                out.not_modified, out.etag = True, etag
                return out
        first = False
        if isinstance(body, dict) and "items" in body:
            raw, cursor = body["items"], body.get("next_cursor")
        elif isinstance(body, dict) and res.list_key in body:
            raw, cursor = body[res.list_key], None
        elif isinstance(body, list):
            raw, cursor = body, None
        else:
            raise ValueError(f"{res.path}: expected a page with `items`, got {type(body).__name__}")
        for item in raw:
            try:
                parsed = res.model.model_validate(item)
            except ValidationError as exc:
                key = str(item.get("id") or item.get("name") or item.get("experiment_id") or "?") \
                    if isinstance(item, dict) else "?"
                out.invalid.append((key, f"{res.path}: does not match {res.model.__name__}: {exc.errors()[:3]}"))
                continue
            out.items.append(parsed)
            ts = getattr(parsed, "updated_at_utc", None)
            if isinstance(ts, datetime):
                ts = _aware(ts)
                if out.watermark is None or ts > out.watermark:
                    out.watermark = ts
        if on_page:
            on_page(len(raw))
        if not cursor:
            return out
