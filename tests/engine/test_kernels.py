"""The numba window kernels against naive per-row definitions, on padded blocks with NaNs, ties and short histories.

The equivalence tests check the kernels through Qlib; these pin the layout contract directly (pad rows before each
block, ``first_real``, empty windows on pad rows) and the expanding (window 0) paths Alpha158 never uses.
"""

from __future__ import annotations

import numpy as np
import pytest

from rdbridge.engine import kernels


def _layout(seed: int, window: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of 1-40 rows, each after max(window - 1, 3) NaN pad rows; values on a coarse grid (ties), 20 % NaN."""
    rng = np.random.default_rng(seed)
    pad = max(window - 1, 3)
    xs: list[float] = []
    first: list[int] = []
    for length in rng.integers(1, 40, size=6):
        start = len(xs) + pad
        xs += [np.nan] * pad + list(np.round(rng.normal(size=length) * 3))
        first += [start] * (pad + int(length))
    x = np.array(xs, dtype=dtype)
    real = np.arange(x.size) >= np.array(first)
    x[real & (rng.random(x.size) < 0.2)] = np.nan
    return x, np.array(first, dtype=np.int64)


def _windows(x: np.ndarray, first: np.ndarray, window: int):  # noqa: ANN202 - test helper generator
    for i in range(x.size):
        if i < first[i]:
            continue  # pad row: its value is masked by the engine
        lo = first[i] if window == 0 else max(first[i], i - window + 1)
        yield i, x[lo : i + 1]


CASES = [(seed, w, dt) for seed in range(3) for w in (0, 1, 2, 5, 13) for dt in (np.float32, np.float64)]


@pytest.mark.parametrize(("seed", "window", "dtype"), CASES)
def test_rank_pct_is_average_rank_over_count(seed: int, window: int, dtype: type) -> None:
    x, first = _layout(seed, window, dtype)
    got = kernels.rolling_rank_pct(x, window, first)
    for i, win in _windows(x, first, window):
        vals = win[~np.isnan(win)]
        if np.isnan(x[i]):
            assert np.isnan(got[i])
            continue
        want = ((vals < x[i]).sum() + ((vals == x[i]).sum() + 1) / 2) / vals.size
        assert got[i] == pytest.approx(want, rel=1e-12), i


@pytest.mark.parametrize(("seed", "window", "dtype"), CASES)
def test_quantiles_match_numpy_linear(seed: int, window: int, dtype: type) -> None:
    x, first = _layout(seed, window, dtype)
    qs = [0.0, 0.2, 0.5, 0.8, 1.0]
    got = kernels.rolling_ranks_and_quantiles(x, window, qs, False, first)
    for i, win in _windows(x, first, window):
        vals = win[~np.isnan(win)].astype(np.float64)
        for q in qs:
            if vals.size == 0:
                assert np.isnan(got[q][i])
            else:
                assert got[q][i] == pytest.approx(np.quantile(vals, q), rel=1e-12, abs=1e-12), (i, q)


@pytest.mark.parametrize(("seed", "window", "dtype"), CASES + [(0, 150, np.float32), (1, 150, np.float64)])
def test_shared_sorted_pass_gives_the_same_ranks_and_quantiles(seed: int, window: int, dtype: type) -> None:
    """Rank and Quantile of one input and window share a sorted-window pass; it must give exactly what each
    kernel gives alone (short windows count, long ones bisect; 150 rows takes the long path)."""
    x, first = _layout(seed, window, dtype)
    qs = [0.2, 0.8]
    got = kernels.rolling_ranks_and_quantiles(x, window, qs, True, first)
    real = np.arange(x.size) >= first
    np.testing.assert_array_equal(got["rank"][real], kernels.rolling_rank_pct(x, window, first)[real])
    alone = kernels.rolling_ranks_and_quantiles(x, window, qs, False, first)
    for q in qs:
        np.testing.assert_array_equal(got[q][real], alone[q][real])


@pytest.mark.parametrize(("seed", "window", "dtype"), [c for c in CASES if c[1] > 0])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_first_argmax_counts_nan_as_the_maximum(seed: int, window: int, dtype: type, sign: float) -> None:
    x, first = _layout(seed, window, dtype)
    x64 = x.astype(np.float64)
    x64[7] = np.inf  # inf behaves like NaN (Qlib's rolling sees it as missing)
    got = kernels.rolling_first_argmax(x64, sign, window, first)
    for i, win in _windows(x64, first, window):
        finite = np.isfinite(win)
        if not finite.any():
            assert np.isnan(got[i])
            continue
        score = np.where(finite, sign * win, np.inf)
        assert got[i] == np.argmax(score) + 1, i


@pytest.mark.parametrize("window", [1, 3, 20])
def test_rolling_sum_equals_direct_sums(window: int) -> None:
    rng = np.random.default_rng(window)
    a = rng.normal(size=3000) * 1e3 + 5e3
    got = kernels.rolling_sum(a, window)
    for i in range(a.size):
        assert got[i] == pytest.approx(a[max(0, i - window + 1) : i + 1].sum(), rel=1e-12, abs=1e-6)


@pytest.mark.parametrize(("seed", "window"), [(0, 5), (1, 13), (2, 60), (3, 150)])
def test_shared_sorted_pass_rank_and_quantiles_slide_over_long_blocks(seed: int, window: int) -> None:
    """The shared pass takes the rank from the slot it inserted the value at (walking its ties) instead of
    counting the window: checked against the definition on blocks much longer than the window, with many ties
    (values on a coarse grid) and NaNs leaving and entering the window; 150 takes the bisecting path."""
    rng = np.random.default_rng(seed)
    pad = window - 1
    xs: list[float] = []
    first: list[int] = []
    for length in (3 * window + 7, window // 2 + 1, 2 * window):
        start = len(xs) + pad
        xs += [np.nan] * pad + list(np.round(rng.normal(size=length) * 4))
        first += [start] * (pad + length)
    x = np.array(xs, dtype=np.float32)
    first_real = np.array(first, dtype=np.int64)
    real = np.arange(x.size) >= first_real
    x[real & (rng.random(x.size) < 0.15)] = np.nan
    got = kernels.rolling_ranks_and_quantiles(x, window, [0.2, 0.8], True, first_real)
    for i, win in _windows(x, first_real, window):
        vals = win[~np.isnan(win)].astype(np.float64)
        if np.isnan(x[i]) or vals.size == 0:
            assert np.isnan(got["rank"][i]), i
        else:
            want = ((vals < x[i]).sum() + ((vals == x[i]).sum() + 1) / 2) / vals.size
            assert got["rank"][i] == want, i
        for q in (0.2, 0.8):
            if vals.size == 0:
                assert np.isnan(got[q][i]), (i, q)
            else:
                assert got[q][i] == pytest.approx(np.quantile(vals, q), rel=1e-12, abs=1e-12), (i, q)


@pytest.mark.parametrize(("seed", "window"), [(0, 5), (1, 13), (2, 150)])
def test_rank_and_quantile_kernels_treat_infinities_as_missing(seed: int, window: int) -> None:
    """pandas' rolling sees ±inf as NaN; the kernels read the raw column (no prepared copy), so they skip ±inf
    themselves: the same results as with NaN in those rows, for the shared pass and the direct rank."""
    x, first = _layout(seed, window, np.float32)
    rng = np.random.default_rng(seed + 10)
    real = np.arange(x.size) >= first
    hit = real & (rng.random(x.size) < 0.1)
    with_inf = x.copy()
    with_inf[hit] = np.where(rng.random(hit.sum()) < 0.5, np.inf, -np.inf).astype(np.float32)
    with_nan = x.copy()
    with_nan[hit] = np.nan
    got = kernels.rolling_ranks_and_quantiles(with_inf, window, [0.2, 0.8], True, first)
    want = kernels.rolling_ranks_and_quantiles(with_nan, window, [0.2, 0.8], True, first)
    for k in ("rank", 0.2, 0.8):
        np.testing.assert_array_equal(got[k][real], want[k][real], err_msg=str(k))
    np.testing.assert_array_equal(kernels.rolling_rank_pct(with_inf, window, first)[real],
                                  kernels.rolling_rank_pct(with_nan, window, first)[real])


@pytest.mark.parametrize("window", [0, 3, 4, 5, 20])
@pytest.mark.parametrize("kind", ["skew", "kurt"])
def test_skew_and_kurt_equal_pandas_rolling_bit_for_bit(window: int, kind: str) -> None:
    """pandas 3's online central moments (anchor, recompute on cancellation), not merely close: near-flat windows
    otherwise come out 0 against 1e-18, ±1e15 against inf. Blocks carry flat runs, a large offset, tiny noise
    around it, NaN gaps and histories shorter than the window."""
    import pandas as pd

    rng = np.random.default_rng(window)
    blocks = [rng.normal(size=3), np.round(rng.normal(size=200) * 3) + 5, 1e6 + rng.normal(size=150) * 1e-7,
              (rng.standard_normal(300).cumsum() * 3 + 1e4).round(2)]
    blocks[1][40:70] = 2.0
    blocks[3][rng.random(300) < 0.1] = np.nan
    blocks[3][100:130] = blocks[3][100]
    pad = 25
    x = np.concatenate([np.concatenate([np.full(pad, 77.0), b]) for b in blocks])  # pad slots: never read
    first = np.concatenate([np.full(pad + b.size, pad + sum(pad + c.size for c in blocks[:k]), dtype=np.int64)
                            for k, b in enumerate(blocks)])
    got = kernels.rolling_central_moments(x, window, first, kind)
    at = 0
    for b in blocks:
        s = pd.Series(b)
        roll = s.rolling(window, min_periods=1) if window else s.expanding(min_periods=1)
        np.testing.assert_array_equal(got[at + pad : at + pad + b.size], getattr(roll, kind)().to_numpy())
        assert np.isnan(got[at : at + pad]).all()
        at += pad + b.size


def _apply_blocks(seed: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], int]:
    """Blocks for the rolling-apply operators: volume-sized values that differ in the 8th digit, ties, NaN gaps,
    a block shorter than the windows; pad slots hold garbage (never read)."""
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(size=3), 1e7 + rng.normal(size=300) * 50, np.round(rng.normal(size=200) * 3)]
    blocks[1][rng.random(300) < 0.1] = np.nan
    blocks[2][:7] = np.nan
    pad = 5
    x = np.concatenate([np.concatenate([np.full(pad, 9.0), b]) for b in blocks])
    first = np.concatenate([np.full(pad + b.size, pad + sum(pad + c.size for c in blocks[:k]), dtype=np.int64)
                            for k, b in enumerate(blocks)])
    return x, first, blocks, pad


def _qlib_mad(x: np.ndarray) -> float:
    x1 = x[~np.isnan(x)]
    return np.mean(np.abs(x1 - x1.mean()))


def _qlib_wma(x: np.ndarray) -> float:
    w = np.arange(len(x)) + 1
    w = w / w.sum()
    return np.nanmean(w * x)


def _qlib_ema0(x: np.ndarray) -> float:
    a = 1 - 2 / (1 + len(x))
    w = a ** np.arange(len(x))[::-1]
    w /= w.sum()
    return np.nansum(w * x)


@pytest.mark.parametrize("window", [0, 1, 3, 20, 200])
def test_mad_wma_and_expanding_ema_equal_qlibs_rolling_apply_bit_for_bit(window: int) -> None:
    """Qlib computes Mad, WMA and EMA(x, 0) with numpy functions in ``rolling.apply``; the kernels repeat numpy's
    pairwise summation, so a window of large, nearly equal values gives numpy's result, not a near miss."""
    import pandas as pd

    x, first, blocks, pad = _apply_blocks(window)
    got = {"mad": kernels.rolling_mad(x, window, first), "wma": kernels.rolling_wma(x, window, first)}
    if window == 0:
        got["ema0"] = kernels.expanding_ema(x, first)
    fns = {"mad": _qlib_mad, "wma": _qlib_wma, "ema0": _qlib_ema0}
    at = 0
    for b in blocks:
        s = pd.Series(b)
        roll = s.rolling(window, min_periods=1) if window else s.expanding(min_periods=1)
        for name, col in got.items():
            want = roll.apply(fns[name], raw=True).to_numpy()
            np.testing.assert_array_equal(col[at + pad : at + pad + b.size], want, err_msg=name)
        at += pad + b.size


@pytest.mark.parametrize("window", [0, 2, 5, 20])
def test_quantiles_of_float32_equal_pandas_bit_for_bit(window: int) -> None:
    """pandas interpolates in float64 between float32 neighbours (8-digit volumes: a float32 difference is off by
    one unit)."""
    import pandas as pd

    x, first, blocks, pad = _apply_blocks(10 + window)
    x32 = x.astype(np.float32)
    got = kernels.rolling_ranks_and_quantiles(x32, window, [0.2, 0.5, 0.8], False, first)
    at = 0
    for b in blocks:
        s = pd.Series(b.astype(np.float32))
        roll = s.rolling(window, min_periods=1) if window else s.expanding(min_periods=1)
        for q in (0.2, 0.5, 0.8):
            np.testing.assert_array_equal(got[q][at + pad : at + pad + b.size], roll.quantile(q).to_numpy())
        at += pad + b.size


@pytest.mark.parametrize("n", [1, 2, 5, 20, 0.3])
def test_ewm_mean_equals_pandas_bit_for_bit(n: float) -> None:
    """Qlib's ``EMA(x, N)`` is ``ewm(span=N)`` (``alpha=N`` below 1) per instrument; leading and inner NaN carry the
    last value, a constant run stays exactly constant."""
    import pandas as pd

    x, first, blocks, pad = _apply_blocks(int(n * 10))
    kw = {"alpha": n} if n < 1 else {"span": n}
    got = kernels.ewm_mean(x, first, **kw)
    at = 0
    for b in blocks:
        want = pd.Series(b).ewm(min_periods=1, **kw).mean().to_numpy()
        np.testing.assert_array_equal(got[at + pad : at + pad + b.size], want)
        assert np.isnan(got[at : at + pad]).all()
        at += pad + b.size
