"""Panels in RD-Agent's layout (MultiIndex datetime, instrument; ``$`` columns) and back, for the package's tests."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import polars as pl


def rdagent_frame(panel: pl.DataFrame) -> pd.DataFrame:
    """The synthetic polars panel as the frame RD-Agent's ``daily_pv.h5`` holds (dtypes kept: float32 as Qlib)."""
    df = panel.to_pandas()
    df = df.rename(columns={c: f"${c}" for c in df.columns if c not in ("instrument", "datetime")})
    return df.set_index(["datetime", "instrument"]).sort_index()


def as_panel_frame(columns: Mapping[str, pd.Series]) -> pl.DataFrame:
    """Factor Series on RD-Agent's index -> the (instrument, datetime, one column per name) layout of qlib_ref."""
    wide = pd.DataFrame(dict(columns)).reset_index()
    out = pl.from_pandas(wide).with_columns(pl.col("datetime").cast(pl.Datetime("us")))
    return out.sort(["instrument", "datetime"])
