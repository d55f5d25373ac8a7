"""The `rdbridge` command line: thin Typer shells over library functions (parse, call one function, print)."""

from __future__ import annotations

import gc
import json
import os
import sys
from functools import cache, partial
from pathlib import Path
from typing import Any

import typer

from rdbridge import __version__
from rdbridge.config import default_db_url

app = typer.Typer(no_args_is_help=True, add_completion=False, help="rdbridge: RD-Agent results to the trading platform.")
# the sub-apps of other layers are loaded lazily: see _LazyGroup at the end


@cache
def _err() -> Any:
    """The stderr console, made on first use: rich costs ~40 ms of imports that `engine compute --json` and
    `version` never need."""
    from rich.console import Console

    return Console(stderr=True)

DbOption = typer.Option(None, "--db", help="SQLAlchemy URL of the registry (default: $RDBRIDGE_HOME/registry.sqlite).")
JsonOption = typer.Option(False, "--json", help="Print one JSON document on stdout (and no progress bar).")


def _emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")


def _fail(message: str, as_json: bool, code: int = 2) -> None:
    if as_json:
        _emit_json({"ok": False, "error": message})
    else:
        _err().print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@app.callback()
def main(ctx: typer.Context) -> None:
    """rdbridge: RD-Agent results to the trading platform."""
    if ctx.invoked_subcommand != "engine":
        _resume_gc()  # long-running commands (serve, ui, materialize) run with the cycle collector


_gc_paused = False


def run() -> None:
    """The console entry point (`rdbridge`, `python -m rdbridge.cli`). Python's cycle collector is paused while the
    command's modules import: Typer builds a pydantic adapter per option and the engine imports numba, polars and
    pyarrow, ~10^5 objects that each automatic collection walks again (~40 ms of an `engine compute`). The root
    callback resumes it before any command but the engine's, which keeps it off until the process ends."""
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True
    try:
        app()
    finally:
        _resume_gc()


def _resume_gc() -> None:
    global _gc_paused
    if _gc_paused:
        gc.enable()
        _gc_paused = False


@app.command()
def version(as_json: bool = JsonOption) -> None:
    """Print the rdbridge version."""
    if as_json:
        _emit_json({"version": __version__})
    else:
        typer.echo(f"rdbridge {__version__}")


@app.command()
def ingest(
    log_root: Path = typer.Option(..., "--log-root", help="RD-Agent's log folder (run folders inside) or one run folder."),
    workspace_root: Path = typer.Option(..., "--workspace-root", help="RD-Agent's workspace folder (<uuid>/ inside)."),
    signing_key_file: Path | None = typer.Option(
        None, "--signing-key-file",
        help="RD-Agent's artifact_signing.key; else $ARTIFACT_SIGNING_KEY; else signatures are reported unverified."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
    max_pickle_bytes: int | None = typer.Option(
        None, "--max-pickle-bytes", min=1, help="Refuse trace pickles larger than this (default $RDBRIDGE_MAX_PICKLE_BYTES or 256 MiB)."),
    data_root: list[Path] = typer.Option(
        [], "--data-root", help="Folder that workspace symlinks may point into (e.g. RD-Agent's data folder); repeatable."),
) -> None:
    """Read RD-Agent's trace and workspaces into the registry (idempotent, incremental, resumable)."""
    from rdbridge.ingest import IngestInputError
    from rdbridge.ingest import ingest as run_ingest
    from rdbridge.rdagent_trace import TraceReadError, load_signing_key

    try:
        key = load_signing_key(signing_key_file)
    except TraceReadError as e:
        _fail(str(e), as_json)
    url = db or default_db_url()
    try:
        if as_json or not sys.stderr.isatty() and os.environ.get("RDBRIDGE_PROGRESS") != "1":
            report = run_ingest(log_root=log_root, workspace_root=workspace_root, db_url=url, signing_key=key,
                                max_pickle_bytes=max_pickle_bytes, data_roots=data_root)
        else:
            report = _ingest_with_progress(partial(run_ingest, max_pickle_bytes=max_pickle_bytes, data_roots=data_root),
                                           log_root, workspace_root, url, key)
    except IngestInputError as e:
        _fail(str(e), as_json)
    if as_json:
        _emit_json(report.model_dump(mode="json"))
    else:
        c = report.counts
        typer.echo(f"task runs: {c.task_runs_seen} ({c.task_runs_new} new); loops: {c.loops_seen} "
                   f"({c.loops_new} new, {c.loops_updated} updated, {c.loops_unchanged} unchanged, "
                   f"{c.loops_with_errors} with errors); changes: {report.changes}; {report.signature_check}; "
                   f"{report.elapsed_seconds:.2f}s")
        for issue in report.issues:
            _err().print(f"[yellow]{issue.experiment_id}[/yellow] {issue.kind}: {issue.file}: {issue.message}")
    raise typer.Exit(0 if report.ok else 1)


def _ingest_with_progress(run_ingest: Any, log_root: Path, workspace_root: Path, url: str, key: bytes | None) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]ingest[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=_err(), transient=True) as bar:
        task = bar.add_task("loops", total=None)

        def hook(run_id: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=run_id)

        return run_ingest(log_root=log_root, workspace_root=workspace_root, db_url=url, signing_key=key,
                          on_progress=hook)


