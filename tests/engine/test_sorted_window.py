"""The sorted-window kernel (Med, Quantile, Rank) and the other window kernels never write or read outside their
buffers, whatever the input: issue 25's heap corruption came from a pad row's finite value (a computed column's
pads hold whatever its producer left there) entering the sorted buffer, one more value than it was sized for.

Each case is checked value for value against pandas per block; the buffer size is checked as a formula, and the
kernel checks it itself on every insertion. ``test_kernels_pass_under_numba_boundscheck`` reruns these tests and
``test_kernels.py`` in a subprocess with ``NUMBA_BOUNDSCHECK=1`` and a fresh numba cache (cached machine code
compiled without the checks would otherwise be reused), so an out-of-bounds index is an ``IndexError``, not a
silent write.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rdbridge.engine import kernels

GARBAGE = 5.0
"""What a computed column may hold in its pad slots (``Greater($close, 5)`` left 5.0 there)."""


def _padded(blocks: list[np.ndarray], pad: int, dtype: type, pad_value: float) -> tuple[np.ndarray, np.ndarray]:
    xs: list[float] = []
    first: list[int] = []
    for b in blocks:
        start = len(xs) + pad
        xs += [pad_value] * pad + list(b)
        first += [start] * (pad + len(b))
    return np.array(xs, dtype=dtype), np.array(first, dtype=np.int64)


def _pandas(blocks: list[np.ndarray], window: int, pad: int, qs: list[float]) -> dict[object, np.ndarray]:
    """pandas' rolling quantiles and pct rank per block (±inf as NaN), NaN on pad rows."""
    out: dict[object, list[float]] = {q: [] for q in [*qs, "rank"]}
    for b in blocks:
        s = pd.Series(np.asarray(b, dtype=np.float64)).replace([np.inf, -np.inf], np.nan)
        r = s.expanding(min_periods=1) if window == 0 else s.rolling(window, min_periods=1)
        for q in qs:
            out[q] += [np.nan] * pad + list(r.quantile(q))
        out["rank"] += [np.nan] * pad + list(r.rank(pct=True))
    return {k: np.array(v) for k, v in out.items()}


def _blocks(kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    if kind == "ties":  # integer-valued, few distinct values (If(...,1,2), Count, Sign)
        return [rng.integers(0, 3, size=int(n)).astype(float) for n in (1, 7, 40, 3)]
    if kind == "all_equal":
        return [np.full(int(n), 2.0) for n in (1, 5, 30)]
    if kind == "all_nan":
        return [np.full(int(n), np.nan) for n in (1, 6, 25)]
    if kind == "nan_inf_runs":
        b = rng.integers(0, 4, size=60).astype(float)
        b[5:15] = np.nan
        b[20:23] = np.inf
        b[30:33] = -np.inf
        return [b, np.array([np.nan, 1.0, np.nan])]
    if kind == "short_series":  # every block shorter than the longer windows
        return [rng.normal(size=int(n)).round(1) for n in (1, 2, 3)]
    raise AssertionError(kind)


KINDS = ("ties", "all_equal", "all_nan", "nan_inf_runs", "short_series")
WINDOWS = (1, 2, 3, 5, 10, 200, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("kind", KINDS)
def test_sorted_window_pass_equals_pandas_with_garbage_pads(kind: str, window: int, dtype: type) -> None:
    blocks = _blocks(kind, np.random.default_rng(len(kind) * 31 + window))
    pad = max(window - 1, 1)
    qs = [0.0, 0.3, 0.5, 1.0]
    for pad_value in (GARBAGE, np.nan, -1e30):
        x, first = _padded(blocks, pad, dtype, pad_value)
        got = kernels.rolling_ranks_and_quantiles(x, window, qs, True, first)
        want = _pandas([b.astype(dtype) for b in blocks], window, pad, qs)
        real = np.arange(x.size) >= first
        for key in [*qs, "rank"]:
            g, w = got[key][real], want[key][real]
            assert np.array_equal(np.isnan(g), np.isnan(w)), (key, pad_value)
            np.testing.assert_allclose(g, w, rtol=1e-6 if dtype is np.float32 else 1e-12, atol=1e-12,
                                       err_msg=f"{key} pad={pad_value}")


@pytest.mark.parametrize("window", WINDOWS)
def test_rank_and_argmax_kernels_ignore_garbage_pads(window: int) -> None:
    blocks = _blocks("ties", np.random.default_rng(window))
    pad = max(window - 1, 1)
    x, first = _padded(blocks, pad, np.float64, GARBAGE)
    want = _pandas(blocks, window, pad, [])["rank"]
    real = np.arange(x.size) >= first
    np.testing.assert_allclose(kernels.rolling_rank_pct(x, window, first)[real], want[real], rtol=1e-12)
    got = kernels.rolling_first_argmax(x, 1.0, window, first)
    clean, _ = _padded(blocks, pad, np.float64, np.nan)
    np.testing.assert_array_equal(got[real], kernels.rolling_first_argmax(clean, 1.0, window, first)[real])


@pytest.mark.parametrize(("n", "window", "size"), [(0, 5, 1), (1, 1, 2), (10, 1, 2), (10, 3, 4), (3, 200, 4),
                                                   (7, 0, 8)])
def test_sorted_buffer_size_is_the_window_plus_one(n: int, window: int, size: int) -> None:
    assert kernels.sorted_buffer_size(n, window) == size


def test_sorted_window_pass_checks_its_buffer_instead_of_writing_past_it() -> None:
    """Given a buffer one slot short of what the window needs, the kernel stops with an IndexError."""
    x = np.arange(12, dtype=np.float64)
    first = np.zeros(12, dtype=np.int64)
    out = np.empty((1, 12))
    for window in (1, 3, 0):
        size = kernels.sorted_buffer_size(x.size, window)
        kernels._sorted_window_pass(x, window, first, np.array([0.5]), out, -1, np.empty(size))  # enough: fine
        need = x.size if window == 0 else window
        with pytest.raises(IndexError):
            kernels._sorted_window_pass(x, window, first, np.array([0.5]), out, -1, np.empty(need - 1))


def test_every_issue_25_crash_expression_computes() -> None:
    """The six expressions that corrupted the heap, on a panel with suspensions and late listings; pyqlib's values
    for them are compared in ``test_fuzz_qlib.py``."""
    import polars as pl

    from rdbridge.engine import compute
    from rdbridge.engine.synthetic import make_panel

    panel = make_panel(12, 120, seed=3, late_listing_frac=0.3, suspension_frac=0.05)
    exprs = {
        "a": "Med(Greater($close, 5), 3)", "b": "Med(If(($close > 0), 1, 2), 3)", "c": "Med(Count($close, 2), 10)",
        "d": "Med(Corr($high, $high, 20), 1)", "e": "Quantile(If(($close > $open), 1, 2), 10, 0.3)",
        "f": "Quantile(Count($close, 2), 5, 0.5)",
    }
    got = compute(panel, exprs)
    assert got.height == panel.height
    # medians of 1s and 2s (2 values at a history's start give 1.5): nothing else, no garbage from the pads
    assert set(got.select(pl.col("b").drop_nans().unique()).to_series().to_list()) <= {1.0, 1.5, 2.0}


BOUNDSCHECKED = ("tests/engine/test_sorted_window.py", "tests/engine/test_kernels.py")


def test_kernels_pass_under_numba_boundscheck(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *BOUNDSCHECKED,
           "-k", "not boundscheck and not issue_25"]
    run = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
