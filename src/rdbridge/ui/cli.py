"""`rdbridge ui`: serve the platform pages with uvicorn (loopback by default)."""

from __future__ import annotations

from rich.console import Console

from rdbridge.consumer.db import default_platform_db_url

err = Console(stderr=True)


def run_ui_command(db: str | None, host: str, port: int) -> None:
    import uvicorn

    from rdbridge.ui.app import create_app

    url = db or default_platform_db_url()
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/yellow] the UI listens on {host}: anyone who can reach it can tag and mark")
    err.print(f"platform UI on http://{host}:{port}/factors", highlight=False)
    uvicorn.run(create_app(url), host=host, port=port, log_level="warning")
