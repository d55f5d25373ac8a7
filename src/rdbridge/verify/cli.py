"""``rdbridge verify factor|all|verdicts``: thin Typer commands over ``verify.run`` and the platform's verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rdbridge.contracts.verify import Tolerances, VerifyAllReport

verify_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="Check platform factor implementations against rd_factors_lib; record verdicts.")

_DB = typer.Option(None, "--db", help="Platform DB where verdicts go (default: $RDBRIDGE_PLATFORM_DB or "
                                      "$RDBRIDGE_HOME/platform.sqlite).")
_JSON = typer.Option(False, "--json", help="Print one JSON document.")
_BUNDLE = typer.Option(None, "--bundle", help="The reference's bundle (folder, .tar.gz or .zip from "
                                              "`rdbridge factorlib bundle`); default: the installed rd_factors_lib.")
_VERSION = typer.Option(None, "--version", help="Required rd_factors_lib version of the reference.")
_DATA = typer.Option(None, "--data", help="Your own data (Qlib dir or Parquet panel) instead of the standard set.")
_OUT = typer.Option(None, "--out-dir", help="Where reports go (default: $RDBRIDGE_HOME/verify_reports/<UTC stamp>).")
_NO_RECORD = typer.Option(False, "--no-record", help="Do not write verdicts into the platform DB.")


def _fail(message: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _run(targets: list, bundle: Path | None, version: str | None, data: str | None, out_dir: Path | None,
         db: str | None, no_record: bool, as_json: bool) -> None:
    from rdbridge.consumer.db import default_platform_db_url
    from rdbridge.verify.run import Options, verify_targets

    opts = Options(bundle=bundle, version=version, data=data, out_dir=out_dir,
                   db_url=None if no_record else (db or default_platform_db_url()))
    try:
        result = verify_targets(targets, opts)
    except ValueError as exc:  # bad bundle / data / expression list: named in the message
        _fail(str(exc), as_json)
    _print(result, as_json)
    raise typer.Exit(0 if result.failed == 0 else 1)


def _print(result: VerifyAllReport, as_json: bool) -> None:
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    for r in result.reports:
        mark = "verified" if r.verified else "FAILED"
        typer.echo(f"{mark:8}  {r.factor}: {r.reason}")
        if r.report_html:
            typer.echo(f"          report: {r.report_html}")
    typer.echo(f"{result.verified} of {result.total} verified against rd_factors_lib {result.impl_version} on "
               f"{result.dataset.name} (sha256 {result.dataset.sha256[:12]}) in {result.seconds:.1f} s")


@verify_app.command("factor")
def factor_cmd(
    name: str = typer.Argument(..., help="The factor's exact name in rd_factors_lib."),
    impl: str | None = typer.Option(None, "--impl", help="Platform implementation module:func (df -> Series)."),
    expr: str | None = typer.Option(None, "--expr", help="Platform implementation as a Qlib expression."),
    rtol: float = typer.Option(1e-6, "--rtol", min=0.0), atol: float = typer.Option(1e-6, "--atol", min=0.0),
    bundle: Path | None = _BUNDLE, version: str | None = _VERSION, data: str | None = _DATA,
    out_dir: Path | None = _OUT, db: str | None = _DB, no_record: bool = _NO_RECORD, as_json: bool = _JSON,
) -> None:
    """Verify one factor's implementation; exit 0 verified, 1 failed, 2 unusable input."""
    from rdbridge.verify.run import Target

    if (impl is None) == (expr is None):
        _fail("give exactly one of --impl module:func or --expr 'QLIB EXPR'", as_json)
    kind, spec = ("impl", impl) if impl is not None else ("expr", expr)
    _run([Target(name=name, kind=kind, spec=spec, tol=Tolerances(rtol=rtol, atol=atol))],  # type: ignore[arg-type]
         bundle, version, data, out_dir, db, no_record, as_json)


@verify_app.command("all")
def all_cmd(
    mapping: Path | None = typer.Option(None, "--mapping", help="YAML/JSON: factors: {NAME: {expr|impl, rtol, atol}}."),
    alpha158: bool = typer.Option(False, "--alpha158", help="Add the engine's 158 Alpha158 expressions."),
    bundle: Path | None = _BUNDLE, version: str | None = _VERSION, data: str | None = _DATA,
    out_dir: Path | None = _OUT, db: str | None = _DB, no_record: bool = _NO_RECORD, as_json: bool = _JSON,
) -> None:
    """Verify every registered implementation (mapping file, --alpha158, entry points `rdbridge.verify`);
    exit 1 on any failure: the platform CI's regression suite."""
    from rdbridge.verify.mapping import MappingError, alpha158_targets, entry_point_targets, load_mapping_file

    try:
        targets = (load_mapping_file(mapping) if mapping else []) + (alpha158_targets() if alpha158 else [])
        targets += entry_point_targets()
    except MappingError as exc:
        _fail(str(exc), as_json)
    if not targets:
        _fail("nothing to verify: give --mapping FILE or --alpha158, or install a `rdbridge.verify` entry point",
              as_json)
    _run(targets, bundle, version, data, out_dir, db, no_record, as_json)


@verify_app.command("verdicts")
def verdicts_cmd(status: str | None = typer.Option(None, "--status", help="verified, stale or failed."),
                 db: str | None = _DB, as_json: bool = _JSON) -> None:
    """The newest verdict per factor in the platform library, with verified / stale / failed."""
    from rdbridge.consumer import verdicts
    from rdbridge.consumer.db import default_platform_db_url, init_platform_db, session_scope

    if status is not None and status not in verdicts.STATUSES:
        _fail(f"--status must be one of {', '.join(verdicts.STATUSES)}", as_json)
    engine = init_platform_db(db or default_platform_db_url())
    try:
        with session_scope(engine, write=False) as s:
            docs = [d for d in verdicts.latest(s).values() if status is None or d.status == status]
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([d.model_dump() for d in docs], indent=2))
        return
    for d in docs:
        cur = f" (reference now {d.current_impl_version})" if d.status == "stale" else ""
        typer.echo(f"{d.status:8}  {d.factor}  @ {d.impl_version}{cur}  {d.verified_at_utc}  {d.report_path or ''}")
