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
import polars as pl

from rdbridge.contracts.artifacts import FactorStats, SeriesStats

FORWARD_RETURN = "Ref($close, -2) / Ref($close, -1) - 1"
QUANTILES = 5


def _frame(datetime: np.ndarray, instrument: np.ndarray, values: np.ndarray, col: str) -> pl.DataFrame:
    return pl.DataFrame({"datetime": pl.Series(datetime, dtype=pl.Datetime("ns")),
                         "instrument": pl.Series(instrument, dtype=pl.String),
                         col: pl.Series(values, dtype=pl.Float64)})


def forward_returns(datetime: np.ndarray, instrument: np.ndarray, close: np.ndarray) -> pl.DataFrame:
    """(datetime, instrument, y): per instrument close[t+2] / close[t+1] - 1 on the panel's own calendar."""
    df = _frame(datetime, instrument, close, "close").sort(["instrument", "datetime"])
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


def _bucket(col: str, quantiles: int) -> pl.Expr:
    """Per date: quantile 1..`quantiles` of each value, ceil(rank * quantiles / count). Multiplying before dividing
    keeps exact boundaries exact (6th of 10 in quintiles: 30 / 10 = 3, where 6 / 10 * 5 = 3.0000000000000004 -> 4)."""
    q = (pl.col(col).rank("average") * quantiles / pl.col(col).count()).over("datetime")
    return q.ceil().clip(1, quantiles).cast(pl.Int64)


def _quantile_means(per_date: pl.DataFrame, quantiles: int) -> list[float | None]:
    """Mean over dates of each quantile's daily mean return, in date order with numpy's pairwise sum: a Polars
    group-by over a few large groups splits each group across threads, so its last bits depended on the core count."""
    q = per_date["q"].to_numpy()
    y = per_date["y"].to_numpy(allow_copy=True).astype("float64")
    out: list[float | None] = []
    for k in range(1, quantiles + 1):
        v = y[q == k]
        out.append(_finite(np.mean(v)) if v.size else None)
    return out


def factor_stats(name: str, factor_id: str | None, datetime: np.ndarray, instrument: np.ndarray,
                 values: np.ndarray, fwd: pl.DataFrame | None, quantiles: int = QUANTILES) -> FactorStats:
    """All statistics of one factor (rows: `datetime`, `instrument`, float64 `values`); `fwd` None means no forward
    returns are available (coverage etc. only).

    One lazy plan per factor, collected at once (`pl.collect_all` shares the common steps): on the small panels of a
    typical loop the per-call overhead of ~20 eager steps cost more than the arithmetic.
    """
    df = (_frame(datetime, instrument, values, "f").lazy().unique(["datetime", "instrument"], keep="last")
          .with_columns(pl.when(pl.col("f").is_finite()).then(pl.col("f")).alias("f")))
    counts = df.select(pl.len().alias("n_rows"), pl.col("datetime").n_unique().alias("n_dates"),
                       pl.col("instrument").n_unique().alias("n_instruments"),
                       pl.col("f").is_not_null().sum().alias("n_finite"))
    finite = df.drop_nulls("f").sort(["instrument", "datetime"])
    ranked = finite.with_columns(_pct_rank("f").alias("r"), _bucket("f", quantiles).alias("q"))
    ranked = ranked.with_columns(pl.col("r").shift(1).over("instrument").alias("r_prev"),
                                 (pl.col("q") == quantiles).shift(1).over("instrument").alias("was_top"))
    ranked = ranked.sort(["datetime", "instrument"])
    ac = (ranked.drop_nulls("r_prev").group_by("datetime", maintain_order=True)
          .agg(pl.corr("r", "r_prev").alias("c"), pl.len().alias("n")).filter(pl.col("n") >= 3)
          .select(pl.col("c").drop_nulls().drop_nans().mean()))
    churn = (ranked.filter((pl.col("q") == quantiles) & pl.col("was_top").is_not_null())
             .group_by("datetime", maintain_order=True)
             .agg((1.0 - pl.col("was_top").cast(pl.Float64)).mean().alias("c")).select(pl.col("c").mean()))
    plans = [counts, ac, churn]
    if fwd is not None:
        # sorted by date, and groups kept in order: sums run in one fixed order, so the bytes are reproducible
        joined = finite.join(fwd.lazy(), on=["datetime", "instrument"], how="inner").sort(["datetime", "instrument"])
        daily = (joined.group_by("datetime", maintain_order=True)
                 .agg(pl.corr("f", "y").alias("ic"), pl.corr("f", "y", method="spearman").alias("ric"),
                      pl.len().alias("n"))
                 .filter(pl.col("n") >= 3))
        jq = joined.with_columns(_bucket("f", quantiles).alias("q"))
        qr = jq.group_by(["datetime", "q"], maintain_order=True).agg(pl.col("y").mean())
        plans += [joined.select(pl.len()), daily, qr]
    got = pl.collect_all(plans, engine="in-memory")
    c = got[0].row(0, named=True)
    n_rows = c["n_rows"]
    base: dict[str, Any] = {
        "name": name, "factor_id": factor_id, "n_rows": n_rows, "n_dates": c["n_dates"],
        "n_instruments": c["n_instruments"], "coverage": _finite(c["n_finite"] / n_rows) if n_rows else None,
        "autocorrelation": _finite(got[1].item()),
    }
    turnover = got[2].item()
    if turnover is not None:
        base["turnover"] = _finite(turnover)
    if fwd is None:
        return FactorStats(status="no_forward_returns", note="no daily_pv.h5 found for forward returns", **base)
    if got[3].item() == 0:
        return FactorStats(status="ok", note="no date where factor and forward return overlap", **base)
    daily_df, qr_df = got[4], got[5]
    qret = _quantile_means(qr_df, quantiles)
    spread = qret[-1] - qret[0] if qret[-1] is not None and qret[0] is not None else None
    return FactorStats(status="ok", ic=_series_stats(daily_df["ic"]), rank_ic=_series_stats(daily_df["ric"]),
                       quantile_returns=qret, top_minus_bottom=_finite(spread) if spread is not None else None, **base)
