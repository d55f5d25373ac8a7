"""Platform-side candidate implementations used by the verify tests (RD-Agent's frame in, a Series out)."""

from __future__ import annotations

import pandas as pd


def roc5(df: pd.DataFrame) -> pd.Series:
    """A correct re-implementation of Alpha158 ROC5 in float64 (the reference keeps float32 arithmetic)."""
    close = df["$close"].astype("float64")
    prev = close.groupby(level="instrument").shift(5)
    return (prev / close).rename("ROC5")


def kmid_filled(df: pd.DataFrame) -> pd.Series:
    """KMID with suspended days filled with 0: the values agree, the NaN handling does not."""
    return ((df["$close"] - df["$open"]) / df["$open"]).astype("float64").fillna(0.0).rename("KMID")
