"""The one-pass Mean / Var / Std / Max / Min kernel against pandas' own rolling, block by block.

Qlib runs ``Series.rolling(N, min_periods=1)`` per instrument; the kernel keeps pandas' online state, so mean, max
and min must come out bit for bit, and var/std to pandas' rounding. The blocks carry what trips online algorithms:
NaN gaps, ±inf (pandas treats them as missing), runs of equal values (pandas' exact 0 variance), large offsets, and
histories shorter than the window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rdbridge.engine.window_stats import window_moments


def _blocks(seed: int, dtype: type) -> tuple[np.ndarray, np.ndarray, list[tuple[int, np.ndarray]]]:
    """Padded column, ``first_real``, and (first row, values) per block."""
    rng = np.random.default_rng(seed)
    pad = 61
    xs: list[np.ndarray] = []
    first: list[int] = []
    blocks: list[tuple[int, np.ndarray]] = []
    at = 0
    for length in [1, 2, 7, 150, 400, 90]:
        v = (rng.standard_normal(length).cumsum() * 3 + 1e4 * rng.random()).round(2)
        v[rng.random(length) < 0.08] = np.nan
        if length > 100:
            v[20:35] = v[20]  # a flat run: pandas' variance is exactly 0 there
            v[50] = np.inf
            v[51] = -np.inf
            v[60:64] = -v[60:64]  # sign changes for the mean's clamps
        v = v.astype(dtype)
        xs += [np.full(pad, np.nan, dtype=dtype), v]
        first += [at + pad] * (pad + length)
        blocks.append((at + pad, v))
        at += pad + length
    return np.concatenate(xs), np.array(first, dtype=np.int64), blocks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", [0, 1, 2, 3, 5, 20, 60])
def test_moments_equal_pandas_rolling(window: int, dtype: type) -> None:
    x, first, blocks = _blocks(window, dtype)
    got = window_moments(x, window, first, ["mean", "var", "std", "sum", "max", "min"])
    for start, values in blocks:
        s = pd.Series(values)
        roll = s.rolling(window, min_periods=1) if window else s.expanding(min_periods=1)
        rows = slice(start, start + values.size)
        for stat in ("mean", "sum", "max", "min"):
            np.testing.assert_array_equal(got[stat][rows], getattr(roll, stat)().to_numpy(), err_msg=stat)
        for stat in ("var", "std"):
            ref = getattr(roll, stat)().to_numpy()
            np.testing.assert_array_equal(np.isnan(got[stat][rows]), np.isnan(ref), err_msg=stat)
            np.testing.assert_array_equal(got[stat][rows], ref, err_msg=stat)
            flat = (ref == 0.0)
            assert (got[stat][rows][flat] == 0.0).all(), f"{stat}: a window of equal values must be exactly 0"
    pads = np.arange(x.size) < first
    for stat, col in got.items():
        assert np.isnan(col[pads]).all(), f"{stat} must be NaN on pad rows"


def test_only_the_requested_stats_come_back() -> None:
    x, first, _ = _blocks(1, np.float64)
    assert set(window_moments(x, 5, first, ["std", "max"])) == {"std", "max"}