@app.command()
def loops(
    task_run_id: str | None = typer.Option(None, "--task-run", help="Only this task run."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """List the loops in the registry with status, result flag and materialization state."""
    from sqlalchemy import select

    from rdbridge.registry import Loop, make_engine, session_scope

    engine = make_engine(db or default_db_url())
    try:
        with session_scope(engine, write=False) as s:
            q = select(Loop).order_by(Loop.task_run_id, Loop.loop_id)
            if task_run_id:
                q = q.where(Loop.task_run_id == task_run_id)
            rows = [
                {"experiment_id": r.experiment_id, "task_run_id": r.task_run_id, "loop_id": r.loop_id,
                 "action": r.action, "status": r.status, "has_result": r.has_result, "decision": r.decision,
                 "hypothesis": r.hypothesis, "materialization_status": r.materialization_status,
                 "signature_status": r.signature_status, "error": r.error,
                 "materialization_error": r.materialization_error}
                for r in s.scalars(q)
            ]
    except Exception as e:  # noqa: BLE001 - e.g. no registry yet: tell the user what to run
        _fail(f"cannot read the registry ({type(e).__name__}: {e}); run `rdbridge ingest` first", as_json)
    finally:
        engine.dispose()
    if as_json:
        _emit_json({"ok": True, "loops": rows})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("experiment_id", "action", "status", "result", "decision", "materialization", "signature", "error")
    table.columns[0].no_wrap = True
    for r in rows:
        table.add_row(r["experiment_id"], r["action"], r["status"], str(r["has_result"]), str(r["decision"]),
                      str(r["materialization_status"]), str(r["signature_status"]),
                      (r["error"] or r["materialization_error"] or "")[:60])
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@app.command()
def materialize(
    pending: bool = typer.Option(False, "--pending", help="Loops waiting to be materialized (the default)."),
    all_loops: bool = typer.Option(False, "--all", help="Every finished loop: failed ones retried, done ones kept."),
    task_run_id: str | None = typer.Option(None, "--task-run", help="Only this task run (finished loops)."),
    loop_id: int | None = typer.Option(None, "--loop", help="Only this loop of --task-run."),
    workers: int = typer.Option(1, "--workers", help="Worker processes."),
    force: bool = typer.Option(False, "--force", help="Rebuild loops of the scope that are already done."),
    lease_seconds: float = typer.Option(600.0, "--lease-seconds", hidden=True),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Build each finished loop's documents and charts into $RDBRIDGE_HOME/artifacts and register them."""
    from rdbridge.materialize import MaterializeInputError
    from rdbridge.materialize.cli import print_report, run, wants_progress

    if sum((pending, all_loops, task_run_id is not None)) > 1:
        _fail("choose one of --pending, --all, --task-run", as_json)
    scope = "all" if all_loops else "task-run" if task_run_id is not None else "pending"
    try:
        report = run(db_url=db or default_db_url(), scope=scope, task_run_id=task_run_id, loop_id=loop_id,
                     workers=workers, force=force, lease_seconds=lease_seconds, show_progress=wants_progress(as_json),
                     console=_err())
    except MaterializeInputError as e:
        _fail(str(e), as_json)
    if as_json:
        _emit_json(report.model_dump(mode="json"))
    else:
        print_report(report, typer.echo, _err())
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def sync(
    api: str = typer.Option(..., "--api", help="Base URL of the Results API (rdbridge serve), e.g. http://127.0.0.1:8765."),
    db: str | None = typer.Option(None, "--db", help="Platform database URL (default: $RDBRIDGE_HOME/platform.sqlite)."),
    token: str | None = typer.Option(None, "--token", help="Bearer token of the API (default: $RDBRIDGE_API_TOKEN)."),
    every: str | None = typer.Option(None, "--every", help="Repeat every interval (30s, 10m, 1h) until interrupted."),
    as_json: bool = JsonOption,
) -> None:
    """Pull the Results API into the platform library (full first, then incremental; resumable)."""
    from rdbridge.consumer.cli import run_sync_command

    run_sync_command(api, db, token, every, as_json)


@app.command()
def ui(
    db: str | None = typer.Option(None, "--db", help="Platform database URL (default: $RDBRIDGE_HOME/platform.sqlite)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8766, "--port", help="Port to listen on."),
) -> None:
    """Serve the platform web UI over the synced library."""
    from rdbridge.ui.cli import run_ui_command

    run_ui_command(db, host, port)


def _refresh_factor_meta(db_url: str, experiment_ids: list[str]) -> None:
    """After a promotion: the loops' factor_meta.json carries the new impl pointers (re-registered with new sha256)."""
    from rdbridge.materialize import refresh_factor_meta

    refresh_factor_meta(db_url, experiment_ids)


def _load_factorlib() -> Any:
    from rdbridge.factorlib import cli as factorlib_cli

    factorlib_cli.AFTER_PROMOTION_HOOK = _refresh_factor_meta
    return factorlib_cli.factorlib_app


def _load_serve() -> Any:
    from rdbridge.api.cli import serve_command

    single = typer.Typer(add_completion=False)
    single.command("serve")(serve_command)
    return single


def _load_engine() -> Any:
    from rdbridge.engine.cli import engine_app

    return engine_app


def _load_catalog() -> Any:
    from rdbridge.catalog.cli import catalog_app

    return catalog_app


def _load_verify() -> Any:
    from rdbridge.verify.cli import verify_app

    return verify_app


_LAZY: dict[str, tuple[Any, str]] = {
    "serve": (_load_serve, "Serve the read-only Results API."),
    "catalog": (_load_catalog, "Export the catalogs or print their JSON Schemas."),
    "engine": (_load_engine, "Compute Qlib-expression and Python factors on a panel."),
    "factorlib": (_load_factorlib, "The shared factor package rd_factors_lib."),
    "verify": (_load_verify, "Verify platform factor implementations against rd_factors_lib."),
}
"""Sub-apps of other layers, imported only when their command runs (or a listing needs them all): `rdbridge
version` or `rdbridge engine compute` must not pay for the imports of the API server, the catalogs, numba or
pandas that other commands need (about 1.5 s of a 5 s Alpha158 job before). Each stays optional: an ImportError
hides it, so a partial install still has a working CLI."""


class _LazyGroup(typer.core.TyperGroup):
    """A command group whose `_LAZY` sub-apps are loaded when resolved; help listings show a stub with the help."""

    _resolving = False

    @property
    def commands(self) -> dict[str, Any]:  # type: ignore[override]
        """Every command, the lazy ones loaded (for tools that walk the tree, e.g. the docs test)."""
        for name in _LAZY:
            self._load(name)
        return self._commands

    @commands.setter
    def commands(self, value: Any) -> None:
        self._commands = dict(value)

    def _load(self, name: str) -> Any:
        if name not in self._commands:
            try:
                sub = _LAZY[name][0]()
            except ImportError:
                return None
            cmd = typer.main.get_command(sub)
            cmd.name = name
            if isinstance(cmd, typer.core.TyperGroup):  # as add_typer(help=...) had it; a command keeps its own
                cmd.help = _LAZY[name][1]
            self._commands[name] = cmd
        return self._commands[name]

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self._commands, *(n for n in _LAZY if n not in self._commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in _LAZY and cmd_name not in self._commands:
            if self._resolving:
                return self._load(cmd_name)
            return typer.core.TyperCommand(cmd_name, help=_LAZY[cmd_name][1])  # a listing: no import
        return self._commands.get(cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        self._resolving = True
        try:
            return super().resolve_command(ctx, args)
        finally:
            self._resolving = False


app.info.cls = _LazyGroup

if __name__ == "__main__":
    run()
