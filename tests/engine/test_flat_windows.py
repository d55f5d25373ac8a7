"""Qlib's flat-window mask (``flat_windows.py``) against pandas' own rolling std, on data built to sit on the line:
constant runs, noise whose std straddles 2e-5, large magnitudes, NaN and inf, blocks of one row, late starts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from rdbridge.engine.flat_windows import FLAT_ATOL, _screen, flat_mask
from rdbridge.engine.runner import build_layout


def _blocks(rng: np.random.Generator) -> list[np.ndarray]:
    """One instrument per kind of window the screen must hand to the exact std, plus ordinary ones."""
    n = 120
    walk = 50 + np.cumsum(rng.normal(0, 0.5, n))
    flat_runs = walk.copy()
    flat_runs[20:45] = flat_runs[20]  # constant stretches: std 0
    flat_runs[80:90] = 7.25
    near = 10 + rng.normal(0, 1, n) * np.repeat(rng.choice([1e-6, 1e-5, 2e-5, 3e-5, 1e-4], n // 10), 10)
    huge = 1e6 + rng.normal(0, 1, n) * np.repeat(rng.choice([0.0, 1e-3, 1e-1, 10.0], n // 10), 10)
    gaps = walk.copy()
    gaps[rng.random(n) < 0.2] = np.nan
    gaps[5] = np.inf
    gaps[60] = -np.inf
    gaps[30:41] = 3.0
    gaps[33] = np.nan
    return [walk, flat_runs, near, huge, gaps, np.array([4.0]), np.full(7, 2.5), np.full(9, np.nan)]


def _padded(blocks: list[np.ndarray], dtype: type) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    inst = pl.Series([f"i{k}" for k, b in enumerate(blocks) for _ in range(b.size)])
    layout = build_layout(inst, 12)
    x = np.full(layout.n_padded, -1e30, dtype=dtype)  # pad slots hold garbage: never read
    x[layout.positions] = np.concatenate(blocks).astype(dtype)
    spans, at = [], 0
    for b in blocks:
        spans.append((int(layout.positions[at]), b.size))
        at += b.size
    return x, layout.first_real, spans


def _pandas_flat(x: np.ndarray, window: int, spans: list[tuple[int, int]], n: int) -> np.ndarray:
    """Qlib's rule, per block: ``np.isclose(s.rolling(N, min_periods=1).std(), 0, atol=2e-05)`` (expanding for 0)."""
    want = np.zeros(n, dtype=bool)
    for start, size in spans:
        s = pd.Series(x[start : start + size])
        roll = s.expanding(min_periods=1) if window == 0 else s.rolling(window, min_periods=1)
        want[start : start + size] = np.isclose(roll.std().to_numpy(), 0, atol=FLAT_ATOL)
    return want


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("window", [1, 2, 5, 10, 30, 0])
def test_the_mask_is_pandas_rule_exactly(window: int, dtype: type) -> None:
    x, first_real, spans = _padded(_blocks(np.random.default_rng(7)), dtype)
    want = _pandas_flat(x, window, spans, x.size)
    got = flat_mask([x], window, first_real)
    assert got.dtype == bool
    assert not want.all() and (window == 1 or want.any())  # both kinds of windows (one row: std is NaN)
    np.testing.assert_array_equal(got, want)


def test_a_pair_is_flat_where_either_input_is() -> None:
    rng = np.random.default_rng(11)
    blocks = _blocks(rng)
    x, first_real, spans = _padded(blocks, np.float64)
    y, _, _ = _padded([b[::-1].copy() for b in blocks], np.float64)
    want = _pandas_flat(x, 10, spans, x.size) | _pandas_flat(y, 10, spans, y.size)
    np.testing.assert_array_equal(flat_mask([x, y], 10, first_real), want)


def test_only_blocks_with_undecided_windows_take_the_exact_pass() -> None:
    rng = np.random.default_rng(5)
    ordinary = [50 + np.cumsum(rng.normal(0, 0.5, 200)) for _ in range(6)]
    flat = ordinary[2].copy()
    flat[100:120] = 42.0
    for blocks, expected in ((ordinary, 0), (ordinary[:2] + [flat] + ordinary[3:], 1)):
        x, first_real, spans = _padded(blocks, np.float64)
        out = np.zeros(x.size, dtype=np.uint8)
        assert _screen(x, 20, first_real, out) == expected
        np.testing.assert_array_equal(out.view(bool), _pandas_flat(x, 20, spans, x.size))
