"""`rdbridge sync` and `rdbridge ui`: argument handling, progress bars and printing around the library functions."""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rdbridge.consumer.client import TOKEN_ENV, ApiError
from rdbridge.consumer.db import PlatformURLError, default_platform_db_url
from rdbridge.contracts.platform import SyncReport

err = Console(stderr=True)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


def parse_every(text: str) -> float:
    """`30s`, `10m`, `1h` or plain seconds -> seconds (at least 1)."""
    m = _DURATION.match(text or "")
    if not m:
        raise typer.BadParameter(f"--every {text!r}: use a duration such as 30s, 10m or 1h")
    seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2) or "s"]
    if seconds < 1:
        raise typer.BadParameter("--every must be at least 1s")
    return seconds


class _Bars:
    """rich progress bars on stderr, one per stage (lists, loops, files, sources)."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=err, transient=False)
        self.tasks: dict[str, Any] = {}

    def __call__(self, stage: str, n: int, total: int | None) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        elif total is not None:
            self.progress.update(self.tasks[stage], total=total)
        if n:
            self.progress.advance(self.tasks[stage], n)


def print_report(report: SyncReport) -> None:
    table = Table(title=f"sync from {report.api_url} ({'full' if report.full else 'incremental'}, "
                        f"{report.seconds:.2f} s)")
    for col in ("kind", "created", "updated", "unchanged", "failed"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind, c in report.kinds.items():
        table.add_row(kind, str(c.created), str(c.updated), str(c.unchanged), str(c.failed))
    Console().print(table)
    typer.echo(f"files downloaded: {report.files_downloaded} ({report.bytes_downloaded} bytes), "
               f"reused from the store: {report.files_reused}; rows changed: {report.changed}")
    if report.outside_library:
        typer.echo(f"{len(report.outside_library)} loop(s) not in the libraries (materialization not done):")
        for o in report.outside_library[:20]:
            typer.echo(f"  {o.experiment_id}: {o.materialization_status or 'none'}"
                       + (f" - {o.error}" if o.error else ""))
    for i in report.issues:
        err.print(f"[yellow]{i.kind}[/yellow] {i.key}: {i.message}", markup=True, highlight=False)


def run_sync_command(api: str, db: str | None, token: str | None, every: str | None, as_json: bool) -> None:
    from rdbridge.consumer.sync import sync

    interval = parse_every(every) if every else None
    url = db or default_platform_db_url()
    token = token or os.environ.get(TOKEN_ENV)
    code = 0
    while True:
        show = not as_json and sys.stderr.isatty()
        bars = _Bars() if show else None
        try:
            if bars:
                with bars.progress:
                    report = sync(api, url, token=token, progress=bars)
            else:
                report = sync(api, url, token=token)
        except (ApiError, PlatformURLError) as exc:
            code = 2 if isinstance(exc, PlatformURLError) else 3
            if as_json:
                sys.stdout.write('{"ok": false, "error": ' + _json_str(str(exc)) + "}\n")
            else:
                err.print(f"[red]error:[/red] {exc}", highlight=False)
            if interval is None:
                raise typer.Exit(code) from None
        else:
            code = 0 if report.ok else 1
            if as_json:
                sys.stdout.write(report.model_dump_json() + "\n")
                sys.stdout.flush()
            else:
                print_report(report)
        if interval is None:
            raise typer.Exit(code)
        time.sleep(interval)


def _json_str(s: str) -> str:
    import json

    return json.dumps(s, ensure_ascii=False)
