"""Encoded JSON answers kept per (path, normalized query) and registry change stamp: a repeat costs a dict lookup.

Clients that sync ask the same pages over and over; the registry changes rarely in comparison. A plain ASGI
middleware in front of FastAPI: on a hit it answers from the stored bytes (and its gzip, made once) without routing,
validation, a query or serialization; on a miss the route runs as usual and a 200 JSON answer is stored under the
stamp read before the route ran, only if the stamp read after it is the same (a write during the route is never
cached under the older stamp). Any change of the stamp drops every entry, so an answer is never staler than the
registry. ETag / If-None-Match and gzip above `GZIP_MIN_BYTES` are handled here for cached paths.
"""

from __future__ import annotations

import gzip
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rdbridge.api.stamp import Stamp

GZIP_MIN_BYTES = 4096
"""Smaller bodies go out as they are: compressing them costs more than it saves on loopback or LAN."""
UNCACHED_PREFIXES = ("/files/", "/factor_package/bundle", "/factor_package/source/")
"""Routes that read a stored file on every request and check it against its registered sha256 (downloads, a
snapshot's source text): a file altered on disk changes no registry stamp, so their answers are never kept."""
MAX_ENTRY_BYTES = 8 * 1024 * 1024
_STRIP = (b"accept-encoding", b"if-none-match")


@dataclass
class Entry:
    body: bytes
    etag: bytes
    headers: list[tuple[bytes, bytes]]
    """The route's headers except the ones this layer sets (length, encoding, vary)."""
    gz: bytes | None = None


def cache_key(scope: Scope) -> str:
    """Path and the query with its parameters sorted (the same parameters in any order are the same answer)."""
    qs = scope.get("query_string", b"").decode("latin-1")
    if qs:
        qs = urlencode(sorted(parse_qsl(qs, keep_blank_values=True)))
    return f"{scope['path']}?{qs}"


def _header(scope: Scope, name: bytes) -> bytes:
    for k, v in scope["headers"]:
        if k == name:
            return v
    return b""


def _matches(inm: bytes, etag: bytes) -> bool:
    tags = {t.strip().removeprefix(b"W/") for t in inm.split(b",")}
    return etag in tags or b"*" in tags


class ResponseCache:
    """LRU of encoded answers, at most `max_bytes` of bodies, valid for one registry stamp."""

    def __init__(self, app: ASGIApp, stamp: Stamp | None, *, threaded_stamp: bool = False,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
        self.app = app
        self.stamp = stamp if max_bytes > 0 else None
        self.threaded = threaded_stamp
        self.max_bytes = max_bytes
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.size = 0
        self.seen: str | None = None

    async def _read_stamp(self) -> str | None:
        assert self.stamp is not None
        if self.threaded:
            return await anyio.to_thread.run_sync(self.stamp)
        return self.stamp()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.stamp is None or scope["type"] != "http" or scope["method"] != "GET"
                or scope["path"].startswith(UNCACHED_PREFIXES)):
            await self.app(scope, receive, send)
            return
        before = await self._read_stamp()
        if before is None:
            await self.app(scope, receive, send)
            return
        if before != self.seen:
            self.entries.clear()
            self.size, self.seen = 0, before
        key = cache_key(scope)
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
            await self._answer(scope, send, entry)
            return
        inner = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k not in _STRIP])
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(inner, receive, capture)
        entry = self._entry(messages)
        if entry is None:
            for m in messages:
                await send(m)
            return
        if await self._read_stamp() == before and self.seen == before:
            self._store(key, entry)
        await self._answer(scope, send, entry)

    @staticmethod
    def _entry(messages: list[Message]) -> Entry | None:
        """The answer as an Entry when it is a complete 200 JSON answer with an ETag, else None."""
        if not messages or messages[0]["type"] != "http.response.start" or messages[0]["status"] != 200:
            return None
        headers = [(k.lower(), v) for k, v in messages[0].get("headers", [])]
        etag = next((v for k, v in headers if k == b"etag"), None)
        ctype = next((v for k, v in headers if k == b"content-type"), b"")
        if etag is None or not ctype.startswith(b"application/json"):
            return None
        body = b"".join(m.get("body", b"") for m in messages[1:] if m["type"] == "http.response.body")
        if len(body) > MAX_ENTRY_BYTES:
            return None
        keep = [(k, v) for k, v in headers if k not in (b"content-length", b"content-encoding", b"vary")]
        return Entry(body=body, etag=etag, headers=keep)

    def _store(self, key: str, entry: Entry) -> None:
        old = self.entries.pop(key, None)
        if old is not None:
            self.size -= len(old.body)
        self.entries[key] = entry
        self.size += len(entry.body)
        while self.size > self.max_bytes and self.entries:
            _, dropped = self.entries.popitem(last=False)
            self.size -= len(dropped.body)

    async def _answer(self, scope: Scope, send: Send, entry: Entry) -> None:
        big = len(entry.body) >= GZIP_MIN_BYTES
        vary = [(b"vary", b"Accept-Encoding")] if big else []
        inm = _header(scope, b"if-none-match")
        if inm and _matches(inm, entry.etag):
            headers = [(k, v) for k, v in entry.headers if k in (b"etag", b"cache-control")] + vary
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = entry.body
        extra = list(vary)
        if big and b"gzip" in _header(scope, b"accept-encoding").lower():
            if entry.gz is None:
                entry.gz = gzip.compress(entry.body, compresslevel=5, mtime=0)
            body = entry.gz
            extra.append((b"content-encoding", b"gzip"))
        headers = [*entry.headers, (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
