"""The gate in front of every route: GET/HEAD only (405; HEAD runs the GET route and drops the body), and the bearer token when one is configured (401).

A plain ASGI middleware (no per-request task or body buffering) so the check costs microseconds. The token is
compared in constant time; `/health` stays open so a load balancer can probe without the secret.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

READ_METHODS = frozenset({"GET", "HEAD"})
OPEN_PATHS = frozenset({"/health"})


def _error(status: int, code: str, message: str, extra: list[tuple[bytes, bytes]]) -> tuple[dict, dict]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    return ({"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body})


def _without_body(send: Send) -> Send:
    """HEAD is answered as GET with the body dropped (headers, Content-Length and ETag kept)."""

    async def wrapped(message: dict) -> None:  # type: ignore[type-arg]
        if message["type"] == "http.response.body":
            message = {"type": "http.response.body", "body": b"", "more_body": False}
            if getattr(wrapped, "done", False):
                return
            wrapped.done = True  # type: ignore[attr-defined]
        await send(message)

    return wrapped


class ReadOnlyGuard:
    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode("utf-8") if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in READ_METHODS:
            start, body = _error(405, "method_not_allowed", "this API is read-only: use GET or HEAD",
                                 [(b"allow", b"GET, HEAD")])
        elif "\0" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # no registry text holds NUL, and PostgreSQL refuses it in a parameter: say so instead of a 500
            start, body = _error(400, "bad_request", "NUL characters are not allowed in the URL", [])
        elif self.expected is not None and scope["path"] not in OPEN_PATHS and not self._authorized(scope):
            start, body = _error(401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer ...)",
                                 [(b"www-authenticate", b'Bearer realm="rdbridge"')])
        elif scope["method"] == "HEAD":
            await self.app(dict(scope, method="GET"), receive, _without_body(send))
            return
        else:
            await self.app(scope, receive, send)
            return
        await send(start)
        await send(body)

    def _authorized(self, scope: Scope) -> bool:
        assert self.expected is not None
        got = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                got = value
                break
        return hmac.compare_digest(got, self.expected)
