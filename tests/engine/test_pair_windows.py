"""The Corr / Cov and regression window pass (``pair_windows.py``): its sums and row results against direct
computation, and Qlib's flat-window mask (``flat_windows.py``) against pandas' own rolling std, on data built to sit
on the line: constant runs, noise whose std straddles 2e-5, large magnitudes, NaN and inf, one-row blocks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from rdbridge.engine.flat_windows import FLAT_ATOL
from rdbridge.engine.pair_windows import pair_window, regression_window
from rdbridge.engine.runner import build_layout


@pytest.mark.parametrize("window", [1, 3, 20])
def test_pair_sums_equal_direct_sums(window: int) -> None:
    rng = np.random.default_rng(window)
    n = 3000
    a = rng.normal(size=n) * 1e3 + 5e3
    b = rng.normal(size=n)
    a[rng.random(n) < 0.1] = np.nan
    b[rng.random(n) < 0.1] = np.inf
    sums = pair_window(a, b, window, keep_sums=True).sums
    assert sums is not None and pair_window(a, b, window).sums is None
    for i in range(n):
        lo = max(0, i - window + 1)
        wa, wb = a[lo : i + 1], b[lo : i + 1]
        both = np.isfinite(wa) & np.isfinite(wb)
        x, y = wa[both], wb[both]
        want = [both.sum(), x.sum(), y.sum(), (x * y).sum(), (x * x).sum(), (y * y).sum()]
        np.testing.assert_allclose(sums[:, i], want, rtol=1e-12, atol=1e-6)


@pytest.mark.parametrize("window", [2, 5, 30])
def test_the_correlation_is_pearson_of_the_window_pairs(window: int) -> None:
    rng = np.random.default_rng(100 + window)
    n = 2000
    a = rng.normal(size=n) * 50 + 300
    b = 0.3 * a + rng.normal(size=n)
    a[rng.random(n) < 0.15] = np.nan
    b[rng.random(n) < 0.05] = -np.inf
    b[500:540] = 7.0  # a constant y: zero variance, no correlation
    got = pair_window(a, b, window).results[0]
    for i in range(n):
        lo = max(0, i - window + 1)
        wa, wb = a[lo : i + 1], b[lo : i + 1]
        both = np.isfinite(wa) & np.isfinite(wb)
        x, y = wa[both], wb[both]
        if x.size < 2:
            assert np.isnan(got[i]), i
            continue
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue  # rounding-level variances: the flat-window mask turns these into NaN (tested below)
        assert got[i] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-7, abs=1e-9), i


@pytest.mark.parametrize("window", [3, 10, 30])
def test_the_regression_is_least_squares_on_positions(window: int) -> None:
    rng = np.random.default_rng(200 + window)
    n = 1500
    y = np.cumsum(rng.normal(size=n)) + 100
    y[rng.random(n) < 0.15] = np.nan
    k = np.arange(n, dtype=np.float64)
    got = regression_window(y, k, window).results
    for i in range(window, n):
        wy = y[i - window + 1 : i + 1]
        xs = np.arange(1, window + 1, dtype=np.float64)  # Qlib's x: the slot in the window, NaN slots skipped
        ok = ~np.isnan(wy)
        if ok.sum() < 3:
            continue
        slope, icept = np.polyfit(xs[ok], wy[ok], 1)
        r2 = np.corrcoef(xs[ok], wy[ok])[0, 1] ** 2
        assert got[0, i] == pytest.approx(slope, rel=1e-7, abs=1e-9), i
        if np.isnan(y[i]):
            assert np.isnan(got[1, i]), i
        else:
            assert got[1, i] == pytest.approx(y[i] - (slope * window + icept), rel=1e-6, abs=1e-7), i
        assert got[2, i] == pytest.approx(r2, rel=1e-7, abs=1e-9), i


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
    plain = pair_window(x, y, window).results[0]
    got = pair_window(x, y, window, first_real=first_real).results[0]
    np.testing.assert_array_equal(got, np.where(flat, np.nan, plain))


@pytest.mark.parametrize("window", [2, 5, 30])
def test_rsquare_alone_is_masked_where_its_input_is_flat(window: int) -> None:
    x, k, first_real, spans = _padded(_blocks(np.random.default_rng(3)), 40)
    flat = _qlib_flat(x, window, spans)
    assert flat.any() and not flat[np.isfinite(x)].all()
    plain = regression_window(x, k, window).results
    got = regression_window(x, k, window, first_real=first_real).results
    np.testing.assert_array_equal(got[:2], plain[:2])  # slope and residual: no mask in Qlib
    np.testing.assert_array_equal(got[2], np.where(flat, np.nan, plain[2]))
