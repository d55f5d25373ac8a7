"""`rdbridge serve`: run the API under uvicorn, on loopback unless another host is asked for.

With several workers uvicorn starts them with multiprocessing's spawn, which re-imports the parent's main module in
every worker. The CLI's main module loads every layer (the factor engine included), so a worker took long enough to
start on a busy machine that uvicorn's health check killed and restarted it forever. `serve` therefore re-executes
itself as this small module (`python -m rdbridge.api.server`) before starting workers.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from rdbridge.api.settings import TOKEN_ENV
from rdbridge.config import DB_ENV

log = logging.getLogger("rdbridge.api")
HEALTHCHECK_SECONDS = 60
"""How long uvicorn waits for a worker's heartbeat before restarting it (its default, 5 s, is too short on a
loaded 2-core machine)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run(host: str, port: int, workers: int, log_level: str) -> None:
    import uvicorn

    uvicorn.run("rdbridge.api.app:create_app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=False, proxy_headers=False, server_header=False,
                timeout_worker_healthcheck=HEALTHCHECK_SECONDS)


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
    if workers > 1 and sys.modules.get("__main__") is not sys.modules.get(__name__):
        argv = [sys.executable, "-m", "rdbridge.api.server", "--host", host, "--port", str(port),
                "--workers", str(workers), "--log-level", log_level]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)
    _run(host, port, workers, log_level)


def main() -> None:
    """Entry point of the re-executed server (settings already in the environment)."""
    ap = argparse.ArgumentParser(prog="python -m rdbridge.api.server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--log-level", default="warning")
    a = ap.parse_args()
    _run(a.host, a.port, a.workers, a.log_level)


if __name__ == "__main__":
    main()
