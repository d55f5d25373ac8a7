"""The `rdbridge` command line: thin Typer shells over library functions."""

from __future__ import annotations

import json

import typer

from rdbridge import __version__

app = typer.Typer(no_args_is_help=True, add_completion=False, help="rdbridge: RD-Agent results to the trading platform.")


@app.callback()
def main() -> None:
    """rdbridge: RD-Agent results to the trading platform."""


@app.command()
def version(as_json: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """Print the rdbridge version."""
    if as_json:
        typer.echo(json.dumps({"version": __version__}))
    else:
        typer.echo(f"rdbridge {__version__}")


if __name__ == "__main__":
    app()
