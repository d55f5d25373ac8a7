"""Single-factor statistics (Alphalens vocabulary), vectorised with Polars over (datetime, instrument) rows.

Forward return = Qlib's label in RD-Agent's configs, `Ref($close, -2) / Ref($close, -1) - 1` (the return from the next
close to the one after, so a value known at t's close is not scored on t's own move). Daily IC / rank IC are the
cross-sectional Pearson / Spearman correlations of factor and forward return per date (grouped aggregations, no
per-date Python loop); quantiles are per-date buckets of the factor's rank; autocorrelation and turnover compare each
instrument's value with its previous observation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from rdbridge.contracts.artifacts import FactorStats, SeriesStats

FORWARD_RETURN = "Ref($close, -2) / Ref($close, -1) - 1"
QUANTILES = 5


def _frame(s: pd.Series, col: str) -> pl.DataFrame:
    idx = s.index
    return pl.DataFrame({
        "datetime": pd.DatetimeIndex(idx.get_level_values("datetime")).as_unit("ns").to_numpy(),
        "instrument": idx.get_level_values("instrument").astype(str).to_numpy(),
        col: s.to_numpy(dtype="float64", na_value=np.nan),
    })


def forward_returns(panel: pd.DataFrame) -> pl.DataFrame:
    """(datetime, instrument, y): per instrument close[t+2] / close[t+1] - 1 on the panel's own calendar."""
    if "$close" not in panel.columns:
        raise KeyError("$close")
    df = _frame(panel["$close"], "close").sort(["instrument", "datetime"])
    c = pl.col("close")
    y = (c.shift(-2) / c.shift(-1) - 1.0).over("instrument")
    return (df.with_columns(y.alias("y")).select("datetime", "instrument", "y")
            .with_columns(pl.when(pl.col("y").is_finite()).then(pl.col("y")).alias("y")).drop_nulls("y"))


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _series_stats(s: pl.Series) -> SeriesStats:
    s = s.drop_nulls().drop_nans()
    n = s.len()
    mean = float(s.mean()) if n else math.nan  # type: ignore[arg-type]
    std = float(s.std(ddof=1)) if n > 1 else math.nan  # type: ignore[arg-type]
    ir = mean / std if math.isfinite(std) and std > 0 else math.nan
    return SeriesStats(mean=_finite(mean), std=_finite(std), ir=_finite(ir),
                       t_stat=_finite(ir * math.sqrt(n)) if n else None, n_days=n)


def _pct_rank(col: str) -> pl.Expr:
    return (pl.col(col).rank("average") / pl.col(col).count()).over("datetime")


def factor_stats(name: str, factor_id: str | None, values: pd.Series, fwd: pl.DataFrame | None,
                 quantiles: int = QUANTILES) -> FactorStats:
    """All statistics of one factor; `fwd` None means no forward returns are available (coverage etc. only)."""
    df = _frame(values, "f").unique(["datetime", "instrument"], keep="last")
    df = df.with_columns(pl.when(pl.col("f").is_finite()).then(pl.col("f")).alias("f"))
    n_rows = df.height
    finite = df.drop_nulls("f").sort(["instrument", "datetime"])
    base: dict[str, Any] = {
        "name": name, "factor_id": factor_id, "n_rows": n_rows, "n_dates": df["datetime"].n_unique(),
        "n_instruments": df["instrument"].n_unique(),
        "coverage": _finite(finite.height / n_rows) if n_rows else None,
    }
    ranked = finite.with_columns(_pct_rank("f").alias("r")).with_columns(
        pl.col("r").mul(quantiles).ceil().clip(1, quantiles).cast(pl.Int64).alias("q"))
    ranked = ranked.with_columns(pl.col("r").shift(1).over("instrument").alias("r_prev"),
                                 (pl.col("q") == quantiles).shift(1).over("instrument").alias("was_top"))
    ranked = ranked.sort(["datetime", "instrument"])
    ac = (ranked.drop_nulls("r_prev").group_by("datetime", maintain_order=True)
          .agg(pl.corr("r", "r_prev").alias("c"), pl.len().alias("n")).filter(pl.col("n") >= 3)["c"])
    ac = ac.drop_nulls().drop_nans()
    base["autocorrelation"] = _finite(ac.mean()) if ac.len() else None
    top = ranked.filter((pl.col("q") == quantiles) & pl.col("was_top").is_not_null())
    if top.height:
        churn = (top.group_by("datetime", maintain_order=True)
                 .agg((1.0 - pl.col("was_top").cast(pl.Float64)).mean().alias("c"))["c"])
        base["turnover"] = _finite(churn.mean())
    if fwd is None:
        return FactorStats(status="no_forward_returns", note="no daily_pv.h5 found for forward returns", **base)
    # sorted by date, and groups kept in order: sums run in one fixed order, so the bytes are reproducible
    joined = finite.join(fwd, on=["datetime", "instrument"], how="inner").sort(["datetime", "instrument"])
    if joined.height == 0:
        return FactorStats(status="ok", note="no date where factor and forward return overlap", **base)
    daily = (joined.group_by("datetime", maintain_order=True)
             .agg(pl.corr("f", "y").alias("ic"), pl.corr("f", "y", method="spearman").alias("ric"),
                  pl.len().alias("n"))
             .filter(pl.col("n") >= 3))
    jq = joined.with_columns(_pct_rank("f").mul(quantiles).ceil().clip(1, quantiles).cast(pl.Int64).alias("q"))
    qr = (jq.group_by(["datetime", "q"], maintain_order=True).agg(pl.col("y").mean())
          .group_by("q", maintain_order=True).agg(pl.col("y").mean()))
    by_q = dict(zip(qr["q"].to_list(), qr["y"].to_list(), strict=True))
    qret = [_finite(by_q.get(q)) if by_q.get(q) is not None else None for q in range(1, quantiles + 1)]
    spread = qret[-1] - qret[0] if qret[-1] is not None and qret[0] is not None else None
    return FactorStats(status="ok", ic=_series_stats(daily["ic"]), rank_ic=_series_stats(daily["ric"]),
                       quantile_returns=qret, top_minus_bottom=_finite(spread) if spread is not None else None, **base)
