"""Qlib's 158 Alpha158 factors, one plain pandas/numpy function each: the readable reference.

Semantics follow pyqlib 0.9.7 exactly, because the platform's implementations are checked against these:

- every window runs over one instrument's own rows (listing to delisting, suspended days kept as NaN rows);
- a rolling statistic over ``d`` days uses the valid values among the last ``d`` rows (at least one), like
  ``Series.rolling(d, min_periods=1)``; a window with no valid value is NaN;
- element-wise arithmetic stays in the input's dtype (Qlib's data is float32), rolling statistics are float64;
- ``IdxMax``/``IdxMin`` count a suspended day inside the window as the extreme (``ndarray.argmax`` on a window
  holding NaN returns the first NaN, which is what pyqlib computes);
- ``Corr`` is NaN where either side's rolling standard deviation is within 2e-5 of 0.

Speed is the engine's job (``rdbridge.engine``); these functions are written to be read and to be right.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from ._registry import factor

EPS = 1e-12
"""Qlib's guard against division by a zero range or a zero volume."""

WINDOWS = (5, 10, 20, 30, 60)


# --- plumbing: one instrument at a time, results back on the caller's index ----------------------------------------


def _panel(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` in (instrument, datetime) order, so each instrument's rows are consecutive and in time order."""
    return df.sort_index(level=["instrument", "datetime"])


def _out(values: pd.Series, df: pd.DataFrame, name: str) -> pd.Series:
    """The result on ``df``'s own index and row order, as float64, named after the factor."""
    return values.reindex(df.index).astype("float64").rename(name)


def _by_instrument(s: pd.Series) -> pd.core.groupby.SeriesGroupBy:
    return s.groupby(level="instrument", sort=False)


def ref(s: pd.Series, n: int) -> pd.Series:
    """``Ref(s, n)``: the value ``n`` rows earlier for the same instrument."""
    return _by_instrument(s).shift(n)


def rolling(s: pd.Series, d: int, stat: Callable[[pd.core.window.Rolling], pd.Series]) -> pd.Series:
    """``stat`` of the trailing ``d``-row window (at least one valid value) within each instrument."""
    out = stat(_by_instrument(s.astype("float64")).rolling(d, min_periods=1))
    return out.droplevel(0)


def mean(s: pd.Series, d: int) -> pd.Series:
    return rolling(s, d, lambda r: r.mean())


def total(s: pd.Series, d: int) -> pd.Series:
    return rolling(s, d, lambda r: r.sum())


def std(s: pd.Series, d: int) -> pd.Series:
    """Sample standard deviation (ddof=1): NaN with a single valid value."""
    return rolling(s, d, lambda r: r.std())


def highest(s: pd.Series, d: int) -> pd.Series:
    return rolling(s, d, lambda r: r.max())


def lowest(s: pd.Series, d: int) -> pd.Series:
    return rolling(s, d, lambda r: r.min())


def quantile(s: pd.Series, d: int, q: float) -> pd.Series:
    """Linear-interpolated quantile of the window's valid values."""
    return rolling(s, d, lambda r: r.quantile(q))


def pct_rank(s: pd.Series, d: int) -> pd.Series:
    """Percentile (average rank / valid count) of today's value within the window; NaN when today is NaN."""
    return rolling(s, d, lambda r: r.rank(pct=True))


def corr(a: pd.Series, b: pd.Series, d: int) -> pd.Series:
    """Rolling Pearson correlation over the rows where both are valid; NaN where either side is flat."""

    def one(g: pd.DataFrame) -> pd.Series:
        return g["a"].rolling(d, min_periods=1).corr(g["b"])

    frame = pd.DataFrame({"a": a.astype("float64"), "b": b.astype("float64")})
    correlation = frame.groupby(level="instrument", sort=False, group_keys=False).apply(one)
    flat = np.isclose(std(a, d), 0, atol=2e-5) | np.isclose(std(b, d), 0, atol=2e-5)
    return correlation.mask(flat)


def _windows(x: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """One instrument's trailing windows as a (rows, d) matrix, and how many leading cells precede its listing."""
    padded = np.concatenate([np.full(d - 1, np.nan), x.astype("float64")])
    before_listing = np.maximum(d - 1 - np.arange(len(x)), 0)
    return np.lib.stride_tricks.sliding_window_view(padded, d), before_listing


def _per_instrument(s: pd.Series, fn: Callable[[np.ndarray], np.ndarray]) -> pd.Series:
    return _by_instrument(s).transform(lambda x: pd.Series(fn(x.to_numpy()), index=x.index))


def _line_fit(w: np.ndarray) -> dict[str, np.ndarray]:
    """Least-squares fit of each window's valid values on their position 1..d in the window."""
    d = w.shape[1]
    valid = ~np.isnan(w)
    n = valid.sum(axis=1)
    t = np.where(valid, np.arange(1, d + 1, dtype="float64"), 0.0)
    y = np.where(valid, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_mean = t.sum(axis=1) / n
        y_mean = y.sum(axis=1) / n
        dt = np.where(valid, t - t_mean[:, None], 0.0)
        dy = np.where(valid, y - y_mean[:, None], 0.0)
        sxx, sxy, syy = (dt * dt).sum(axis=1), (dt * dy).sum(axis=1), (dy * dy).sum(axis=1)
        slope = sxy / sxx
    return {"t_mean": t_mean, "y_mean": y_mean, "slope": slope, "sxx": sxx, "sxy": sxy, "syy": syy}


def slope(s: pd.Series, d: int) -> pd.Series:
    """``Slope``: the per-day trend of a line fitted to the window's valid values."""
    return _per_instrument(s, lambda x: _line_fit(_windows(x, d)[0])["slope"])


def rsquare(s: pd.Series, d: int) -> pd.Series:
    """``Rsquare``: R² of that line (NaN for a flat window or a single value)."""

    def r2(x: np.ndarray) -> np.ndarray:
        f = _line_fit(_windows(x, d)[0])
        with np.errstate(invalid="ignore", divide="ignore"):
            return f["sxy"] ** 2 / (f["sxx"] * f["syy"])

    return _per_instrument(s, r2)


def resi(s: pd.Series, d: int) -> pd.Series:
    """``Resi``: today's value minus the fitted line's value at today (position d)."""

    def residual(x: np.ndarray) -> np.ndarray:
        w = _windows(x, d)[0]
        f = _line_fit(w)
        return w[:, -1] - (f["y_mean"] + f["slope"] * (d - f["t_mean"]))

    return _per_instrument(s, residual)


def _arg_extreme(s: pd.Series, d: int, largest: bool) -> pd.Series:
    """1-based position in the window of the first maximum (or minimum); the window starts at listing."""

    def position(x: np.ndarray) -> np.ndarray:
        w, before = _windows(x, d)
        listed = np.arange(d)[None, :] >= before[:, None]
        w = np.where(listed, w, -np.inf if largest else np.inf)
        k = np.argmax(w, axis=1) if largest else np.argmin(w, axis=1)
        out = (k - before + 1).astype("float64")
        out[~(listed & ~np.isnan(w)).any(axis=1)] = np.nan
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _per_instrument(s, position)


def idxmax(s: pd.Series, d: int) -> pd.Series:
    return _arg_extreme(s, d, largest=True)


def idxmin(s: pd.Series, d: int) -> pd.Series:
    return _arg_extreme(s, d, largest=False)


# --- the formulas: one function per family, taking the (instrument, datetime)-ordered panel ------------------------

Family = Callable[..., pd.Series]


def _fields(p: pd.DataFrame) -> tuple[pd.Series, ...]:
    return p["$open"], p["$high"], p["$low"], p["$close"], p["$volume"]


def kmid(p: pd.DataFrame) -> pd.Series:
    o, h, l, c, v = _fields(p)
    return (c - o) / o


def klen(p: pd.DataFrame) -> pd.Series:
    o, h, l, c, v = _fields(p)
    return (h - l) / o


def kmid2(p: pd.DataFrame) -> pd.Series:
    o, h, l, c, v = _fields(p)
    return (c - o) / (h - l + EPS)


def kup(p: pd.DataFrame) -> pd.Series:
    o, h, l, c, v = _fields(p)
    return (h - np.maximum(o, c)) / o


def kup2(p: pd.DataFrame) -> pd.Series:
    o, h, l, c, v = _fields(p)
    return (h - np.maximum(o, c)) / (h - l + EPS)


def klow(p: pd.DataFrame) -> pd.Series:
    o, h, l, c, v = _fields(p)
    return (np.minimum(o, c) - l) / o


def klow2(p: pd.DataFrame) -> pd.Series:
    o, h, l, c, v = _fields(p)
    return (np.minimum(o, c) - l) / (h - l + EPS)


def ksft(p: pd.DataFrame) -> pd.Series:
    o, h, l, c, v = _fields(p)
    return (2 * c - h - l) / o


def ksft2(p: pd.DataFrame) -> pd.Series:
    o, h, l, c, v = _fields(p)
    return (2 * c - h - l) / (h - l + EPS)


def price_over_close(p: pd.DataFrame, field: str) -> pd.Series:
    return p[field] / p["$close"]


def roc(p: pd.DataFrame, d: int) -> pd.Series:
    return ref(p["$close"], d) / p["$close"]


def ma(p: pd.DataFrame, d: int) -> pd.Series:
    return mean(p["$close"], d) / p["$close"]


def std_(p: pd.DataFrame, d: int) -> pd.Series:
    return std(p["$close"], d) / p["$close"]


def beta(p: pd.DataFrame, d: int) -> pd.Series:
    return slope(p["$close"], d) / p["$close"]


def rsqr(p: pd.DataFrame, d: int) -> pd.Series:
    return rsquare(p["$close"], d)


def resi_(p: pd.DataFrame, d: int) -> pd.Series:
    return resi(p["$close"], d) / p["$close"]


def max_(p: pd.DataFrame, d: int) -> pd.Series:
    return highest(p["$high"], d) / p["$close"]


def min_(p: pd.DataFrame, d: int) -> pd.Series:
    return lowest(p["$low"], d) / p["$close"]


def qtlu(p: pd.DataFrame, d: int) -> pd.Series:
    return quantile(p["$close"], d, 0.8) / p["$close"]


def qtld(p: pd.DataFrame, d: int) -> pd.Series:
    return quantile(p["$close"], d, 0.2) / p["$close"]


def rank(p: pd.DataFrame, d: int) -> pd.Series:
    return pct_rank(p["$close"], d)


def rsv(p: pd.DataFrame, d: int) -> pd.Series:
    lo, hi = lowest(p["$low"], d), highest(p["$high"], d)
    return (p["$close"] - lo) / (hi - lo + EPS)


def imax(p: pd.DataFrame, d: int) -> pd.Series:
    return idxmax(p["$high"], d) / d


def imin(p: pd.DataFrame, d: int) -> pd.Series:
    return idxmin(p["$low"], d) / d


def imxd(p: pd.DataFrame, d: int) -> pd.Series:
    return (idxmax(p["$high"], d) - idxmin(p["$low"], d)) / d


def corr_(p: pd.DataFrame, d: int) -> pd.Series:
    return corr(p["$close"], np.log(p["$volume"] + 1), d)


def cord(p: pd.DataFrame, d: int) -> pd.Series:
    c, v = p["$close"], p["$volume"]
    return corr(c / ref(c, 1), np.log(v / ref(v, 1) + 1), d)


def _up_day(p: pd.DataFrame) -> pd.Series:
    return (p["$close"] > ref(p["$close"], 1)).astype("float64")


def _down_day(p: pd.DataFrame) -> pd.Series:
    return (p["$close"] < ref(p["$close"], 1)).astype("float64")


def cntp(p: pd.DataFrame, d: int) -> pd.Series:
    return mean(_up_day(p), d)


def cntn(p: pd.DataFrame, d: int) -> pd.Series:
    return mean(_down_day(p), d)


def cntd(p: pd.DataFrame, d: int) -> pd.Series:
    return mean(_up_day(p), d) - mean(_down_day(p), d)


def _moves(s: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Gain (>= 0), loss (>= 0) and absolute change of ``s`` from the previous row."""
    prev = ref(s, 1)
    return np.maximum(s - prev, 0), np.maximum(prev - s, 0), np.abs(s - prev)


def sump(p: pd.DataFrame, d: int) -> pd.Series:
    gain, _, move = _moves(p["$close"])
    return total(gain, d) / (total(move, d) + EPS)


def sumn(p: pd.DataFrame, d: int) -> pd.Series:
    _, loss, move = _moves(p["$close"])
    return total(loss, d) / (total(move, d) + EPS)


def sumd(p: pd.DataFrame, d: int) -> pd.Series:
    gain, loss, move = _moves(p["$close"])
    return (total(gain, d) - total(loss, d)) / (total(move, d) + EPS)


def vma(p: pd.DataFrame, d: int) -> pd.Series:
    return mean(p["$volume"], d) / (p["$volume"] + EPS)


def vstd(p: pd.DataFrame, d: int) -> pd.Series:
    return std(p["$volume"], d) / (p["$volume"] + EPS)


def wvma(p: pd.DataFrame, d: int) -> pd.Series:
    c = p["$close"]
    x = np.abs(c / ref(c, 1) - 1) * p["$volume"]
    return std(x, d) / (mean(x, d) + EPS)


def vsump(p: pd.DataFrame, d: int) -> pd.Series:
    gain, _, move = _moves(p["$volume"])
    return total(gain, d) / (total(move, d) + EPS)


def vsumn(p: pd.DataFrame, d: int) -> pd.Series:
    _, loss, move = _moves(p["$volume"])
    return total(loss, d) / (total(move, d) + EPS)


def vsumd(p: pd.DataFrame, d: int) -> pd.Series:
    gain, loss, move = _moves(p["$volume"])
    return (total(gain, d) - total(loss, d)) / (total(move, d) + EPS)


def _compute(df: pd.DataFrame, name: str, family: Family, *args: object) -> pd.Series:
    return _out(family(_panel(df), *args), df, name)


# --- the 158 factors, in Qlib's order ---------------------------------------------------------------------------------


@factor("KMID")
def factor_kmid(df: pd.DataFrame) -> pd.Series:
    """KMID = ($close-$open)/$open"""
    return _compute(df, "KMID", kmid)


@factor("KLEN")
def factor_klen(df: pd.DataFrame) -> pd.Series:
    """KLEN = ($high-$low)/$open"""
    return _compute(df, "KLEN", klen)


@factor("KMID2")
def factor_kmid2(df: pd.DataFrame) -> pd.Series:
    """KMID2 = ($close-$open)/($high-$low+1e-12)"""
    return _compute(df, "KMID2", kmid2)


@factor("KUP")
def factor_kup(df: pd.DataFrame) -> pd.Series:
    """KUP = ($high-Greater($open, $close))/$open"""
    return _compute(df, "KUP", kup)


@factor("KUP2")
def factor_kup2(df: pd.DataFrame) -> pd.Series:
    """KUP2 = ($high-Greater($open, $close))/($high-$low+1e-12)"""
    return _compute(df, "KUP2", kup2)


@factor("KLOW")
def factor_klow(df: pd.DataFrame) -> pd.Series:
    """KLOW = (Less($open, $close)-$low)/$open"""
    return _compute(df, "KLOW", klow)


@factor("KLOW2")
def factor_klow2(df: pd.DataFrame) -> pd.Series:
    """KLOW2 = (Less($open, $close)-$low)/($high-$low+1e-12)"""
    return _compute(df, "KLOW2", klow2)


@factor("KSFT")
def factor_ksft(df: pd.DataFrame) -> pd.Series:
    """KSFT = (2*$close-$high-$low)/$open"""
    return _compute(df, "KSFT", ksft)


@factor("KSFT2")
def factor_ksft2(df: pd.DataFrame) -> pd.Series:
    """KSFT2 = (2*$close-$high-$low)/($high-$low+1e-12)"""
    return _compute(df, "KSFT2", ksft2)


@factor("OPEN0")
def factor_open0(df: pd.DataFrame) -> pd.Series:
    """OPEN0 = $open/$close"""
    return _compute(df, "OPEN0", price_over_close, "$open")


@factor("HIGH0")
def factor_high0(df: pd.DataFrame) -> pd.Series:
    """HIGH0 = $high/$close"""
    return _compute(df, "HIGH0", price_over_close, "$high")


@factor("LOW0")
def factor_low0(df: pd.DataFrame) -> pd.Series:
    """LOW0 = $low/$close"""
    return _compute(df, "LOW0", price_over_close, "$low")


@factor("VWAP0")
def factor_vwap0(df: pd.DataFrame) -> pd.Series:
    """VWAP0 = $vwap/$close"""
    return _compute(df, "VWAP0", price_over_close, "$vwap")


@factor("ROC5")
def factor_roc5(df: pd.DataFrame) -> pd.Series:
    """ROC5 = Ref($close, 5)/$close"""
    return _compute(df, "ROC5", roc, 5)


@factor("ROC10")
def factor_roc10(df: pd.DataFrame) -> pd.Series:
    """ROC10 = Ref($close, 10)/$close"""
    return _compute(df, "ROC10", roc, 10)


@factor("ROC20")
def factor_roc20(df: pd.DataFrame) -> pd.Series:
    """ROC20 = Ref($close, 20)/$close"""
    return _compute(df, "ROC20", roc, 20)


@factor("ROC30")
def factor_roc30(df: pd.DataFrame) -> pd.Series:
    """ROC30 = Ref($close, 30)/$close"""
    return _compute(df, "ROC30", roc, 30)


@factor("ROC60")
def factor_roc60(df: pd.DataFrame) -> pd.Series:
    """ROC60 = Ref($close, 60)/$close"""
    return _compute(df, "ROC60", roc, 60)


@factor("MA5")
def factor_ma5(df: pd.DataFrame) -> pd.Series:
    """MA5 = Mean($close, 5)/$close"""
    return _compute(df, "MA5", ma, 5)


@factor("MA10")
def factor_ma10(df: pd.DataFrame) -> pd.Series:
    """MA10 = Mean($close, 10)/$close"""
    return _compute(df, "MA10", ma, 10)


@factor("MA20")
def factor_ma20(df: pd.DataFrame) -> pd.Series:
    """MA20 = Mean($close, 20)/$close"""
    return _compute(df, "MA20", ma, 20)


@factor("MA30")
def factor_ma30(df: pd.DataFrame) -> pd.Series:
    """MA30 = Mean($close, 30)/$close"""
    return _compute(df, "MA30", ma, 30)


@factor("MA60")
def factor_ma60(df: pd.DataFrame) -> pd.Series:
    """MA60 = Mean($close, 60)/$close"""
    return _compute(df, "MA60", ma, 60)


@factor("STD5")
def factor_std5(df: pd.DataFrame) -> pd.Series:
    """STD5 = Std($close, 5)/$close"""
    return _compute(df, "STD5", std_, 5)


@factor("STD10")
def factor_std10(df: pd.DataFrame) -> pd.Series:
    """STD10 = Std($close, 10)/$close"""
    return _compute(df, "STD10", std_, 10)


@factor("STD20")
def factor_std20(df: pd.DataFrame) -> pd.Series:
    """STD20 = Std($close, 20)/$close"""
    return _compute(df, "STD20", std_, 20)


@factor("STD30")
def factor_std30(df: pd.DataFrame) -> pd.Series:
    """STD30 = Std($close, 30)/$close"""
    return _compute(df, "STD30", std_, 30)


@factor("STD60")
def factor_std60(df: pd.DataFrame) -> pd.Series:
    """STD60 = Std($close, 60)/$close"""
    return _compute(df, "STD60", std_, 60)


@factor("BETA5")
def factor_beta5(df: pd.DataFrame) -> pd.Series:
    """BETA5 = Slope($close, 5)/$close"""
    return _compute(df, "BETA5", beta, 5)


@factor("BETA10")
def factor_beta10(df: pd.DataFrame) -> pd.Series:
    """BETA10 = Slope($close, 10)/$close"""
    return _compute(df, "BETA10", beta, 10)


@factor("BETA20")
def factor_beta20(df: pd.DataFrame) -> pd.Series:
    """BETA20 = Slope($close, 20)/$close"""
    return _compute(df, "BETA20", beta, 20)


@factor("BETA30")
def factor_beta30(df: pd.DataFrame) -> pd.Series:
    """BETA30 = Slope($close, 30)/$close"""
    return _compute(df, "BETA30", beta, 30)


@factor("BETA60")
def factor_beta60(df: pd.DataFrame) -> pd.Series:
    """BETA60 = Slope($close, 60)/$close"""
    return _compute(df, "BETA60", beta, 60)


@factor("RSQR5")
def factor_rsqr5(df: pd.DataFrame) -> pd.Series:
    """RSQR5 = Rsquare($close, 5)"""
    return _compute(df, "RSQR5", rsqr, 5)


@factor("RSQR10")
def factor_rsqr10(df: pd.DataFrame) -> pd.Series:
    """RSQR10 = Rsquare($close, 10)"""
    return _compute(df, "RSQR10", rsqr, 10)


@factor("RSQR20")
def factor_rsqr20(df: pd.DataFrame) -> pd.Series:
    """RSQR20 = Rsquare($close, 20)"""
    return _compute(df, "RSQR20", rsqr, 20)


@factor("RSQR30")
def factor_rsqr30(df: pd.DataFrame) -> pd.Series:
    """RSQR30 = Rsquare($close, 30)"""
    return _compute(df, "RSQR30", rsqr, 30)


@factor("RSQR60")
def factor_rsqr60(df: pd.DataFrame) -> pd.Series:
    """RSQR60 = Rsquare($close, 60)"""
    return _compute(df, "RSQR60", rsqr, 60)


@factor("RESI5")
def factor_resi5(df: pd.DataFrame) -> pd.Series:
    """RESI5 = Resi($close, 5)/$close"""
    return _compute(df, "RESI5", resi_, 5)


@factor("RESI10")
def factor_resi10(df: pd.DataFrame) -> pd.Series:
    """RESI10 = Resi($close, 10)/$close"""
    return _compute(df, "RESI10", resi_, 10)


@factor("RESI20")
def factor_resi20(df: pd.DataFrame) -> pd.Series:
    """RESI20 = Resi($close, 20)/$close"""
    return _compute(df, "RESI20", resi_, 20)


@factor("RESI30")
def factor_resi30(df: pd.DataFrame) -> pd.Series:
    """RESI30 = Resi($close, 30)/$close"""
    return _compute(df, "RESI30", resi_, 30)


@factor("RESI60")
def factor_resi60(df: pd.DataFrame) -> pd.Series:
    """RESI60 = Resi($close, 60)/$close"""
    return _compute(df, "RESI60", resi_, 60)


@factor("MAX5")
def factor_max5(df: pd.DataFrame) -> pd.Series:
    """MAX5 = Max($high, 5)/$close"""
    return _compute(df, "MAX5", max_, 5)


@factor("MAX10")
def factor_max10(df: pd.DataFrame) -> pd.Series:
    """MAX10 = Max($high, 10)/$close"""
    return _compute(df, "MAX10", max_, 10)


@factor("MAX20")
def factor_max20(df: pd.DataFrame) -> pd.Series:
    """MAX20 = Max($high, 20)/$close"""
    return _compute(df, "MAX20", max_, 20)


@factor("MAX30")
def factor_max30(df: pd.DataFrame) -> pd.Series:
    """MAX30 = Max($high, 30)/$close"""
    return _compute(df, "MAX30", max_, 30)


@factor("MAX60")
def factor_max60(df: pd.DataFrame) -> pd.Series:
    """MAX60 = Max($high, 60)/$close"""
    return _compute(df, "MAX60", max_, 60)


@factor("MIN5")
def factor_min5(df: pd.DataFrame) -> pd.Series:
    """MIN5 = Min($low, 5)/$close"""
    return _compute(df, "MIN5", min_, 5)


@factor("MIN10")
def factor_min10(df: pd.DataFrame) -> pd.Series:
    """MIN10 = Min($low, 10)/$close"""
    return _compute(df, "MIN10", min_, 10)


@factor("MIN20")
def factor_min20(df: pd.DataFrame) -> pd.Series:
    """MIN20 = Min($low, 20)/$close"""
    return _compute(df, "MIN20", min_, 20)


@factor("MIN30")
def factor_min30(df: pd.DataFrame) -> pd.Series:
    """MIN30 = Min($low, 30)/$close"""
    return _compute(df, "MIN30", min_, 30)


@factor("MIN60")
def factor_min60(df: pd.DataFrame) -> pd.Series:
    """MIN60 = Min($low, 60)/$close"""
    return _compute(df, "MIN60", min_, 60)


@factor("QTLU5")
def factor_qtlu5(df: pd.DataFrame) -> pd.Series:
    """QTLU5 = Quantile($close, 5, 0.8)/$close"""
    return _compute(df, "QTLU5", qtlu, 5)


@factor("QTLU10")
def factor_qtlu10(df: pd.DataFrame) -> pd.Series:
    """QTLU10 = Quantile($close, 10, 0.8)/$close"""
    return _compute(df, "QTLU10", qtlu, 10)


@factor("QTLU20")
def factor_qtlu20(df: pd.DataFrame) -> pd.Series:
    """QTLU20 = Quantile($close, 20, 0.8)/$close"""
    return _compute(df, "QTLU20", qtlu, 20)


@factor("QTLU30")
def factor_qtlu30(df: pd.DataFrame) -> pd.Series:
    """QTLU30 = Quantile($close, 30, 0.8)/$close"""
    return _compute(df, "QTLU30", qtlu, 30)


@factor("QTLU60")
def factor_qtlu60(df: pd.DataFrame) -> pd.Series:
    """QTLU60 = Quantile($close, 60, 0.8)/$close"""
    return _compute(df, "QTLU60", qtlu, 60)


@factor("QTLD5")
def factor_qtld5(df: pd.DataFrame) -> pd.Series:
    """QTLD5 = Quantile($close, 5, 0.2)/$close"""
    return _compute(df, "QTLD5", qtld, 5)


@factor("QTLD10")
def factor_qtld10(df: pd.DataFrame) -> pd.Series:
    """QTLD10 = Quantile($close, 10, 0.2)/$close"""
    return _compute(df, "QTLD10", qtld, 10)


@factor("QTLD20")
def factor_qtld20(df: pd.DataFrame) -> pd.Series:
    """QTLD20 = Quantile($close, 20, 0.2)/$close"""
    return _compute(df, "QTLD20", qtld, 20)


@factor("QTLD30")
def factor_qtld30(df: pd.DataFrame) -> pd.Series:
    """QTLD30 = Quantile($close, 30, 0.2)/$close"""
    return _compute(df, "QTLD30", qtld, 30)


@factor("QTLD60")
def factor_qtld60(df: pd.DataFrame) -> pd.Series:
    """QTLD60 = Quantile($close, 60, 0.2)/$close"""
    return _compute(df, "QTLD60", qtld, 60)


@factor("RANK5")
def factor_rank5(df: pd.DataFrame) -> pd.Series:
    """RANK5 = Rank($close, 5)"""
    return _compute(df, "RANK5", rank, 5)


@factor("RANK10")
def factor_rank10(df: pd.DataFrame) -> pd.Series:
    """RANK10 = Rank($close, 10)"""
    return _compute(df, "RANK10", rank, 10)


@factor("RANK20")
def factor_rank20(df: pd.DataFrame) -> pd.Series:
    """RANK20 = Rank($close, 20)"""
    return _compute(df, "RANK20", rank, 20)


@factor("RANK30")
def factor_rank30(df: pd.DataFrame) -> pd.Series:
    """RANK30 = Rank($close, 30)"""
    return _compute(df, "RANK30", rank, 30)


@factor("RANK60")
def factor_rank60(df: pd.DataFrame) -> pd.Series:
    """RANK60 = Rank($close, 60)"""
    return _compute(df, "RANK60", rank, 60)


@factor("RSV5")
def factor_rsv5(df: pd.DataFrame) -> pd.Series:
    """RSV5 = ($close-Min($low, 5))/(Max($high, 5)-Min($low, 5)+1e-12)"""
    return _compute(df, "RSV5", rsv, 5)


@factor("RSV10")
def factor_rsv10(df: pd.DataFrame) -> pd.Series:
    """RSV10 = ($close-Min($low, 10))/(Max($high, 10)-Min($low, 10)+1e-12)"""
    return _compute(df, "RSV10", rsv, 10)


@factor("RSV20")
def factor_rsv20(df: pd.DataFrame) -> pd.Series:
    """RSV20 = ($close-Min($low, 20))/(Max($high, 20)-Min($low, 20)+1e-12)"""
    return _compute(df, "RSV20", rsv, 20)


@factor("RSV30")
def factor_rsv30(df: pd.DataFrame) -> pd.Series:
    """RSV30 = ($close-Min($low, 30))/(Max($high, 30)-Min($low, 30)+1e-12)"""
    return _compute(df, "RSV30", rsv, 30)


@factor("RSV60")
def factor_rsv60(df: pd.DataFrame) -> pd.Series:
    """RSV60 = ($close-Min($low, 60))/(Max($high, 60)-Min($low, 60)+1e-12)"""
    return _compute(df, "RSV60", rsv, 60)


@factor("IMAX5")
def factor_imax5(df: pd.DataFrame) -> pd.Series:
    """IMAX5 = IdxMax($high, 5)/5"""
    return _compute(df, "IMAX5", imax, 5)


@factor("IMAX10")
def factor_imax10(df: pd.DataFrame) -> pd.Series:
    """IMAX10 = IdxMax($high, 10)/10"""
    return _compute(df, "IMAX10", imax, 10)


@factor("IMAX20")
def factor_imax20(df: pd.DataFrame) -> pd.Series:
    """IMAX20 = IdxMax($high, 20)/20"""
    return _compute(df, "IMAX20", imax, 20)


@factor("IMAX30")
def factor_imax30(df: pd.DataFrame) -> pd.Series:
    """IMAX30 = IdxMax($high, 30)/30"""
    return _compute(df, "IMAX30", imax, 30)


@factor("IMAX60")
def factor_imax60(df: pd.DataFrame) -> pd.Series:
    """IMAX60 = IdxMax($high, 60)/60"""
    return _compute(df, "IMAX60", imax, 60)


@factor("IMIN5")
def factor_imin5(df: pd.DataFrame) -> pd.Series:
    """IMIN5 = IdxMin($low, 5)/5"""
    return _compute(df, "IMIN5", imin, 5)


@factor("IMIN10")
def factor_imin10(df: pd.DataFrame) -> pd.Series:
    """IMIN10 = IdxMin($low, 10)/10"""
    return _compute(df, "IMIN10", imin, 10)


@factor("IMIN20")
def factor_imin20(df: pd.DataFrame) -> pd.Series:
    """IMIN20 = IdxMin($low, 20)/20"""
    return _compute(df, "IMIN20", imin, 20)


@factor("IMIN30")
def factor_imin30(df: pd.DataFrame) -> pd.Series:
    """IMIN30 = IdxMin($low, 30)/30"""
    return _compute(df, "IMIN30", imin, 30)


@factor("IMIN60")
def factor_imin60(df: pd.DataFrame) -> pd.Series:
    """IMIN60 = IdxMin($low, 60)/60"""
    return _compute(df, "IMIN60", imin, 60)


@factor("IMXD5")
def factor_imxd5(df: pd.DataFrame) -> pd.Series:
    """IMXD5 = (IdxMax($high, 5)-IdxMin($low, 5))/5"""
    return _compute(df, "IMXD5", imxd, 5)


@factor("IMXD10")
def factor_imxd10(df: pd.DataFrame) -> pd.Series:
    """IMXD10 = (IdxMax($high, 10)-IdxMin($low, 10))/10"""
    return _compute(df, "IMXD10", imxd, 10)


@factor("IMXD20")
def factor_imxd20(df: pd.DataFrame) -> pd.Series:
    """IMXD20 = (IdxMax($high, 20)-IdxMin($low, 20))/20"""
    return _compute(df, "IMXD20", imxd, 20)


@factor("IMXD30")
def factor_imxd30(df: pd.DataFrame) -> pd.Series:
    """IMXD30 = (IdxMax($high, 30)-IdxMin($low, 30))/30"""
    return _compute(df, "IMXD30", imxd, 30)


@factor("IMXD60")
def factor_imxd60(df: pd.DataFrame) -> pd.Series:
    """IMXD60 = (IdxMax($high, 60)-IdxMin($low, 60))/60"""
    return _compute(df, "IMXD60", imxd, 60)


@factor("CORR5")
def factor_corr5(df: pd.DataFrame) -> pd.Series:
    """CORR5 = Corr($close, Log($volume+1), 5)"""
    return _compute(df, "CORR5", corr_, 5)


@factor("CORR10")
def factor_corr10(df: pd.DataFrame) -> pd.Series:
    """CORR10 = Corr($close, Log($volume+1), 10)"""
    return _compute(df, "CORR10", corr_, 10)


@factor("CORR20")
def factor_corr20(df: pd.DataFrame) -> pd.Series:
    """CORR20 = Corr($close, Log($volume+1), 20)"""
    return _compute(df, "CORR20", corr_, 20)


@factor("CORR30")
def factor_corr30(df: pd.DataFrame) -> pd.Series:
    """CORR30 = Corr($close, Log($volume+1), 30)"""
    return _compute(df, "CORR30", corr_, 30)


@factor("CORR60")
def factor_corr60(df: pd.DataFrame) -> pd.Series:
    """CORR60 = Corr($close, Log($volume+1), 60)"""
    return _compute(df, "CORR60", corr_, 60)


@factor("CORD5")
def factor_cord5(df: pd.DataFrame) -> pd.Series:
    """CORD5 = Corr($close/Ref($close,1), Log($volume/Ref($volume, 1)+1), 5)"""
    return _compute(df, "CORD5", cord, 5)


@factor("CORD10")
def factor_cord10(df: pd.DataFrame) -> pd.Series:
    """CORD10 = Corr($close/Ref($close,1), Log($volume/Ref($volume, 1)+1), 10)"""
    return _compute(df, "CORD10", cord, 10)


@factor("CORD20")
def factor_cord20(df: pd.DataFrame) -> pd.Series:
    """CORD20 = Corr($close/Ref($close,1), Log($volume/Ref($volume, 1)+1), 20)"""
    return _compute(df, "CORD20", cord, 20)


@factor("CORD30")
def factor_cord30(df: pd.DataFrame) -> pd.Series:
    """CORD30 = Corr($close/Ref($close,1), Log($volume/Ref($volume, 1)+1), 30)"""
    return _compute(df, "CORD30", cord, 30)


@factor("CORD60")
def factor_cord60(df: pd.DataFrame) -> pd.Series:
    """CORD60 = Corr($close/Ref($close,1), Log($volume/Ref($volume, 1)+1), 60)"""
    return _compute(df, "CORD60", cord, 60)


@factor("CNTP5")
def factor_cntp5(df: pd.DataFrame) -> pd.Series:
    """CNTP5 = Mean($close>Ref($close, 1), 5)"""
    return _compute(df, "CNTP5", cntp, 5)


@factor("CNTP10")
def factor_cntp10(df: pd.DataFrame) -> pd.Series:
    """CNTP10 = Mean($close>Ref($close, 1), 10)"""
    return _compute(df, "CNTP10", cntp, 10)


@factor("CNTP20")
def factor_cntp20(df: pd.DataFrame) -> pd.Series:
    """CNTP20 = Mean($close>Ref($close, 1), 20)"""
    return _compute(df, "CNTP20", cntp, 20)


@factor("CNTP30")
def factor_cntp30(df: pd.DataFrame) -> pd.Series:
    """CNTP30 = Mean($close>Ref($close, 1), 30)"""
    return _compute(df, "CNTP30", cntp, 30)


@factor("CNTP60")
def factor_cntp60(df: pd.DataFrame) -> pd.Series:
    """CNTP60 = Mean($close>Ref($close, 1), 60)"""
    return _compute(df, "CNTP60", cntp, 60)


@factor("CNTN5")
def factor_cntn5(df: pd.DataFrame) -> pd.Series:
    """CNTN5 = Mean($close<Ref($close, 1), 5)"""
    return _compute(df, "CNTN5", cntn, 5)


@factor("CNTN10")
def factor_cntn10(df: pd.DataFrame) -> pd.Series:
    """CNTN10 = Mean($close<Ref($close, 1), 10)"""
    return _compute(df, "CNTN10", cntn, 10)


@factor("CNTN20")
def factor_cntn20(df: pd.DataFrame) -> pd.Series:
    """CNTN20 = Mean($close<Ref($close, 1), 20)"""
    return _compute(df, "CNTN20", cntn, 20)


@factor("CNTN30")
def factor_cntn30(df: pd.DataFrame) -> pd.Series:
    """CNTN30 = Mean($close<Ref($close, 1), 30)"""
    return _compute(df, "CNTN30", cntn, 30)


@factor("CNTN60")
def factor_cntn60(df: pd.DataFrame) -> pd.Series:
    """CNTN60 = Mean($close<Ref($close, 1), 60)"""
    return _compute(df, "CNTN60", cntn, 60)


@factor("CNTD5")
def factor_cntd5(df: pd.DataFrame) -> pd.Series:
    """CNTD5 = Mean($close>Ref($close, 1), 5)-Mean($close<Ref($close, 1), 5)"""
    return _compute(df, "CNTD5", cntd, 5)


@factor("CNTD10")
def factor_cntd10(df: pd.DataFrame) -> pd.Series:
    """CNTD10 = Mean($close>Ref($close, 1), 10)-Mean($close<Ref($close, 1), 10)"""
    return _compute(df, "CNTD10", cntd, 10)


@factor("CNTD20")
def factor_cntd20(df: pd.DataFrame) -> pd.Series:
    """CNTD20 = Mean($close>Ref($close, 1), 20)-Mean($close<Ref($close, 1), 20)"""
    return _compute(df, "CNTD20", cntd, 20)


@factor("CNTD30")
def factor_cntd30(df: pd.DataFrame) -> pd.Series:
    """CNTD30 = Mean($close>Ref($close, 1), 30)-Mean($close<Ref($close, 1), 30)"""
    return _compute(df, "CNTD30", cntd, 30)


@factor("CNTD60")
def factor_cntd60(df: pd.DataFrame) -> pd.Series:
    """CNTD60 = Mean($close>Ref($close, 1), 60)-Mean($close<Ref($close, 1), 60)"""
    return _compute(df, "CNTD60", cntd, 60)


@factor("SUMP5")
def factor_sump5(df: pd.DataFrame) -> pd.Series:
    """SUMP5 = Sum(Greater($close-Ref($close, 1), 0), 5)/(Sum(Abs($close-Ref($close, 1)), 5)+1e-12)"""
    return _compute(df, "SUMP5", sump, 5)


@factor("SUMP10")
def factor_sump10(df: pd.DataFrame) -> pd.Series:
    """SUMP10 = Sum(Greater($close-Ref($close, 1), 0), 10)/(Sum(Abs($close-Ref($close, 1)), 10)+1e-12)"""
    return _compute(df, "SUMP10", sump, 10)


@factor("SUMP20")
def factor_sump20(df: pd.DataFrame) -> pd.Series:
    """SUMP20 = Sum(Greater($close-Ref($close, 1), 0), 20)/(Sum(Abs($close-Ref($close, 1)), 20)+1e-12)"""
    return _compute(df, "SUMP20", sump, 20)


@factor("SUMP30")
def factor_sump30(df: pd.DataFrame) -> pd.Series:
    """SUMP30 = Sum(Greater($close-Ref($close, 1), 0), 30)/(Sum(Abs($close-Ref($close, 1)), 30)+1e-12)"""
    return _compute(df, "SUMP30", sump, 30)


@factor("SUMP60")
def factor_sump60(df: pd.DataFrame) -> pd.Series:
    """SUMP60 = Sum(Greater($close-Ref($close, 1), 0), 60)/(Sum(Abs($close-Ref($close, 1)), 60)+1e-12)"""
    return _compute(df, "SUMP60", sump, 60)


@factor("SUMN5")
def factor_sumn5(df: pd.DataFrame) -> pd.Series:
    """SUMN5 = Sum(Greater(Ref($close, 1)-$close, 0), 5)/(Sum(Abs($close-Ref($close, 1)), 5)+1e-12)"""
    return _compute(df, "SUMN5", sumn, 5)


@factor("SUMN10")
def factor_sumn10(df: pd.DataFrame) -> pd.Series:
    """SUMN10 = Sum(Greater(Ref($close, 1)-$close, 0), 10)/(Sum(Abs($close-Ref($close, 1)), 10)+1e-12)"""
    return _compute(df, "SUMN10", sumn, 10)


@factor("SUMN20")
def factor_sumn20(df: pd.DataFrame) -> pd.Series:
    """SUMN20 = Sum(Greater(Ref($close, 1)-$close, 0), 20)/(Sum(Abs($close-Ref($close, 1)), 20)+1e-12)"""
    return _compute(df, "SUMN20", sumn, 20)


@factor("SUMN30")
def factor_sumn30(df: pd.DataFrame) -> pd.Series:
    """SUMN30 = Sum(Greater(Ref($close, 1)-$close, 0), 30)/(Sum(Abs($close-Ref($close, 1)), 30)+1e-12)"""
    return _compute(df, "SUMN30", sumn, 30)


@factor("SUMN60")
def factor_sumn60(df: pd.DataFrame) -> pd.Series:
    """SUMN60 = Sum(Greater(Ref($close, 1)-$close, 0), 60)/(Sum(Abs($close-Ref($close, 1)), 60)+1e-12)"""
    return _compute(df, "SUMN60", sumn, 60)


@factor("SUMD5")
def factor_sumd5(df: pd.DataFrame) -> pd.Series:
    """SUMD5 = (Sum(Greater($close-Ref($close, 1), 0), 5)-Sum(Greater(Ref($close, 1)-$close, 0), 5))/(Sum(Abs($close-Ref($close, 1)), 5)+1e-12)"""
    return _compute(df, "SUMD5", sumd, 5)


@factor("SUMD10")
def factor_sumd10(df: pd.DataFrame) -> pd.Series:
    """SUMD10 = (Sum(Greater($close-Ref($close, 1), 0), 10)-Sum(Greater(Ref($close, 1)-$close, 0), 10))/(Sum(Abs($close-Ref($close, 1)), 10)+1e-12)"""
    return _compute(df, "SUMD10", sumd, 10)


@factor("SUMD20")
def factor_sumd20(df: pd.DataFrame) -> pd.Series:
    """SUMD20 = (Sum(Greater($close-Ref($close, 1), 0), 20)-Sum(Greater(Ref($close, 1)-$close, 0), 20))/(Sum(Abs($close-Ref($close, 1)), 20)+1e-12)"""
    return _compute(df, "SUMD20", sumd, 20)


@factor("SUMD30")
def factor_sumd30(df: pd.DataFrame) -> pd.Series:
    """SUMD30 = (Sum(Greater($close-Ref($close, 1), 0), 30)-Sum(Greater(Ref($close, 1)-$close, 0), 30))/(Sum(Abs($close-Ref($close, 1)), 30)+1e-12)"""
    return _compute(df, "SUMD30", sumd, 30)


@factor("SUMD60")
def factor_sumd60(df: pd.DataFrame) -> pd.Series:
    """SUMD60 = (Sum(Greater($close-Ref($close, 1), 0), 60)-Sum(Greater(Ref($close, 1)-$close, 0), 60))/(Sum(Abs($close-Ref($close, 1)), 60)+1e-12)"""
    return _compute(df, "SUMD60", sumd, 60)


@factor("VMA5")
def factor_vma5(df: pd.DataFrame) -> pd.Series:
    """VMA5 = Mean($volume, 5)/($volume+1e-12)"""
    return _compute(df, "VMA5", vma, 5)


@factor("VMA10")
def factor_vma10(df: pd.DataFrame) -> pd.Series:
    """VMA10 = Mean($volume, 10)/($volume+1e-12)"""
    return _compute(df, "VMA10", vma, 10)


@factor("VMA20")
def factor_vma20(df: pd.DataFrame) -> pd.Series:
    """VMA20 = Mean($volume, 20)/($volume+1e-12)"""
    return _compute(df, "VMA20", vma, 20)


@factor("VMA30")
def factor_vma30(df: pd.DataFrame) -> pd.Series:
    """VMA30 = Mean($volume, 30)/($volume+1e-12)"""
    return _compute(df, "VMA30", vma, 30)


@factor("VMA60")
def factor_vma60(df: pd.DataFrame) -> pd.Series:
    """VMA60 = Mean($volume, 60)/($volume+1e-12)"""
    return _compute(df, "VMA60", vma, 60)


@factor("VSTD5")
def factor_vstd5(df: pd.DataFrame) -> pd.Series:
    """VSTD5 = Std($volume, 5)/($volume+1e-12)"""
    return _compute(df, "VSTD5", vstd, 5)


@factor("VSTD10")
def factor_vstd10(df: pd.DataFrame) -> pd.Series:
    """VSTD10 = Std($volume, 10)/($volume+1e-12)"""
    return _compute(df, "VSTD10", vstd, 10)


@factor("VSTD20")
def factor_vstd20(df: pd.DataFrame) -> pd.Series:
    """VSTD20 = Std($volume, 20)/($volume+1e-12)"""
    return _compute(df, "VSTD20", vstd, 20)


@factor("VSTD30")
def factor_vstd30(df: pd.DataFrame) -> pd.Series:
    """VSTD30 = Std($volume, 30)/($volume+1e-12)"""
    return _compute(df, "VSTD30", vstd, 30)


@factor("VSTD60")
def factor_vstd60(df: pd.DataFrame) -> pd.Series:
    """VSTD60 = Std($volume, 60)/($volume+1e-12)"""
    return _compute(df, "VSTD60", vstd, 60)


@factor("WVMA5")
def factor_wvma5(df: pd.DataFrame) -> pd.Series:
    """WVMA5 = Std(Abs($close/Ref($close, 1)-1)*$volume, 5)/(Mean(Abs($close/Ref($close, 1)-1)*$volume, 5)+1e-12)"""
    return _compute(df, "WVMA5", wvma, 5)


@factor("WVMA10")
def factor_wvma10(df: pd.DataFrame) -> pd.Series:
    """WVMA10 = Std(Abs($close/Ref($close, 1)-1)*$volume, 10)/(Mean(Abs($close/Ref($close, 1)-1)*$volume, 10)+1e-12)"""
    return _compute(df, "WVMA10", wvma, 10)


@factor("WVMA20")
def factor_wvma20(df: pd.DataFrame) -> pd.Series:
    """WVMA20 = Std(Abs($close/Ref($close, 1)-1)*$volume, 20)/(Mean(Abs($close/Ref($close, 1)-1)*$volume, 20)+1e-12)"""
    return _compute(df, "WVMA20", wvma, 20)


@factor("WVMA30")
def factor_wvma30(df: pd.DataFrame) -> pd.Series:
    """WVMA30 = Std(Abs($close/Ref($close, 1)-1)*$volume, 30)/(Mean(Abs($close/Ref($close, 1)-1)*$volume, 30)+1e-12)"""
    return _compute(df, "WVMA30", wvma, 30)


@factor("WVMA60")
def factor_wvma60(df: pd.DataFrame) -> pd.Series:
    """WVMA60 = Std(Abs($close/Ref($close, 1)-1)*$volume, 60)/(Mean(Abs($close/Ref($close, 1)-1)*$volume, 60)+1e-12)"""
    return _compute(df, "WVMA60", wvma, 60)


@factor("VSUMP5")
def factor_vsump5(df: pd.DataFrame) -> pd.Series:
    """VSUMP5 = Sum(Greater($volume-Ref($volume, 1), 0), 5)/(Sum(Abs($volume-Ref($volume, 1)), 5)+1e-12)"""
    return _compute(df, "VSUMP5", vsump, 5)


@factor("VSUMP10")
def factor_vsump10(df: pd.DataFrame) -> pd.Series:
    """VSUMP10 = Sum(Greater($volume-Ref($volume, 1), 0), 10)/(Sum(Abs($volume-Ref($volume, 1)), 10)+1e-12)"""
    return _compute(df, "VSUMP10", vsump, 10)


@factor("VSUMP20")
def factor_vsump20(df: pd.DataFrame) -> pd.Series:
    """VSUMP20 = Sum(Greater($volume-Ref($volume, 1), 0), 20)/(Sum(Abs($volume-Ref($volume, 1)), 20)+1e-12)"""
    return _compute(df, "VSUMP20", vsump, 20)


@factor("VSUMP30")
def factor_vsump30(df: pd.DataFrame) -> pd.Series:
    """VSUMP30 = Sum(Greater($volume-Ref($volume, 1), 0), 30)/(Sum(Abs($volume-Ref($volume, 1)), 30)+1e-12)"""
    return _compute(df, "VSUMP30", vsump, 30)


@factor("VSUMP60")
def factor_vsump60(df: pd.DataFrame) -> pd.Series:
    """VSUMP60 = Sum(Greater($volume-Ref($volume, 1), 0), 60)/(Sum(Abs($volume-Ref($volume, 1)), 60)+1e-12)"""
    return _compute(df, "VSUMP60", vsump, 60)


@factor("VSUMN5")
def factor_vsumn5(df: pd.DataFrame) -> pd.Series:
    """VSUMN5 = Sum(Greater(Ref($volume, 1)-$volume, 0), 5)/(Sum(Abs($volume-Ref($volume, 1)), 5)+1e-12)"""
    return _compute(df, "VSUMN5", vsumn, 5)


@factor("VSUMN10")
def factor_vsumn10(df: pd.DataFrame) -> pd.Series:
    """VSUMN10 = Sum(Greater(Ref($volume, 1)-$volume, 0), 10)/(Sum(Abs($volume-Ref($volume, 1)), 10)+1e-12)"""
    return _compute(df, "VSUMN10", vsumn, 10)


@factor("VSUMN20")
def factor_vsumn20(df: pd.DataFrame) -> pd.Series:
    """VSUMN20 = Sum(Greater(Ref($volume, 1)-$volume, 0), 20)/(Sum(Abs($volume-Ref($volume, 1)), 20)+1e-12)"""
    return _compute(df, "VSUMN20", vsumn, 20)


@factor("VSUMN30")
def factor_vsumn30(df: pd.DataFrame) -> pd.Series:
    """VSUMN30 = Sum(Greater(Ref($volume, 1)-$volume, 0), 30)/(Sum(Abs($volume-Ref($volume, 1)), 30)+1e-12)"""
    return _compute(df, "VSUMN30", vsumn, 30)


@factor("VSUMN60")
def factor_vsumn60(df: pd.DataFrame) -> pd.Series:
    """VSUMN60 = Sum(Greater(Ref($volume, 1)-$volume, 0), 60)/(Sum(Abs($volume-Ref($volume, 1)), 60)+1e-12)"""
    return _compute(df, "VSUMN60", vsumn, 60)


@factor("VSUMD5")
def factor_vsumd5(df: pd.DataFrame) -> pd.Series:
    """VSUMD5 = (Sum(Greater($volume-Ref($volume, 1), 0), 5)-Sum(Greater(Ref($volume, 1)-$volume, 0), 5))/(Sum(Abs($volume-Ref($volume, 1)), 5)+1e-12)"""
    return _compute(df, "VSUMD5", vsumd, 5)


@factor("VSUMD10")
def factor_vsumd10(df: pd.DataFrame) -> pd.Series:
    """VSUMD10 = (Sum(Greater($volume-Ref($volume, 1), 0), 10)-Sum(Greater(Ref($volume, 1)-$volume, 0), 10))/(Sum(Abs($volume-Ref($volume, 1)), 10)+1e-12)"""
    return _compute(df, "VSUMD10", vsumd, 10)


@factor("VSUMD20")
def factor_vsumd20(df: pd.DataFrame) -> pd.Series:
    """VSUMD20 = (Sum(Greater($volume-Ref($volume, 1), 0), 20)-Sum(Greater(Ref($volume, 1)-$volume, 0), 20))/(Sum(Abs($volume-Ref($volume, 1)), 20)+1e-12)"""
    return _compute(df, "VSUMD20", vsumd, 20)


@factor("VSUMD30")
def factor_vsumd30(df: pd.DataFrame) -> pd.Series:
    """VSUMD30 = (Sum(Greater($volume-Ref($volume, 1), 0), 30)-Sum(Greater(Ref($volume, 1)-$volume, 0), 30))/(Sum(Abs($volume-Ref($volume, 1)), 30)+1e-12)"""
    return _compute(df, "VSUMD30", vsumd, 30)


@factor("VSUMD60")
def factor_vsumd60(df: pd.DataFrame) -> pd.Series:
    """VSUMD60 = (Sum(Greater($volume-Ref($volume, 1), 0), 60)-Sum(Greater(Ref($volume, 1)-$volume, 0), 60))/(Sum(Abs($volume-Ref($volume, 1)), 60)+1e-12)"""
    return _compute(df, "VSUMD60", vsumd, 60)
