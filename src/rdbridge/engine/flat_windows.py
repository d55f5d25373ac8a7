"""Qlib's flat-window mask for Corr and Rsquare, without a rolling standard deviation per input.

Qlib sets ``Corr(x, y, N)`` to NaN where ``np.isclose(x.rolling(N, min_periods=1).std(), 0, atol=2e-05)`` (or the
same of ``y``), and ``Rsquare(x, N)`` where it holds for ``x``. Computing pandas' online std of every such input
takes a full Welford pass each (Alpha158: 15 passes that nothing else reads). The mask only needs to know on which
side of 2e-5 pandas' std falls, and almost every window is far from that line. So the window-sums pass of Corr
and Rsquare (``pair_windows``) screens each input as it goes, with a lower bound on the sample std from the
window's range R = max - min, itself at least any gap between two consecutive finite values of the window:

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

from rdbridge.engine.kernels import block_end
from rdbridge.engine.window_stats import STD, _sums_and_moments

FLAT_ATOL = 2e-5
"""Qlib's ``np.isclose(std, 0, atol=2e-05)``: flat when pandas' std is at most this (NaN never is)."""

MARGIN_REL = 1e-4
"""Screening margin per unit of the window's largest |value|: far above pandas' rounding of the std near 2e-5."""


@numba.njit(cache=True, nogil=True, inline="always")
def jump_screen(v: float, leaving: float, i: int, window: int, cnt: int, prev: float, prev_row: int, jump_from: int,
                scale: float, shrink: float) -> tuple[int, float, int, int, bool]:
    """One row of the screen for one input, inside a pass over the padded column (``pair_windows``): ``v`` enters
    the window at row ``i``, ``leaving`` leaves it (NaN when nothing does). State: finite values in the window, the
    last finite value and its row, and ``jump_from``, the earlier row of the latest far-apart pair of consecutive
    finite values. With ``scale`` = sqrt(2 (window - 1)) and ``shrink`` = 1 - scale MARGIN_REL: any window value
    lies within R of the pair's later value v, so |jump| shrink > scale (FLAT_ATOL + MARGIN_REL |v|) implies the
    screen of the module docstring. Returns the new state and whether row ``i``'s window is undecided. Pad rows
    are NaN and at least ``window - 1`` long, so state never carries a decision across instruments."""
    if np.isfinite(v):
        cnt += 1
        if prev_row >= 0 and abs(v - prev) * shrink > scale * (FLAT_ATOL + MARGIN_REL * abs(v)):
            jump_from = prev_row
        prev = v
        prev_row = i
    if np.isfinite(leaving):
        cnt -= 1
    return cnt, prev, prev_row, jump_from, cnt >= 2 and jump_from < i - window + 1


@numba.njit(cache=True, nogil=True)
def _settle(x: np.ndarray, window: int, first_real: np.ndarray, undecided: np.ndarray, bit: int,
            out: np.ndarray) -> None:
    n = x.size
    rows = np.full(4, -1, dtype=np.int64)
    rows[STD] = 0
    i = 0
    while i < n:
        if not undecided[i] & bit:
            i += 1
            continue
        f = first_real[i]
        end = block_end(i, first_real)
        m = end - f
        std = np.empty((1, m))
        _sums_and_moments(x[f:end], window, np.zeros(m, dtype=np.int64), rows, std)
        for j in range(m):
            if std[0, j] <= FLAT_ATOL:
                out[f + j] = np.nan
        i = end


def settle(x: np.ndarray, window: int, first_real: np.ndarray, undecided: np.ndarray, bit: int,
           out: np.ndarray) -> None:
    """Set ``out`` to NaN on the flat windows of every block holding a row the screen left undecided (``undecided
    & bit``), by pandas' exact std over that block alone: it equals the full-column pass bit for bit, because each
    block starts from empty state."""
    _settle(np.ascontiguousarray(x), int(window), first_real, undecided, int(bit), out)
