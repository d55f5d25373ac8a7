"""Real processes and sockets for the platform tests: `rdbridge serve` / `rdbridge ui` as subprocesses on random
loopback ports, and a small loopback HTTP proxy that can slow, fail or tamper with the API's answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], url: str, log: Path) -> None:
        self.url = url
        self.log = log
        self._fh = log.open("wb")
        self.popen = subprocess.Popen([sys.executable, "-m", "rdbridge.cli", *args], env=env, stdout=self._fh,
                                      stderr=subprocess.STDOUT)

    def wait_ready(self, path: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"server exited with {self.popen.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"server not ready after {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._fh.close()


def start_serve(home: Path, db_url: str, token: str | None, workers: int = 1) -> Proc:
    port = free_port()
    env = dict(os.environ, RDBRIDGE_HOME=str(home))
    env.pop("RDBRIDGE_API_TOKEN", None)
    if token:
        env["RDBRIDGE_API_TOKEN"] = token
    proc = Proc(["serve", "--host", "127.0.0.1", "--port", str(port), "--db", db_url, "--workers", str(workers)], env,
                f"http://127.0.0.1:{port}", home / f"serve-{port}.log")
    proc.wait_ready("/health")
    return proc


def start_ui(home: Path, db_url: str) -> Proc:
    port = free_port()
    env = dict(os.environ, RDBRIDGE_HOME=str(home))
    proc = Proc(["ui", "--host", "127.0.0.1", "--port", str(port), "--db", db_url], env,
                f"http://127.0.0.1:{port}", home / f"ui-{port}.log")
    proc.wait_ready("/factors")
    return proc


Tamper = Callable[[str, bytes], bytes]


class Proxy:
    """Forwards GETs to `upstream`; can answer 503 to the first N requests, delay file downloads, or rewrite the
    body of a download (the API's headers, including its sha256-bearing listings, pass unchanged)."""

    def __init__(self, upstream: str, *, fail_first: int = 0, file_delay: float = 0.0,
                 tamper: Tamper | None = None) -> None:
        self.upstream = upstream
        self.fail_first = fail_first
        self.file_delay = file_delay
        self.tamper = tamper
        self.requests: list[str] = []
        self.files_served = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with proxy._lock:
                    proxy.requests.append(self.path)
                    n = len(proxy.requests)
                if n <= proxy.fail_first:
                    body = b'{"error": {"code": "unavailable", "message": "proxy says try later"}}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                is_file = self.path.startswith("/files/")
                if is_file and proxy.file_delay:
                    time.sleep(proxy.file_delay)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("authorization", "if-none-match", "accept")}
                r = httpx.get(proxy.upstream + self.path, headers=headers, timeout=30)
                body = r.content
                if is_file and proxy.tamper is not None and r.status_code == 200:
                    body = proxy.tamper(self.path, body)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() in ("content-type", "etag"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if is_file:
                    with proxy._lock:
                        proxy.files_served += 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
