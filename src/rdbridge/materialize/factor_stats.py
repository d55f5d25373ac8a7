"""Single-factor statistics (Alphalens vocabulary), vectorised over a (datetime, instrument) index.

Forward return = Qlib's label in RD-Agent's configs, `Ref($close, -2) / Ref($close, -1) - 1` (the return from the next
close to the one after, so a value known at t's close is not scored on t's own move). Daily IC / rank IC are the
cross-sectional Pearson / Spearman correlations of factor and forward return per date, from grouped sums (no per-date
Python loop); quantiles are per-date buckets of the factor's rank.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from rdbridge.contracts.artifacts import FactorStats, SeriesStats

FORWARD_RETURN = "Ref($close, -2) / Ref($close, -1) - 1"
QUANTILES = 5


def forward_returns(panel: pd.DataFrame) -> pd.Series:
    """Per instrument: close[t+2] / close[t+1] - 1 on the panel's own calendar."""
    if "$close" not in panel.columns:
        raise KeyError("$close")
    close = panel["$close"].astype("float64").sort_index()
    g = close.groupby(level="instrument", sort=False)
    fwd = g.shift(-2) / g.shift(-1) - 1.0
    return fwd.replace([np.inf, -np.inf], np.nan).rename("fwd")


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _daily_corr(x: pd.Series, y: pd.Series) -> pd.Series:
    """Per-date Pearson correlation of x and y (both already restricted to rows where both are finite)."""
    dates = x.index.get_level_values("datetime")
    xc = x - x.groupby(dates).transform("mean")
    yc = y - y.groupby(dates).transform("mean")
    sums = pd.DataFrame({"xy": xc * yc, "xx": xc * xc, "yy": yc * yc, "n": 1.0}).groupby(dates).sum()
    denom = np.sqrt(sums["xx"] * sums["yy"])
    corr = sums["xy"] / denom.where(denom > 0)
    return corr[sums["n"] >= 3].dropna()


def _series_stats(s: pd.Series) -> SeriesStats:
    n = int(s.size)
    mean = float(s.mean()) if n else math.nan
    std = float(s.std(ddof=1)) if n > 1 else math.nan
    ir = mean / std if std and math.isfinite(std) and std > 0 else math.nan
    return SeriesStats(mean=_finite(mean), std=_finite(std), ir=_finite(ir),
                       t_stat=_finite(ir * math.sqrt(n)) if n else None, n_days=n)


def factor_stats(name: str, factor_id: str | None, values: pd.Series, fwd: pd.Series | None,
                 quantiles: int = QUANTILES) -> FactorStats:
    """All statistics of one factor; `fwd` None means no forward returns are available (coverage etc. only)."""
    v = values.astype("float64").replace([np.inf, -np.inf], np.nan).sort_index()
    v = v[~v.index.duplicated(keep="last")]
    finite = v.dropna()
    dates = v.index.get_level_values("datetime")
    base: dict[str, Any] = {
        "name": name, "factor_id": factor_id, "n_rows": int(v.size),
        "n_dates": int(dates.nunique()), "n_instruments": int(v.index.get_level_values("instrument").nunique()),
        "coverage": _finite(finite.size / v.size) if v.size else None,
    }
    # rank autocorrelation and top-quantile turnover need no returns
    fdates = finite.index.get_level_values("datetime")
    pct = finite.groupby(fdates).rank(pct=True)
    bucket = np.ceil(pct * quantiles).clip(1, quantiles).astype("int64")
    prev = pct.groupby(level="instrument", sort=False).shift(1)
    both = pd.concat([pct.rename("r"), prev.rename("p")], axis=1).dropna()
    ac = _daily_corr(both["r"], both["p"]) if len(both) else pd.Series(dtype="float64")
    base["autocorrelation"] = _finite(float(ac.mean())) if len(ac) else None
    top = (bucket == quantiles).astype("float64")
    was_top = top.groupby(level="instrument", sort=False).shift(1)
    tt = pd.DataFrame({"top": top, "was": was_top}).dropna()
    tt = tt[tt["top"] == 1.0]
    if len(tt):
        churn = (1.0 - tt["was"]).groupby(tt.index.get_level_values("datetime")).mean()
        base["turnover"] = _finite(float(churn.mean()))
    if fwd is None:
        return FactorStats(status="no_forward_returns", note="no daily_pv.h5 found for forward returns", **base)
    joined = pd.concat([finite.rename("f"), fwd.rename("y")], axis=1, join="inner").dropna()
    if joined.empty:
        return FactorStats(status="ok", note="no date where factor and forward return overlap", **base)
    jdates = joined.index.get_level_values("datetime")
    ic = _daily_corr(joined["f"], joined["y"])
    ranks = joined.groupby(jdates).rank()
    ric = _daily_corr(ranks["f"], ranks["y"])
    jb = np.ceil(joined["f"].groupby(jdates).rank(pct=True) * quantiles).clip(1, quantiles).astype("int64")
    qr = joined["y"].groupby([jdates, jb.to_numpy()]).mean().groupby(level=1).mean()
    qret = [_finite(float(qr[q])) if q in qr.index else None for q in range(1, quantiles + 1)]
    spread = qret[-1] - qret[0] if qret[-1] is not None and qret[0] is not None else None
    return FactorStats(status="ok", ic=_series_stats(ic), rank_ic=_series_stats(ric), quantile_returns=qret,
                       top_minus_bottom=_finite(spread) if spread is not None else None, **base)
