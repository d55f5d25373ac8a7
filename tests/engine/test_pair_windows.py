"""The Cov / Corr and regression window passes (``pair_windows.py``) against the tools Qlib runs, bit for bit:
pandas' rolling cov / corr and Qlib's Cython rolling / expanding slope, residual and r^2, per instrument block; and
Qlib's flat-window mask (``flat_windows.py``) against pandas' own rolling std, on data built to sit on the line:
constant runs, noise whose std straddles 2e-5, large magnitudes, NaN and inf, one-row blocks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from qlib.data._libs.expanding import expanding_resi, expanding_rsquare, expanding_slope
from qlib.data._libs.rolling import rolling_resi, rolling_rsquare, rolling_slope

from rdbridge.engine.flat_windows import FLAT_ATOL
from rdbridge.engine.pair_windows import pair_window, regression_window
from rdbridge.engine.runner import build_layout


def _cases(seed: int, dtype: type) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs of instrument series with what trips online co-moments: NaN and inf gaps, constant runs and a constant
    input (pandas' exact 0 covariance), a large offset, an exact linear relation, blocks shorter than windows."""
    rng = np.random.default_rng(seed)
    out = []
    for length in (1, 2, 7, 150, 400):
        x = (rng.standard_normal(length).cumsum() * 3 + 1e4 * rng.random()).round(2)
        y = 0.5 * np.roll(x, 3) + rng.standard_normal(length)
        x[rng.random(length) < 0.08] = np.nan
        y[rng.random(length) < 0.05] = np.inf
        if length > 100:
            x[20:35] = x[20]
            y[60:90] = 2.5
            y[100:130] = 3.0 * x[100:130] - 7.0
            x[140] = -np.inf
        out.append((x.astype(dtype), y.astype(dtype)))
    out.append((np.full(30, 1.25, dtype=dtype), np.arange(30, dtype=dtype)))
    return out


