"""CSRF protection for the UI's POST forms: a per-browser random token in a SameSite=Strict cookie that every form
echoes in a hidden field (double submit), compared in constant time; a cross-site Origin is refused as well."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

COOKIE = "rdbridge_csrf"
FIELD = "csrf_token"


def token_for(request: Request) -> tuple[str, bool]:
    """The browser's token, and whether it is new (then the response must set the cookie)."""
    tok = request.cookies.get(COOKIE)
    if tok and len(tok) == 43:
        return tok, False
    return secrets.token_urlsafe(32), True


def check(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(COOKIE) or ""
    if not cookie or not submitted or not hmac.compare_digest(cookie.encode(), submitted.encode()):
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if origin.split("://", 1)[-1] != host:
            return False
    return True
