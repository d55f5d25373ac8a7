"""`rdbridge catalog export|schema`: thin Typer shells over `catalog.export`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from rdbridge.config import default_db_url

catalog_app = typer.Typer(no_args_is_help=True, add_completion=False)


@catalog_app.command("export")
def export_command(
    out: Path = typer.Option(..., "--out", help="Folder for the five catalog files (written atomically)."),
    db: str | None = typer.Option(None, "--db", help="Registry URL (default: $RDBRIDGE_DB or the home registry)."),
) -> None:
    """Write factor/strategy/loop/model catalogs and the Alpha158 metadata as JSON files."""
    from rdbridge.catalog.export import export_catalogs
    from rdbridge.registry import make_engine

    engine = make_engine(db or default_db_url())
    try:
        counts = export_catalogs(engine, out)
    finally:
        engine.dispose()
    for name, n in counts.items():
        typer.echo(f"{out / name}: {n} entries")


@catalog_app.command("schema")
def schema_command(
    name: str | None = typer.Option(None, "--name", help="One file's schema (e.g. factor_catalog.json)."),
) -> None:
    """Print the JSON Schemas of the catalog files (one document: file name -> schema)."""
    from rdbridge.catalog.export import catalog_schemas

    schemas = catalog_schemas()
    if name is not None:
        if name not in schemas:
            typer.echo(f"error: unknown catalog {name!r}; one of {', '.join(schemas)}", err=True)
            raise typer.Exit(2)
        schemas = {name: schemas[name]}
    sys.stdout.write(json.dumps(schemas, indent=1) + "\n")
