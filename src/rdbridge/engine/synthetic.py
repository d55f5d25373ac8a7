"""Synthetic daily panels shaped like Qlib's China-equity data, for tests and benchmarks.

Real market data cannot ship with the project, yet the engine must be checked on the awkward parts of real data:
instruments that list late or delist early, suspended days inside an instrument's life (rows of NaN, exactly as
Qlib's ``.bin`` files hold them), price ties (prices move on a 0.01 tick) and adjustment-factor jumps.
"""

from __future__ import annotations

import numpy as np
import polars as pl

FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "vwap", "factor")
"""The fields every synthetic panel carries, named without Qlib's ``$``."""

_MIN_SPAN_DAYS = 30


def instrument_names(n_instruments: int) -> list[str]:
    """Upper-case codes in Qlib's style (``SH600000``...), the case Qlib keeps in ``instruments/all.txt``."""
    return [f"SH{600000 + i}" if i % 2 == 0 else f"SZ{i:06d}" for i in range(n_instruments)]


def trading_calendar(n_days: int, start: str = "2012-01-04") -> np.ndarray:
    """Weekdays from ``start``: a stand-in for an exchange calendar (holidays do not matter to the engine)."""
    first = np.datetime64(start, "D")
    days = np.arange(first, first + int(n_days * 1.5) + 10, dtype="datetime64[D]")
    weekdays = days[np.is_busday(days)]
    return weekdays[:n_days].astype("datetime64[us]")


def _spans(rng: np.random.Generator, n_inst: int, n_days: int, late_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """First and last calendar index per instrument; a share lists late and half as many delist early."""
    min_span = min(_MIN_SPAN_DAYS, n_days)
    starts = np.zeros(n_inst, dtype=np.int64)
    ends = np.full(n_inst, n_days - 1, dtype=np.int64)
    late = rng.random(n_inst) < late_frac
    latest_start = max(1, int(n_days * 0.6))
    if latest_start > 1:
        starts[late] = rng.integers(1, latest_start, late.sum())
    early = rng.random(n_inst) < late_frac / 2
    for i in np.flatnonzero(early):
        lo = starts[i] + min_span
        if lo < n_days - 1:
            ends[i] = rng.integers(lo, n_days - 1)
    ends = np.maximum(ends, np.minimum(starts + min_span - 1, n_days - 1))
    return starts, ends


def _one_instrument(rng: np.random.Generator, n: int, suspension_frac: float) -> dict[str, np.ndarray]:
    """OHLCV, vwap and adjustment factor for ``n`` consecutive trading days of one instrument."""
    raw_close = np.empty(n)
    level = rng.uniform(3.0, 80.0)
    vol = rng.uniform(0.01, 0.035)
    log_ret = rng.normal(0.0002, vol, n)
    raw_close[:] = level * np.exp(np.cumsum(log_ret))
    raw_close = np.maximum(np.round(raw_close, 2), 0.01)
    prev = np.concatenate([[raw_close[0]], raw_close[:-1]])
    raw_open = np.maximum(np.round(prev * np.exp(rng.normal(0, vol / 3, n)), 2), 0.01)
    top = np.maximum(raw_open, raw_close)
    bottom = np.minimum(raw_open, raw_close)
    raw_high = np.round(top * (1 + np.abs(rng.normal(0, vol / 2, n))), 2)
    raw_low = np.maximum(np.round(bottom * (1 - np.abs(rng.normal(0, vol / 2, n))), 2), 0.01)
    w = rng.uniform(0.2, 0.8, n)
    raw_vwap = raw_low + w * (raw_high - raw_low)
    volume = np.round(np.exp(rng.normal(np.log(rng.uniform(1e5, 5e7)), 0.6, n)), 0)
    # Adjustment factor: constant between rare dividend/split events, as in Qlib's forward-adjusted data.
    jumps = rng.random(n) < 0.004
    factor = np.cumprod(np.where(jumps, rng.uniform(1.01, 1.6, n), 1.0)) * rng.uniform(0.5, 3.0)
    out = {
        "open": raw_open * factor,
        "high": raw_high * factor,
        "low": raw_low * factor,
        "close": raw_close * factor,
        "volume": volume / factor,
        "vwap": raw_vwap * factor,
        "factor": factor,
    }
    if n > 2 and suspension_frac > 0:
        suspended = np.zeros(n, dtype=bool)
        suspended[1:-1] = rng.random(n - 2) < suspension_frac
        # Suspensions come in runs too: extend a few of them by several days.
        for i in np.flatnonzero(suspended)[::7]:
            suspended[i : min(i + int(rng.integers(2, 8)), n - 1)] = True
        for key in out:
            out[key] = np.where(suspended, np.nan, out[key])
    return out


def make_panel(
    n_instruments: int = 40,
    n_days: int = 300,
    seed: int = 0,
    late_listing_frac: float = 0.25,
    suspension_frac: float = 0.02,
) -> pl.DataFrame:
    """A long panel (instrument, datetime, open..factor as Float32), dense per instrument from listing to delisting.

    ``late_listing_frac`` of the instruments list after the first calendar day and about half that share delist
    before the last; ``suspension_frac`` of the days strictly inside an instrument's span are suspended (all
    fields NaN, the row kept), some in multi-day runs. First and last day of every span are trading days, so the
    span written to ``instruments/all.txt`` is exactly the rows present.
    """
    if n_instruments < 1 or n_days < 2:
        raise ValueError(f"make_panel needs at least 1 instrument and 2 days, got {n_instruments} x {n_days}")
    rng = np.random.default_rng(seed)
    calendar = trading_calendar(n_days)
    names = instrument_names(n_instruments)
    starts, ends = _spans(rng, n_instruments, n_days, late_listing_frac)
    frames = []
    for name, s, e in zip(names, starts, ends):
        n = int(e - s + 1)
        cols = _one_instrument(rng, n, suspension_frac)
        frames.append(
            pl.DataFrame(
                {
                    "instrument": [name] * n,
                    "datetime": calendar[s : e + 1],
                    **{k: cols[k].astype(np.float32) for k in FIELDS},
                }
            )
        )
    panel = pl.concat(frames).with_columns(
        pl.col("datetime").cast(pl.Datetime("us")),
        pl.col("instrument").cast(pl.Utf8),
        *(pl.col(k).cast(pl.Float32) for k in FIELDS),
    )
    return panel.sort(["instrument", "datetime"])
