"""JSON answers with a strong ETag (a hash of the body) and Cache-Control; If-None-Match -> 304.

Clients that sync re-ask often: a 304 costs the query but no body transfer or parsing on their side.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request, Response
from pydantic import TypeAdapter

CACHE_CONTROL = "no-cache"
"""Clients may store answers but must revalidate (cheap with ETag): the registry changes under them."""
_adapters: dict[Any, TypeAdapter[Any]] = {}


def etag_for(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def not_modified(request: Request, etag: str) -> bool:
    """True when the client's If-None-Match already names `etag` (or `*`)."""
    inm = request.headers.get("if-none-match")
    if not inm:
        return False
    tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
    return etag in tags or "*" in tags


def json_response(request: Request, doc: Any, model: Any = None) -> Response:
    """Serialize `doc` (a pydantic model, or data of type `model`) and answer 200 or 304."""
    if model is None:
        body = doc.model_dump_json().encode("utf-8")
    else:
        adapter = _adapters.get(model)
        if adapter is None:
            adapter = _adapters[model] = TypeAdapter(model)
        body = adapter.dump_json(doc)
    etag = etag_for(body)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
