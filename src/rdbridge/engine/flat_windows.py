"""Qlib's flat-window mask for Corr and Rsquare, without a rolling standard deviation per input.

Qlib sets ``Corr(x, y, N)`` to NaN where ``np.isclose(x.rolling(N, min_periods=1).std(), 0, atol=2e-05)`` (or the
same of ``y``), and ``Rsquare(x, N)`` where it holds for ``x``. Computing pandas' online std of every such input
takes a full Welford pass each (Alpha158: 15 passes that nothing else reads). The mask only needs to know on which
side of 2e-5 pandas' std falls, and almost every window is far from that line, so this kernel screens with the
window's range R = max - min, which bounds the sample std from below:

    std >= R / sqrt(2 (cnt - 1))        (two values at the extremes, all others at the mean)

A window with fewer than two finite values has std NaN: not flat. A window whose lower bound exceeds 2e-5 by a
margin that covers pandas' rounding (``MARGIN_REL`` times the window's largest magnitude; pandas' online variance
drifts by far less, about ``eps * window * magnitude**2`` per update between its recomputations) is not flat. Any
other window, flat ones included, is decided by pandas' own arithmetic: the exact online std (``window_stats``)
of that instrument's block only, which equals the full-column pass bit for bit because every block starts from
empty state. So the mask is exactly Qlib's, and the exact pass runs on the few blocks that need it.
"""

from __future__ import annotations

import numba
import numpy as np

from rdbridge.engine.window_stats import STD, _sums_and_moments

FLAT_ATOL = 2e-5
"""Qlib's ``np.isclose(std, 0, atol=2e-05)``: flat when pandas' std is at most this (NaN never is)."""

MARGIN_REL = 1e-4
"""Screening margin per unit of the window's largest |value|: far above pandas' rounding of the std near 2e-5."""


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _screen(x: np.ndarray, window: int, first_real: np.ndarray, flat: np.ndarray) -> int:
    """OR this input's flat mask into ``flat`` (1 = flat); returns how many blocks needed the exact std.

    One forward pass per block. A window is surely not flat when it holds two consecutive finite values (a
    "jump") far enough apart: with c = sqrt(2 (W - 1)) for the window length W (>= the count's), any window
    value lies within R of the jump's later value v, so |jump| (1 - c MARGIN_REL) > c (FLAT_ATOL + MARGIN_REL |v|)
    implies R > c (FLAT_ATOL + MARGIN_REL max|window|), the screen of the module docstring. Windows with fewer
    than two finite values are not flat (std NaN); any other window sends its block to the exact std."""
    n = x.size
    rows = np.full(4, -1, dtype=np.int64)
    rows[STD] = 0
    exact_blocks = 0
    i = 0
    while i < n:
        f = first_real[i]
        end = i
        while end < n and first_real[end] == f:
            end += 1
        w = window if window > 0 else end - f
        if w < 2:  # windows of one row: std is NaN everywhere
            i = end
            continue
        c = np.sqrt(2.0 * (w - 1))
        k = 1.0 - c * MARGIN_REL
        undecided = k <= 0.0
        prev = 0.0
        prev_row = -1
        jump_from = -1  # earlier row of the latest far-apart pair of consecutive finite values
        cnt = 0
        for j in range(f, end):
            if undecided:
                break
            v = x[j]
            if np.isfinite(v):
                cnt += 1
                if prev_row >= 0 and abs(v - prev) * k > c * (FLAT_ATOL + MARGIN_REL * abs(v)):
                    jump_from = prev_row
                prev = v
                prev_row = j
            if window > 0 and j - w >= f and np.isfinite(x[j - w]):
                cnt -= 1
            if cnt >= 2 and jump_from < j - w + 1:
                undecided = True
        if undecided:  # pandas' std over this block decides every window of it
            exact_blocks += 1
            m = end - f
            std = np.empty((1, m))
            _sums_and_moments(x[f:end], window, np.zeros(m, dtype=np.int64), rows, std)
            for j in range(m):
                if std[0, j] <= FLAT_ATOL:
                    flat[f + j] = 1
        i = end
    return exact_blocks


def flat_mask(inputs: list[np.ndarray], window: int, first_real: np.ndarray) -> np.ndarray:
    """Rows (of the padded layout) where any input's window is flat in Qlib's sense: ``bool``, pad rows False.
    Inputs are float32 or float64 (NaN and ±inf missing, as pandas' rolling sees them)."""
    flat = np.zeros(first_real.size, dtype=np.uint8)
    for x in inputs:
        if x.dtype != np.float32:
            x = np.ascontiguousarray(x, dtype=np.float64)
        _screen(x, int(window), first_real, flat)
    return flat.view(bool)
