"""``rdbridge engine``: compute Qlib-expression and Python factors from a data dir or panel file into Parquet."""

from __future__ import annotations

import importlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import typer

from rdbridge.engine.ast import Call, Node, walk
from rdbridge.engine.ops import OPERATORS, EMA, Ref, Rolling

engine_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Compute factors on a panel.")


@engine_app.callback()
def _engine() -> None:
    """Compute Qlib-expression and Python factors on a panel."""


def history_needed(node: Node) -> float:
    """Trading days before ``start`` the expression reads (Qlib's extended window); inf for expanding/EMA forms."""
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


def _load_factor(spec: str) -> tuple[str, Callable[..., object]]:
    if ":" not in spec:
        raise ValueError(f"--factor {spec!r}: write module:function, e.g. rd_factors_lib.momentum:factor_resi5")
    module, func = spec.split(":", 1)
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--factor {spec!r}: cannot import it ({exc})") from exc
    return func, fn


def _parse_exprs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, expr = item.partition("=")
        if not sep or not name.strip() or not expr.strip():
            raise ValueError(f"--expr {item!r}: write NAME=EXPRESSION, e.g. MA5='Mean($close, 5)/$close'")
        out[name.strip()] = expr.strip()
    return out


@engine_app.command("compute")
def compute_cmd(
    data: Path = typer.Option(..., "--data", help="A Qlib data dir or a long-format .parquet panel (file or dir)."),
    out: Path = typer.Option(..., "--out", help="Where to write the factors (.parquet)."),
    alpha158: bool = typer.Option(False, "--alpha158", help="Compute Qlib's 158 Alpha158 factors."),
    expr: list[str] = typer.Option([], "--expr", help="NAME=EXPRESSION (repeatable)."),
    factor: list[str] = typer.Option([], "--factor", help="module:function Python factor (repeatable)."),
    start: str | None = typer.Option(None, "--start", help="First date of the output (history before it is used)."),
    end: str | None = typer.Option(None, "--end", help="Last date of the output."),
    instruments: str | None = typer.Option(None, "--instruments", help="Comma-separated instrument codes."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Compute factors and write them to a Parquet file: instrument, datetime, one Float32 column per factor."""
    from rich.console import Console

    from rdbridge.engine import compute, parse, required_fields

    err = Console(stderr=True)

    def fail(message: str) -> None:
        if as_json:
            typer.echo(json.dumps({"ok": False, "error": message}))
        else:
            err.print(f"[red]error:[/red] {message}")
        raise typer.Exit(2)

    t0 = time.perf_counter()
    try:
        exprs: dict[str, str] = {}
        if alpha158:
            from rdbridge.contracts.alpha158 import alpha158_expressions

            exprs.update(alpha158_expressions())
        exprs.update(_parse_exprs(expr))
        pyf = dict(_load_factor(s) for s in factor)
        if not exprs and not pyf:
            fail("nothing to compute: give --alpha158, --expr NAME=EXPR or --factor module:function")
        if out.suffix != ".parquet":
            fail(f"--out {out}: the output must be a .parquet file")
        from rdbridge.engine.runner import parse_all

        parse_all(exprs)  # names the factor in a syntax error
        fields = sorted(required_fields(exprs)) if exprs else []
        if pyf:
            fields = sorted(set(fields) | {"open", "high", "low", "close", "volume", "vwap", "factor"})
        history = max((history_needed(parse(e)) for e in exprs.values()), default=0.0)
        from rdbridge.engine.data import open_data_service

        service = open_data_service(data)
        insts = [s.strip() for s in instruments.split(",")] if instruments else None
        with err.status(f"loading {len(fields)} fields from {data}"):
            if math.isinf(history) or start is None:
                panel = service.load(fields, insts, None, end)
            else:
                panel = service.load(fields, insts, start, end, history=int(history))
        with err.status(f"computing {len(exprs) + len(pyf)} factors on {panel.height:,} rows"):
            result = compute(panel, exprs, start=start, end=end, pyfactors=pyf)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".parquet.tmp")
        result.write_parquet(tmp)
        tmp.replace(out)
    except typer.Exit:
        raise
    except (ValueError, OSError) as exc:  # parse, panel, data service and factor errors are all ValueErrors
        fail(str(exc))
        return
    seconds = time.perf_counter() - t0
    doc = {"ok": True, "out": str(out), "rows": result.height, "factors": result.width - 2, "seconds": round(seconds, 3)}
    if as_json:
        typer.echo(json.dumps(doc))
    else:
        err.print(f"wrote {doc['factors']} factors x {doc['rows']:,} rows to {out} in {seconds:.2f}s")
