"""`rdbridge serve`: the Typer command (thin: parse, call `serve`)."""

from __future__ import annotations

import os

import typer

from rdbridge.api.settings import TOKEN_ENV
from rdbridge.config import default_db_url


def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535),
    db: str | None = typer.Option(None, "--db", help="Registry URL (default: $RDBRIDGE_DB or the home registry)."),
    token: str | None = typer.Option(None, "--token", help=f"Bearer token required on every route but /health "
                                     f"(default: ${TOKEN_ENV})."),
    workers: int = typer.Option(1, "--workers", min=1, help="uvicorn worker processes."),
) -> None:
    """Serve the read-only Results API (FastAPI + uvicorn)."""
    from rdbridge.api.server import is_loopback, serve

    token = token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and not token:
        typer.echo(f"warning: serving on {host} without a token; set --token or ${TOKEN_ENV}", err=True)
    typer.echo(f"rdbridge API on http://{host}:{port}/ (read-only{', token required' if token else ''})", err=True)
    serve(host=host, port=port, db_url=db or default_db_url(), token=token, workers=workers)