def _layout(blocks: list[np.ndarray], pad: int, dtype: type) -> tuple[np.ndarray, np.ndarray, list[slice]]:
    inst = pl.Series([f"i{j}" for j, b in enumerate(blocks) for _ in range(b.size)])
    layout = build_layout(inst, pad)
    x = np.full(layout.n_padded, 123.0, dtype=dtype)  # pad slots hold garbage: never read
    x[layout.positions] = np.concatenate(blocks)
    spans, at = [], 0
    for b in blocks:
        start = int(layout.positions[at])
        spans.append(slice(start, start + b.size))
        at += b.size
    return x, layout.first_real, spans


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", [0, 1, 2, 3, 5, 20])
def test_cov_and_corr_equal_pandas_rolling_bit_for_bit(window: int, dtype: type) -> None:
    cases = _cases(window, dtype)
    x, first_real, spans = _layout([c[0] for c in cases], 25, dtype)
    y, _, _ = _layout([c[1] for c in cases], 25, dtype)
    cov, corr = pair_window(x, y, window, first_real).results
    for rows, (a, b) in zip(spans, cases):
        sa, sb = pd.Series(a), pd.Series(b)
        roll = sa.rolling(window, min_periods=1) if window else sa.expanding(min_periods=1)
        np.testing.assert_array_equal(cov[rows], roll.cov(sb).to_numpy())
        np.testing.assert_array_equal(corr[rows], roll.corr(sb).to_numpy())
    assert np.isnan(cov[np.arange(x.size) < first_real]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", [0, 1, 2, 3, 10, 30])
def test_the_regression_equals_qlibs_cython_bit_for_bit(window: int, dtype: type) -> None:
    cases = _cases(100 + window, dtype)
    y, first_real, spans = _layout([c[0] for c in cases], 31, dtype)
    got = regression_window(y, window, first_real).results
    for rows, (a, _) in zip(spans, cases):
        fns = (rolling_slope, rolling_resi, rolling_rsquare) if window else (expanding_slope, expanding_resi,
                                                                                expanding_rsquare)
        for r, fn in enumerate(fns):
            want = fn(a, window) if window else fn(a)
            np.testing.assert_array_equal(got[r, rows], want, err_msg=fn.__name__)


# --- Qlib's flat-window mask --------------------------------------------------------------------------------------


def _blocks(rng: np.random.Generator) -> list[np.ndarray]:
    """One instrument per kind of window the screen must hand to the exact std, plus ordinary ones."""
    n = 120
    walk = 50 + np.cumsum(rng.normal(0, 0.5, n))
    flat_runs = walk.copy()
    flat_runs[20:45] = flat_runs[20]  # constant stretches: std 0
    flat_runs[80:90] = 7.25
    near = 10 + rng.normal(0, 1, n) * np.repeat(rng.choice([1e-6, 1e-5, 2e-5, 3e-5, 1e-4], n // 10), 10)
    huge = 1e6 + rng.normal(0, 1, n) * np.repeat(rng.choice([0.0, 1e-3, 1e-1, 10.0], n // 10), 10)
    drift = 5 + np.arange(n) * 3e-6  # every step tiny, the range not: only the exact std can tell
    gaps = walk.copy()
    gaps[rng.random(n) < 0.2] = np.nan
    gaps[5] = np.inf
    gaps[60] = -np.inf
    gaps[30:41] = 3.0
    gaps[33] = np.nan
    return [walk, flat_runs, near, huge, drift, gaps, np.array([4.0]), np.full(7, 2.5), np.full(9, np.nan)]


def _padded(blocks: list[np.ndarray], pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """The blocks in the engine's padded layout (pads NaN), each row's block position k, first_real, the spans."""
    inst = pl.Series([f"i{j}" for j, b in enumerate(blocks) for _ in range(b.size)])
    layout = build_layout(inst, pad)
    x = np.full(layout.n_padded, np.nan)
    x[layout.positions] = np.concatenate(blocks)
    k = (np.arange(layout.n_padded) - (layout.first_real - pad)).astype(np.float64)
    spans, at = [], 0
    for b in blocks:
        spans.append((int(layout.positions[at]), b.size))
        at += b.size
    return x, k, layout.first_real, spans


def _qlib_flat(x: np.ndarray, window: int, spans: list[tuple[int, int]]) -> np.ndarray:
    """Qlib's rule, per instrument: ``np.isclose(s.rolling(N, min_periods=1).std(), 0, atol=2e-05)``."""
    flat = np.zeros(x.size, dtype=bool)
    for start, size in spans:
        std = pd.Series(x[start : start + size]).rolling(window, min_periods=1).std().to_numpy()
        flat[start : start + size] = np.isclose(std, 0, atol=FLAT_ATOL)
    return flat


@pytest.mark.parametrize("window", [1, 2, 5, 10, 30])
def test_corr_is_nan_exactly_where_either_input_is_flat(window: int) -> None:
    blocks = _blocks(np.random.default_rng(7))
    x, _, first_real, spans = _padded(blocks, 40)
    y, _, _, _ = _padded([b[::-1].copy() for b in blocks], 40)
    flat = _qlib_flat(x, window, spans) | _qlib_flat(y, window, spans)
    assert window == 1 or flat.any()
    plain = pair_window(x, y, window, first_real).results[1]
    got = pair_window(x, y, window, first_real, mask=True).results[1]
    np.testing.assert_array_equal(got, np.where(flat, np.nan, plain))


@pytest.mark.parametrize("window", [2, 5, 30])
def test_rsquare_alone_is_masked_where_its_input_is_flat(window: int) -> None:
    x, k, first_real, spans = _padded(_blocks(np.random.default_rng(3)), 40)
    flat = _qlib_flat(x, window, spans)
    assert flat.any() and not flat[np.isfinite(x)].all()
    plain = regression_window(x, window, first_real).results
    got = regression_window(x, window, first_real, mask=True).results
    np.testing.assert_array_equal(got[:2], plain[:2])  # slope and residual: no mask in Qlib
    np.testing.assert_array_equal(got[2], np.where(flat, np.nan, plain[2]))
