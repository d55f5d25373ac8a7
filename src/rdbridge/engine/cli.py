"""``rdbridge engine``: compute Qlib-expression and Python factors from a data dir or panel file into Parquet.

Only Typer is imported at module level: the engine (numba, polars, the kernels) loads when a command runs, so
``rdbridge --help`` and the other subcommands never pay for it.

``engine compute`` runs with Python's cycle collector off (restored when it returns under a test runner; a real
process ends with ``os._exit``): importing numba, polars, pyarrow and pydantic creates ~10^5 objects, and each
automatic collection walks all of them again, ~0.1 s of the imports here (0.62 against 0.72-0.79 s measured).
The compute itself already runs without it (``runner._no_cyclic_gc``); nothing in a job relies on cycles being
reclaimed early.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rdbridge.engine.ast import Node

engine_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Compute factors on a panel.")


@engine_app.callback()
def _engine() -> None:
    """Compute Qlib-expression and Python factors on a panel."""


def history_needed(node: Node) -> float:
    """Trading days before ``start`` the expression reads (Qlib's extended window); inf for expanding/EMA forms."""
    from rdbridge.engine.ast import Call, walk
    from rdbridge.engine.ops import EMA, OPERATORS, Ref, Rolling

    memo: dict[Node, float] = {}
    for n in walk(node):
        kids = max((memo[c] for c in n.children()), default=0.0)
        if not isinstance(n, Call):
            memo[n] = 0.0
            continue
        op = OPERATORS[n.op]
        if isinstance(op, EMA) or (isinstance(op, (Rolling, Ref)) and n.params and n.params[0] == 0):
            memo[n] = math.inf
        elif isinstance(op, Ref):
            memo[n] = kids + max(int(n.params[0]), 0)
        elif isinstance(op, Rolling):
            memo[n] = kids + int(n.params[0]) - 1
        else:
            memo[n] = kids
    return memo[node]


def _parse_exprs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, expr = item.partition("=")
        if not sep or not name.strip() or not expr.strip():
            raise ValueError(f"--expr {item!r}: write NAME=EXPRESSION, e.g. MA5='Mean($close, 5)/$close'")
        out[name.strip()] = expr.strip()
    return out


def _stderr() -> Any:
    """rich's stderr console, imported only for a message or a bar (``--json`` runs never pay its ~30 ms)."""
    from rich.console import Console

    return Console(stderr=True)


def _progress_bar(err: Any) -> tuple[Any, Any]:
    """A rich progress bar on stderr (per phase: partitions, date-wise passes); returns (context, hook)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold]engine[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err, transient=True)
    tasks: dict[str, Any] = {}

    def hook(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], completed=done, total=total)

    return bar, hook


@engine_app.command("compute")
def compute_cmd(
    data: Path = typer.Option(..., "--data", help="A Qlib data dir or a long-format .parquet panel (file or dir)."),
    out: Path = typer.Option(..., "--out", help="A .parquet file, or a directory for a partitioned dataset."),
    alpha158: bool = typer.Option(False, "--alpha158", help="Compute Qlib's 158 Alpha158 factors."),
    expr: list[str] = typer.Option([], "--expr", help="NAME=EXPRESSION (repeatable)."),
    factor: list[str] = typer.Option([], "--factor", help="module:function Python factor (repeatable)."),
    start: str | None = typer.Option(None, "--start", help="First date of the output (history before it is used)."),
    end: str | None = typer.Option(None, "--end", help="Last date of the output."),
    instruments: str | None = typer.Option(None, "--instruments", help="Comma-separated instrument codes."),
    float64: bool = typer.Option(False, "--float64", help="Write float64 columns (default float32, Qlib's dtype)."),
    memory_limit: str | None = typer.Option(
        None, "--memory-limit", help="Peak memory to stay under, e.g. 4GB (default: half the RAM); larger panels "
        "are computed in instrument partitions."),
    partitions: int | None = typer.Option(None, "--partitions", min=1, help="Instrument partitions (default: "
                                          "as few as --memory-limit allows)."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Run on a local Dask cluster of N workers."),
    cluster: str | None = typer.Option(None, "--cluster", help="Run on a Dask scheduler, e.g. tcp://host:8786."),
    compression: str = typer.Option("none", "--compression", help="Parquet codec: none (default: float factors "
                                    "shrink ~17% for ~0.1 s per 400 MB), snappy, lz4, zstd."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Compute factors into Parquet: instrument, datetime, one column per factor (float32 unless --float64)."""
    import gc

    gc_was_enabled = gc.isenabled()
    gc.disable()  # see the module docstring
    try:
        t_start = time.perf_counter()

        def fail(message: str) -> None:
            if as_json:
                typer.echo(json.dumps({"ok": False, "error": message}))
            else:
                _stderr().print(f"[red]error:[/red] {message}")
            raise typer.Exit(2)

        try:
            exprs: dict[str, str] = {}
            if alpha158:
                from rdbridge.contracts.alpha158_table import alpha158_expressions

                exprs.update(alpha158_expressions())
            exprs.update(_parse_exprs(expr))
            from rdbridge.engine.job import load_factor, parse_size, run_job

            for s in factor:
                load_factor(s)  # fails early, naming the factor
            if not exprs and not factor:
                fail("nothing to compute: give --alpha158, --expr NAME=EXPR or --factor module:function")
            if cluster and workers:
                fail("give --cluster ADDRESS or --workers N, not both")
            from rdbridge.engine.runner import parse_all, required_fields

            roots = parse_all(exprs)  # names the factor in a syntax error
            fields = sorted(required_fields(exprs)) if exprs else []
            if factor:
                fields = sorted(set(fields) | {"open", "high", "low", "close", "volume", "vwap", "factor"})
            history = max((history_needed(r) for r in roots.values()), default=0.0)
            limit = parse_size(memory_limit) if memory_limit else None
            insts = [s.strip() for s in instruments.split(",")] if instruments else None
            spec = {"data": str(data), "exprs": exprs, "fields": fields, "start": start, "end": end,
                    "history": history, "factor_specs": list(factor), "float64": float64,
                    "compression": "none" if compression == "none" else compression}
            show_bar = not as_json and sys.stderr.isatty()
            bar, hook = _progress_bar(_stderr()) if show_bar else (None, None)
            t_setup = time.perf_counter()
            if cluster or workers:
                from rdbridge.engine.cluster import DaskExecutor

                with DaskExecutor(address=cluster, workers=workers, memory_limit=limit, progress=hook) as ex:
                    res = run_job(spec, out, instruments=insts, memory_limit=limit, partitions=partitions, executor=ex)
            else:
                from rdbridge.engine.job import LocalExecutor

                if bar is not None:
                    with bar:
                        res = run_job(spec, out, instruments=insts, memory_limit=limit, partitions=partitions,
                                      executor=LocalExecutor(hook))
                else:
                    res = run_job(spec, out, instruments=insts, memory_limit=limit, partitions=partitions)
        except typer.Exit:
            raise
        except (ValueError, OSError, ImportError) as exc:  # parse, panel, data service and factor errors: ValueErrors
            fail(str(exc))
            return
        seconds = time.perf_counter() - t_start
        doc = {"ok": True, "out": str(out), "rows": res.rows, "factors": len(res.factors), "partitions": res.partitions,
               "cross_section_stages": res.stages, "dtype": "float64" if float64 else "float32",
               "seconds": round(seconds, 3), "job_seconds": round(res.seconds, 3),
               "setup_seconds": round(t_setup - t_start, 3), "phases": {k: round(v, 3) for k, v in res.phases.items()}}
        if as_json:
            typer.echo(json.dumps(doc))
        else:
            typer.echo(f"wrote {doc['factors']} factors x {doc['rows']:,} rows to {out} in {seconds:.2f}s "
                       f"({res.partitions} partition(s))", err=True)
        _fast_exit()
    finally:
        if gc_was_enabled:
            gc.enable()


@engine_app.command("sample-data")
def sample_data_cmd(
    out: Path = typer.Option(..., "--out", help="Directory to write the Qlib data dir into (created)."),
    instruments: int = typer.Option(50, "--instruments", min=1, max=20_000, help="Instruments."),
    days: int = typer.Option(500, "--days", min=2, max=20_000, help="Trading days."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed writes the same panel."),
) -> None:
    """Write a synthetic daily panel as a Qlib data dir, to try `engine compute` without market data.

    Random-walk prices and volumes (the benchmarks' generator: late listings, delistings, suspensions), not
    quotes: the numbers it gives mean nothing about any market."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        _stderr().print(f"[red]error:[/red] --out {out}: exists and is not an empty directory; give a new one")
        raise typer.Exit(2)
    from rdbridge.engine.data import write_qlib_dir
    from rdbridge.engine.synthetic import make_panel

    write_qlib_dir(make_panel(instruments, days, seed=seed), out)
    typer.echo(f"wrote a synthetic Qlib data dir: {instruments} instruments x {days} days, seed {seed}: {out}")


def _fast_exit() -> None:
    """End the process now that the output is committed and the report printed: the interpreter's own shutdown
    (freeing a gigabyte of small objects and buffers, numba's and Polars' teardown) took 0.5-0.9 s of a 3.5 s
    Alpha158 job, for nothing. Only in a real process (stdout a file descriptor), never under a test runner."""
    try:
        sys.stdout.fileno()
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
