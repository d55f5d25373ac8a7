"""The candidate side: the platform's implementation, a Qlib expression run by rdbridge's engine or a Python
function of the reference's convention (RD-Agent's daily frame in, a Series on its index out)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import polars as pl

from rdbridge.engine import compute
from rdbridge.engine.pyfactors import rdagent_frame, to_column


class CandidateError(ValueError):
    """The expression does not parse / evaluate, or the function cannot be imported or fails."""


def load_impl(spec: str) -> Callable[[pd.DataFrame], object]:
    module, sep, func = spec.partition(":")
    if not sep or not module or not func:
        raise CandidateError(f"--impl {spec!r}: expected module:function")
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise CandidateError(f"--impl {spec!r}: {type(exc).__name__}: {exc}") from exc
    if not callable(fn):
        raise CandidateError(f"--impl {spec!r} is not callable")
    return fn


def run_exprs(panel: pl.DataFrame, exprs: Mapping[str, str]) -> tuple[pl.DataFrame, dict[str, str]]:
    """Engine values (Float32 widened to Float64) in the panel's row order; a bad expression fails only itself."""
    errors: dict[str, str] = {}
    good: dict[str, str] = {}
    from rdbridge.engine import parse

    for name, expr in exprs.items():
        try:
            parse(expr)
            good[name] = expr
        except ValueError as exc:
            errors[name] = f"expression {expr!r}: {exc}"
    keys = panel.select("instrument", "datetime")
    if not good:
        return keys, errors
    try:
        out = compute(panel, good)
    except ValueError as exc:  # one bad factor at run time: fall back to one at a time to name it
        out = keys
        for name, expr in good.items():
            try:
                one = compute(panel, {name: expr})
                out = out.with_columns(one[name])
            except ValueError as exc1:
                errors[name] = f"expression {expr!r}: {exc1}"
        del exc
    cols = [pl.col(n).cast(pl.Float64) for n in good if n in out.columns]
    return out.select("instrument", "datetime", *cols), errors


def run_impls(panel: pl.DataFrame, impls: Mapping[str, str]) -> tuple[pl.DataFrame, dict[str, str]]:
    errors: dict[str, str] = {}
    out = panel.select("instrument", "datetime")
    df = rdagent_frame(panel)
    # the frame is sorted (datetime, instrument); align results back by index labels
    for name, spec in impls.items():
        try:
            res = load_impl(spec)(df.copy())
            if isinstance(res, (pd.Series, pd.DataFrame)):
                col = to_column(name, res, panel)
            else:
                raise CandidateError(f"{spec} returned {type(res).__name__}, not a pandas Series")
            out = out.with_columns(col.cast(pl.Float64).alias(name))
        except Exception as exc:  # noqa: BLE001 - the candidate's failure is a verdict, not a crash
            errors[name] = f"{type(exc).__name__}: {exc}"
    return out, errors


__all__ = ["CandidateError", "load_impl", "np", "rdagent_frame", "run_exprs", "run_impls"]
