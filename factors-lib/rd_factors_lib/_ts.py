"""Time-series plumbing shared by the curated modules: trailing windows within one instrument, results on the
caller's index. Unlike Alpha158 (Qlib's ``min_periods=1`` from the first row), a curated rolling statistic is NaN
until the instrument has ``d`` rows of history (a 60-day statistic from 3 days of history is not one); after that it
uses the valid values of the window, skipping suspended days."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from .alpha158 import _by_instrument, _out, _panel, ref

__all__ = ["_out", "_panel", "ref", "full", "ret", "ewm"]


def full(s: pd.Series, d: int, stat: Callable[[pd.core.window.Rolling], pd.Series]) -> pd.Series:
    """``stat`` over the valid values among the last ``d`` rows, NaN before the instrument's ``d``-th row."""
    x = s.astype("float64")
    out = stat(_by_instrument(x).rolling(d, min_periods=1)).droplevel(0)
    return out.where(_by_instrument(x).cumcount() >= d - 1)


def ret(close: pd.Series, n: int = 1) -> pd.Series:
    """Simple return over ``n`` rows: close / close n rows earlier - 1."""
    return close.astype("float64") / ref(close.astype("float64"), n) - 1


def ewm(s: pd.Series, span: int) -> pd.Series:
    """Exponential moving average over the valid rows (alpha = 2 / (span + 1), recursive from the first valid value);
    NaN on NaN rows."""
    x = s.astype("float64")
    avg = _by_instrument(x).transform(lambda v: v.ewm(span=span, adjust=False, ignore_na=True).mean())
    return avg.where(x.notna())


def log(s: pd.Series) -> pd.Series:
    return np.log(s.astype("float64"))
