"""`rdbridge serve`: run the API under uvicorn, on loopback unless another host is asked for."""

from __future__ import annotations

import ipaddress
import logging
import os

import uvicorn

from rdbridge.api.settings import TOKEN_ENV
from rdbridge.config import DB_ENV

log = logging.getLogger("rdbridge.api")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(*, host: str, port: int, db_url: str, token: str | None, workers: int = 1,
          log_level: str = "warning") -> None:
    """Serve until interrupted. Workers read their settings from the environment set here."""
    if not is_loopback(host) and not token:
        log.warning("serving on %s without a token: anyone who can reach this host can read the registry "
                    "(set %s)", host, TOKEN_ENV)
    os.environ[DB_ENV] = db_url
    if token:
        os.environ[TOKEN_ENV] = token
    else:
        os.environ.pop(TOKEN_ENV, None)
    uvicorn.run("rdbridge.api.app:create_app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=False, proxy_headers=False, server_header=False)
