"""Curated cross-sectional factors: each date's instruments compared with one another (ranks, z-scores, buckets).

Ranks are percentiles (average rank of ties / number of valid values); z-scores use the date's mean and sample std
(ddof=1), NaN with fewer than two valid values. Time-series inputs come from ``momentum`` and ``volume``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import momentum, volume
from ._registry import factor
from ._ts import _out, _panel, full, ret


def _by_date(s: pd.Series) -> pd.core.groupby.SeriesGroupBy:
    return s.groupby(level="datetime", sort=False)


def cs_rank(s: pd.Series) -> pd.Series:
    """Percentile rank within the date."""
    return _by_date(s.astype("float64")).rank(pct=True)


def cs_zscore(s: pd.Series) -> pd.Series:
    """(x - date mean) / date std (ddof=1)."""
    x = s.astype("float64")
    g = _by_date(x)
    return (x - g.transform("mean")) / g.transform("std")


@factor("CS_RANK_MOM_20")
def factor_cs_rank_mom_20(df: pd.DataFrame) -> pd.Series:
    """CS_RANK_MOM_20 = cross-sectional percentile of MOM_20 (close / close[t-20] - 1)."""
    return _out(cs_rank(momentum.factor_mom_20(df)), df, "CS_RANK_MOM_20")


@factor("CS_ZSCORE_MOM_20")
def factor_cs_zscore_mom_20(df: pd.DataFrame) -> pd.Series:
    """CS_ZSCORE_MOM_20 = cross-sectional z-score of MOM_20."""
    return _out(cs_zscore(momentum.factor_mom_20(df)), df, "CS_ZSCORE_MOM_20")


@factor("CS_WINSOR_ZSCORE_MOM_20")
def factor_cs_winsor_zscore_mom_20(df: pd.DataFrame) -> pd.Series:
    """CS_WINSOR_ZSCORE_MOM_20 = clip(cross-sectional z-score of MOM_20, -3, 3)."""
    return _out(cs_zscore(momentum.factor_mom_20(df)).clip(-3, 3), df, "CS_WINSOR_ZSCORE_MOM_20")


@factor("CS_DEMEANED_RET_1")
def factor_cs_demeaned_ret_1(df: pd.DataFrame) -> pd.Series:
    """CS_DEMEANED_RET_1 = r - mean of r over the date's instruments, r the daily return."""
    r = ret(_panel(df)["$close"], 1)
    return _out(r - _by_date(r).transform("mean"), df, "CS_DEMEANED_RET_1")


@factor("CS_RANK_VOLATILITY_20")
def factor_cs_rank_volatility_20(df: pd.DataFrame) -> pd.Series:
    """CS_RANK_VOLATILITY_20 = cross-sectional percentile of std(r, 20) (std ddof=1; low-volatility anomaly)."""
    vol = full(ret(_panel(df)["$close"], 1), 20, lambda r: r.std())
    return _out(cs_rank(vol), df, "CS_RANK_VOLATILITY_20")


@factor("CS_RANK_DOLLAR_VOLUME_20")
def factor_cs_rank_dollar_volume_20(df: pd.DataFrame) -> pd.Series:
    """CS_RANK_DOLLAR_VOLUME_20 = cross-sectional percentile of LOG_DOLLAR_VOLUME_20 (a size / liquidity proxy)."""
    return _out(cs_rank(volume.factor_log_dollar_volume_20(df)), df, "CS_RANK_DOLLAR_VOLUME_20")


@factor("CS_RANK_AMIHUD_20")
def factor_cs_rank_amihud_20(df: pd.DataFrame) -> pd.Series:
    """CS_RANK_AMIHUD_20 = cross-sectional percentile of AMIHUD_20."""
    return _out(cs_rank(volume.factor_amihud_20(df)), df, "CS_RANK_AMIHUD_20")


@factor("CS_ZSCORE_TURNOVER_5_60")
def factor_cs_zscore_turnover_5_60(df: pd.DataFrame) -> pd.Series:
    """CS_ZSCORE_TURNOVER_5_60 = cross-sectional z-score of TURNOVER_RATIO_5_60."""
    return _out(cs_zscore(volume.factor_turnover_ratio_5_60(df)), df, "CS_ZSCORE_TURNOVER_5_60")


@factor("CS_ZSCORE_REVERSAL_5")
def factor_cs_zscore_reversal_5(df: pd.DataFrame) -> pd.Series:
    """CS_ZSCORE_REVERSAL_5 = cross-sectional z-score of REVERSAL_5 (-(close / close[t-5] - 1))."""
    return _out(cs_zscore(momentum.factor_reversal_5(df)), df, "CS_ZSCORE_REVERSAL_5")


@factor("CS_RANK_INTRADAY_RET")
def factor_cs_rank_intraday_ret(df: pd.DataFrame) -> pd.Series:
    """CS_RANK_INTRADAY_RET = cross-sectional percentile of close / open - 1."""
    p = _panel(df)
    return _out(cs_rank(p["$close"].astype("float64") / p["$open"].astype("float64") - 1), df, "CS_RANK_INTRADAY_RET")


@factor("CS_RANK_PRICE_LEVEL")
def factor_cs_rank_price_level(df: pd.DataFrame) -> pd.Series:
    """CS_RANK_PRICE_LEVEL = cross-sectional percentile of close / factor (the unadjusted price)."""
    p = _panel(df)
    return _out(cs_rank(p["$close"].astype("float64") / p["$factor"].astype("float64")), df, "CS_RANK_PRICE_LEVEL")


@factor("CS_QUINTILE_MOM_12_1")
def factor_cs_quintile_mom_12_1(df: pd.DataFrame) -> pd.Series:
    """CS_QUINTILE_MOM_12_1 = ceil(5 * cross-sectional percentile of MOM_12_1), a bucket 1 (losers) .. 5 (winners)."""
    return _out(np.ceil(5 * cs_rank(momentum.factor_mom_12_1(df))), df, "CS_QUINTILE_MOM_12_1")
