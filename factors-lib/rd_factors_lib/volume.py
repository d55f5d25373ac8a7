"""Curated volume and liquidity factors (time series, one instrument at a time). Windows are in trading rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._registry import factor
from ._ts import _out, _panel, full, ref, ret


def _mean(s: pd.Series, d: int) -> pd.Series:
    return full(s, d, lambda r: r.mean())


@factor("AMIHUD_20")
def factor_amihud_20(df: pd.DataFrame) -> pd.Series:
    """AMIHUD_20 = 1e9 * mean(|r| / (close * volume), 20), r the daily return (Amihud illiquidity)."""
    p = _panel(df)
    c, v = p["$close"].astype("float64"), p["$volume"].astype("float64")
    return _out(1e9 * _mean(ret(c, 1).abs() / (c * v), 20), df, "AMIHUD_20")


@factor("TURNOVER_RATIO_5_60")
def factor_turnover_ratio_5_60(df: pd.DataFrame) -> pd.Series:
    """TURNOVER_RATIO_5_60 = mean(volume, 5) / mean(volume, 60) (recent vs usual trading activity)."""
    v = _panel(df)["$volume"]
    return _out(_mean(v, 5) / _mean(v, 60), df, "TURNOVER_RATIO_5_60")


@factor("TURNOVER_RATIO_1_20")
def factor_turnover_ratio_1_20(df: pd.DataFrame) -> pd.Series:
    """TURNOVER_RATIO_1_20 = volume / mean(volume, 20)."""
    v = _panel(df)["$volume"].astype("float64")
    return _out(v / _mean(v, 20), df, "TURNOVER_RATIO_1_20")


@factor("VOLUME_SURPRISE_20")
def factor_volume_surprise_20(df: pd.DataFrame) -> pd.Series:
    """VOLUME_SURPRISE_20 = (log v - mean(log v[t-20..t-1])) / std(log v[t-20..t-1]) (std ddof=1): today's volume
    against the previous 20 days."""
    lv = np.log(_panel(df)["$volume"].astype("float64"))
    past = ref(lv, 1)
    return _out((lv - _mean(past, 20)) / full(past, 20, lambda r: r.std()), df, "VOLUME_SURPRISE_20")


@factor("LOG_DOLLAR_VOLUME_20")
def factor_log_dollar_volume_20(df: pd.DataFrame) -> pd.Series:
    """LOG_DOLLAR_VOLUME_20 = log(mean(close * volume, 20))."""
    p = _panel(df)
    dv = p["$close"].astype("float64") * p["$volume"].astype("float64")
    return _out(np.log(_mean(dv, 20)), df, "LOG_DOLLAR_VOLUME_20")


@factor("VOLUME_CV_20")
def factor_volume_cv_20(df: pd.DataFrame) -> pd.Series:
    """VOLUME_CV_20 = std(volume, 20) / mean(volume, 20) (std ddof=1)."""
    v = _panel(df)["$volume"]
    return _out(full(v, 20, lambda r: r.std()) / _mean(v, 20), df, "VOLUME_CV_20")


@factor("LOG_VOLUME_STD_20")
def factor_log_volume_std_20(df: pd.DataFrame) -> pd.Series:
    """LOG_VOLUME_STD_20 = std(log volume, 20) (std ddof=1)."""
    lv = np.log(_panel(df)["$volume"].astype("float64"))
    return _out(full(lv, 20, lambda r: r.std()), df, "LOG_VOLUME_STD_20")


@factor("OBV_RATIO_20")
def factor_obv_ratio_20(df: pd.DataFrame) -> pd.Series:
    """OBV_RATIO_20 = sum(sign(r) * volume, 20) / sum(volume, 20) (on-balance volume, normalised)."""
    p = _panel(df)
    v = p["$volume"].astype("float64")
    signed = np.sign(ret(p["$close"], 1)) * v
    return _out(full(signed, 20, lambda r: r.sum()) / full(v, 20, lambda r: r.sum()), df, "OBV_RATIO_20")


@factor("VWAP_DEV_5")
def factor_vwap_dev_5(df: pd.DataFrame) -> pd.Series:
    """VWAP_DEV_5 = mean(close / vwap - 1, 5)."""
    p = _panel(df)
    return _out(_mean(p["$close"].astype("float64") / p["$vwap"].astype("float64") - 1, 5), df, "VWAP_DEV_5")


@factor("VOLUME_TO_MAX_20")
def factor_volume_to_max_20(df: pd.DataFrame) -> pd.Series:
    """VOLUME_TO_MAX_20 = volume / max(volume, 20)."""
    v = _panel(df)["$volume"].astype("float64")
    return _out(v / full(v, 20, lambda r: r.max()), df, "VOLUME_TO_MAX_20")


@factor("PV_CORR_20")
def factor_pv_corr_20(df: pd.DataFrame) -> pd.Series:
    """PV_CORR_20 = Pearson correlation of the daily return and log volume over the valid pairs of 20 rows."""
    p = _panel(df)
    frame = pd.DataFrame({"r": ret(p["$close"], 1), "lv": np.log(p["$volume"].astype("float64"))})
    corr = frame.groupby(level="instrument", sort=False, group_keys=False).apply(
        lambda g: g["r"].rolling(20, min_periods=1).corr(g["lv"])
    )
    history = frame.groupby(level="instrument", sort=False).cumcount() >= 19
    return _out(corr.where(history), df, "PV_CORR_20")
