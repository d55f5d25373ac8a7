"""``rdbridge factorlib ...``: thin Typer commands over package, promote and versions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import typer

from rdbridge.config import default_db_url
from rdbridge.factorlib import package as pkg

factorlib_app = typer.Typer(no_args_is_help=True, add_completion=False,
                            help="The shared factor package rd_factors_lib: promote, versions, show, bundle.")

_DB = typer.Option(None, "--db", help="Registry URL (default: $RDBRIDGE_DB or $RDBRIDGE_HOME/registry.sqlite).")
_PKG = typer.Option(None, "--package", help="Package folder (default: $RDBRIDGE_HOME/factor_package, scaffolded).")
_JSON = typer.Option(False, "--json", help="Print one JSON document.")

AFTER_PROMOTION_HOOK: Callable[[str, list[str]], None] | None = None
"""Set by the top-level CLI: `(db_url, experiment_ids)`, called after a promotion filled impl pointers, so the
loops' factor_meta.json is rebuilt (factorlib may not import materialize; see docs/factorlib.md)."""


def _fail(message: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@factorlib_app.command("init")
def init_cmd(path: Path = typer.Argument(..., help="An empty or new folder for the package.")) -> None:
    """Scaffold a fresh rd_factors_lib package (pip install -e PATH to use it)."""
    try:
        out = pkg.init_package(path)
    except pkg.PackageError as exc:
        _fail(str(exc), False)
    typer.echo(f"rd_factors_lib {pkg.read_version(out)} scaffolded at {out}")


@factorlib_app.command("promote")
def promote_cmd(
    package: Path | None = _PKG,
    loop: list[str] = typer.Option([], "--loop", help="Only this loop (EXPERIMENT_ID; repeatable)."),
    factor: list[str] = typer.Option([], "--factor", help="Only this factor name (repeatable)."),
    db: str | None = _DB,
    as_json: bool = _JSON,
) -> None:
    """Promote accepted loops' factors into generated.py (checked in sandboxed subprocesses first)."""
    from rdbridge.factorlib.promote import promote

    try:
        url = db or default_db_url()
        hook = AFTER_PROMOTION_HOOK
        report = promote(url, package, loops=loop or None, factors=factor or None,
                         after_promotion=(lambda ids: hook(url, ids)) if hook is not None else None)
    except (pkg.PackageError, ValueError) as exc:
        _fail(str(exc), as_json)
    if as_json:
        typer.echo(report.model_dump_json())
        raise typer.Exit(0 if report.ok else 1)
    typer.echo(f"rd_factors_lib {report.version_before} -> {report.version_after} ({report.package_path})")
    for f in report.factors:
        where = f" {f.impl_func} @ {f.impl_version}" if f.impl_func else ""
        typer.echo(f"  {f.status:10} {f.experiment_id}  {f.factor_name}{where}{'  ' + f.reason if f.reason else ''}")
    raise typer.Exit(0 if report.ok else 1)


@factorlib_app.command("versions")
def versions_cmd(db: str | None = _DB, as_json: bool = _JSON) -> None:
    """Every version of the package with its snapshot's sha256 and the factors it added or changed."""
    from rdbridge.factorlib.versions import list_versions

    rows = list_versions(db or default_db_url())
    if as_json:
        typer.echo(json.dumps({"ok": True, "versions": [r.model_dump() for r in rows]}))
        return
    for r in rows:
        typer.echo(f"{r.version:10} {r.sha256[:16]}  added: {', '.join(r.added) or '-'}  changed: {', '.join(r.changed) or '-'}")


@factorlib_app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Factor name, as RD-Agent or Qlib wrote it."),
    version: str | None = typer.Option(None, "--version", help="A recorded version (default: the package on disk)."),
    package: Path | None = _PKG,
    db: str | None = _DB,
) -> None:
    """Print the factor's function source at a version."""
    from rdbridge.factorlib.versions import show_source

    try:
        at, src = show_source(db or default_db_url(), name, version, package)
    except pkg.PackageError as exc:
        _fail(str(exc), False)
    typer.echo(f"# rd_factors_lib {at}\n{src}")


@factorlib_app.command("bundle")
def bundle_cmd(
    version: str = typer.Option(..., "--version", help="A recorded version."),
    fmt: str = typer.Option("tar.gz", "--format", help="tar.gz (the stored snapshot, byte for byte) or zip."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    db: str | None = _DB,
) -> None:
    """Write the exact snapshot of a version."""
    from rdbridge.factorlib.versions import bundle

    try:
        sha, size = bundle(db or default_db_url(), version, fmt, out)
    except pkg.PackageError as exc:
        _fail(str(exc), False)
    typer.echo(f"{out}: rd_factors_lib {version} ({size} bytes; snapshot sha256 {sha})")
