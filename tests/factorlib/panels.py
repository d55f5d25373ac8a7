"""Panels in RD-Agent's layout (MultiIndex datetime, instrument; ``$`` columns) and back, for the package's tests."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import polars as pl

from rdbridge.engine.pyfactors import rdagent_frame  # the frame the engine hands rd_factors_lib's functions

__all__ = ["as_panel_frame", "rdagent_frame"]


def as_panel_frame(columns: Mapping[str, pd.Series]) -> pl.DataFrame:
    """Factor Series on RD-Agent's index -> the (instrument, datetime, one column per name) layout of qlib_ref."""
    wide = pd.DataFrame(dict(columns)).reset_index()
    out = pl.from_pandas(wide).with_columns(pl.col("datetime").cast(pl.Datetime("us")))
    return out.sort(["instrument", "datetime"])
