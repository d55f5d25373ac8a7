"""Curated momentum and trend factors (time series, one instrument at a time). Windows are in trading rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._registry import factor
from ._ts import _out, _panel, ewm, full, ref, ret


@factor("MOM_12_1")
def factor_mom_12_1(df: pd.DataFrame) -> pd.Series:
    """MOM_12_1 = close[t-21] / close[t-252] - 1 (12-month momentum skipping the last month)."""
    c = _panel(df)["$close"].astype("float64")
    return _out(ref(c, 21) / ref(c, 252) - 1, df, "MOM_12_1")


@factor("MOM_20")
def factor_mom_20(df: pd.DataFrame) -> pd.Series:
    """MOM_20 = close / close[t-20] - 1."""
    return _out(ret(_panel(df)["$close"], 20), df, "MOM_20")


@factor("MOM_60")
def factor_mom_60(df: pd.DataFrame) -> pd.Series:
    """MOM_60 = close / close[t-60] - 1."""
    return _out(ret(_panel(df)["$close"], 60), df, "MOM_60")


@factor("VOL_ADJ_MOM_60")
def factor_vol_adj_mom_60(df: pd.DataFrame) -> pd.Series:
    """VOL_ADJ_MOM_60 = (close / close[t-60] - 1) / (std(r, 60) * sqrt(60)), r the daily return (std ddof=1)."""
    c = _panel(df)["$close"]
    vol = full(ret(c, 1), 60, lambda r: r.std()) * np.sqrt(60)
    return _out(ret(c, 60) / vol, df, "VOL_ADJ_MOM_60")


@factor("REVERSAL_5")
def factor_reversal_5(df: pd.DataFrame) -> pd.Series:
    """REVERSAL_5 = -(close / close[t-5] - 1) (short-term reversal)."""
    return _out(-ret(_panel(df)["$close"], 5), df, "REVERSAL_5")


@factor("RSI_14")
def factor_rsi_14(df: pd.DataFrame) -> pd.Series:
    """RSI_14 = 100 * sum(gains, 14) / (sum(gains, 14) + sum(losses, 14)), gains/losses of close over 1 day
    (simple-average RSI; NaN when the 14 days hold no move)."""
    c = _panel(df)["$close"].astype("float64")
    move = c - ref(c, 1)
    gain = full(move.clip(lower=0), 14, lambda r: r.sum())
    loss = full((-move).clip(lower=0), 14, lambda r: r.sum())
    return _out((100 * gain / (gain + loss)).where(gain + loss > 0), df, "RSI_14")


@factor("MACD_12_26")
def factor_macd_12_26(df: pd.DataFrame) -> pd.Series:
    """MACD_12_26 = (EMA(close, 12) - EMA(close, 26)) / close, EMA recursive with alpha = 2/(span+1)."""
    c = _panel(df)["$close"].astype("float64")
    return _out((ewm(c, 12) - ewm(c, 26)) / c, df, "MACD_12_26")


@factor("PRICE_TO_HIGH_252")
def factor_price_to_high_252(df: pd.DataFrame) -> pd.Series:
    """PRICE_TO_HIGH_252 = close / max(high, 252) (George-Hwang 52-week-high ratio)."""
    p = _panel(df)
    return _out(p["$close"].astype("float64") / full(p["$high"], 252, lambda r: r.max()), df, "PRICE_TO_HIGH_252")


@factor("MA_CROSS_5_20")
def factor_ma_cross_5_20(df: pd.DataFrame) -> pd.Series:
    """MA_CROSS_5_20 = mean(close, 5) / mean(close, 20) - 1."""
    c = _panel(df)["$close"]
    return _out(full(c, 5, lambda r: r.mean()) / full(c, 20, lambda r: r.mean()) - 1, df, "MA_CROSS_5_20")


@factor("MOM_ACCEL_20")
def factor_mom_accel_20(df: pd.DataFrame) -> pd.Series:
    """MOM_ACCEL_20 = MOM_20 - MOM_20[t-20] (momentum acceleration)."""
    m = ret(_panel(df)["$close"], 20)
    return _out(m - ref(m, 20), df, "MOM_ACCEL_20")


@factor("INTRADAY_MOM_20")
def factor_intraday_mom_20(df: pd.DataFrame) -> pd.Series:
    """INTRADAY_MOM_20 = mean(close / open - 1, 20)."""
    p = _panel(df)
    x = p["$close"].astype("float64") / p["$open"].astype("float64") - 1
    return _out(full(x, 20, lambda r: r.mean()), df, "INTRADAY_MOM_20")


@factor("OVERNIGHT_MOM_20")
def factor_overnight_mom_20(df: pd.DataFrame) -> pd.Series:
    """OVERNIGHT_MOM_20 = mean(open / close[t-1] - 1, 20)."""
    p = _panel(df)
    x = p["$open"].astype("float64") / ref(p["$close"].astype("float64"), 1) - 1
    return _out(full(x, 20, lambda r: r.mean()), df, "OVERNIGHT_MOM_20")


@factor("TREND_SLOPE_20")
def factor_trend_slope_20(df: pd.DataFrame) -> pd.Series:
    """TREND_SLOPE_20 = OLS slope of log(close) on its position 1..20 in the last 20 rows (daily log-trend)."""
    y = np.log(_panel(df)["$close"].astype("float64"))
    return _out(full(y, 20, lambda r: r.apply(_slope_on_position, raw=True)), df, "TREND_SLOPE_20")


def _slope_on_position(w: np.ndarray) -> float:
    """OLS slope of the window's valid values on their positions 1..len(w); NaN with fewer than two."""
    ok = ~np.isnan(w)
    if ok.sum() < 2:
        return float("nan")
    t = np.arange(1, len(w) + 1, dtype="float64")[ok]
    tc = t - t.mean()
    return float(np.dot(tc, w[ok] - w[ok].mean()) / np.dot(tc, tc))
