"""Factors promoted from RD-Agent loops. Written only by ``rdbridge factorlib promote``: do not edit by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._registry import factor


def _as_factor(result: object, name: str, index: pd.Index) -> pd.Series:
    """What the script wrote to result.h5 as the factor's Series: its first column, named ``name``, on ``index``."""
    if isinstance(result, pd.DataFrame):
        result = result.iloc[:, 0]
    return pd.Series(result).reindex(index).astype("float64").rename(name)


__all__ = ["factor", "np", "pd"]
