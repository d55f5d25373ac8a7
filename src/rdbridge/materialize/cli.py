"""The `rdbridge materialize` command body: parse-free logic the thin Typer shell in rdbridge.cli calls."""

from __future__ import annotations

import os
import sys
from typing import Any

from rdbridge.contracts.artifacts import MaterializeReport
from rdbridge.materialize.service import materialize


def run(*, db_url: str, scope: str, task_run_id: str | None, loop_id: int | None, workers: int, force: bool,
        lease_seconds: float, show_progress: bool, console: Any) -> MaterializeReport:
    """Run materialize, with a rich progress bar on `console` when asked (a terminal, not --json)."""
    if not show_progress:
        return materialize(db_url=db_url, scope=scope, task_run_id=task_run_id, loop_id=loop_id, workers=workers,
                           force=force, lease_seconds=lease_seconds)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]materialize[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("loops", total=None)

        def hook(done: int, total: int, experiment_id: str) -> None:
            bar.update(task, completed=done, total=total, description=experiment_id)

        return materialize(db_url=db_url, scope=scope, task_run_id=task_run_id, loop_id=loop_id, workers=workers,
                           force=force, lease_seconds=lease_seconds, on_progress=hook)


def wants_progress(as_json: bool) -> bool:
    return not as_json and (sys.stderr.isatty() or os.environ.get("RDBRIDGE_PROGRESS") == "1")


def print_report(report: MaterializeReport, echo: Any, console: Any) -> None:
    c = report.counts
    echo(f"materialized: {c.done} done, {c.failed} failed, {c.skipped} already done (skipped); "
         f"{report.seconds:.2f}s; artifacts in {report.artifact_root}")
    for f in report.failures:
        console.print(f"[yellow]{f.experiment_id}[/yellow] failed: {f.error}")
