"""Corr / Cov and the fixed-window regressions (Slope, Resi, Rsquare): six running window sums and the per-row
result in one compiled pass.

The sums are Neumaier-compensated (``kernels._add``). Each row's correlation, or slope, residual and r^2, is computed
from the sums in registers, so the six sum columns (48 bytes a row) are written only when something reads them
(Cov). Corr and Rsquare also need Qlib's flat-window mask; the same pass screens each input for it
(``flat_windows``) and the few undecided blocks are settled afterwards with pandas' exact std.

Runs on the padded layout (``runner.py``): pad rows hold NaN and there are at least ``window - 1`` of them before
each block, so running sums over the whole column never mix instruments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from rdbridge.engine import buffers
from rdbridge.engine.flat_windows import MARGIN_REL, jump_screen, settle
from rdbridge.engine.kernels import _add, float_input


@numba.njit(cache=True, nogil=True, inline="always")
def _terms(x: float, y: float, pair: bool) -> tuple[bool, float, float, float, float, float]:
    """Whether a row counts, and its five summed quantities besides the count (see ``_window_pass``)."""
    if pair:
        return np.isfinite(x) and np.isfinite(y), x, y, x * y, x * x, y * y
    return not np.isnan(x), y, y * y, x, x * y, x * x


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _corr(n: float, sx: float, sy: float, sxy: float, sxx: float, syy: float) -> float:
    """Pearson correlation from window sums (population moments; a rounding-level negative variance is 0)."""
    if n < 2.0:
        return np.nan
    mx = sx / n
    my = sy / n
    cov = sxy / n - mx * my
    vx = sxx / n - mx * mx
    vy = syy / n - my * my
    if vx <= 0.0 or vy <= 0.0:  # a constant input over the pair's rows: undefined, NaN as pandas (never ±inf)
        return np.nan
    return cov / np.sqrt(vx * vy)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _regression(cnt: float, sk: float, sk2: float, sy: float, sky: float, syy: float, y: float, k: float,
                window: int) -> tuple[float, float, float]:
    """Qlib's slope, residual and r^2 on x = 1..window: a member at block position k sits at x = k - (k_now -
    window), so the sums of k are shifted by c = k_now - window."""
    c = k - window
    x = sk - c * cnt
    x2 = sk2 - 2.0 * c * sk + c * c * cnt
    xy = sky - c * sy
    num = cnt * xy - x * sy
    sxx = cnt * x2 - x * x
    if sxx == 0.0:  # one value (window 1): Qlib's exact sums give 0 / 0; ours, shifted, a rounding-level ±inf
        return np.nan, np.nan, np.nan
    slope = num / sxx
    resi = y - (slope * (k - c) + (sy / cnt - slope * (x / cnt)))
    r = num / np.sqrt(sxx * (cnt * syy - sy * sy))
    return slope, resi, r * r


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _window_pass(a: np.ndarray, b: np.ndarray, pair: bool, window: int, keep_sums: bool, sums: np.ndarray,
                 results: np.ndarray, screen: bool, undecided: np.ndarray) -> int:
    """One pass of six running window sums and the row results.

    ``pair``: rows where both ``a`` and ``b`` are finite count; sums of 1, a, b, ab, aa, bb; result: the
    correlation. Otherwise ``a`` is y and ``b`` the row's position k; rows where y is not NaN count; sums of 1, k,
    k^2, y, ky, y^2; results: slope, residual, r^2. ``keep_sums`` writes the sums too. ``screen`` marks in
    ``undecided`` the rows whose window of ``a`` (bit 1) or, for a pair, ``b`` (bit 2) the flat-window screen
    cannot decide; returns how many rows it marked."""
    s0 = s1 = s2 = s3 = s4 = s5 = 0.0  # the count, and a regression's sums of k and k^2, are integers: exact
    c1 = c2 = c3 = c4 = c5 = 0.0  # compensations (c1, c2 stay 0 for a regression)
    screen = screen and window >= 2  # a window of one row has std NaN: never flat
    scale = np.sqrt(2.0 * (window - 1)) if window >= 2 else 0.0
    shrink = 1.0 - scale * MARGIN_REL
    cnt_a = cnt_b = 0
    prev_a = prev_b = 0.0
    row_a = row_b = -1
    jump_a = jump_b = -1
    marked = 0
    for i in range(a.size):
        va, vb = np.float64(a[i]), np.float64(b[i])  # float32 inputs widen here, exactly
        ok, q1, q2, q3, q4, q5 = _terms(va, vb, pair)
        if ok:
            s0 += 1.0
            if pair:
                s1, c1 = _add(s1, c1, q1)
                s2, c2 = _add(s2, c2, q2)
            else:
                s1 += q1
                s2 += q2
            s3, c3 = _add(s3, c3, q3)
            s4, c4 = _add(s4, c4, q4)
            s5, c5 = _add(s5, c5, q5)
        if i >= window:
            lag = np.uint64(i - window)  # unsigned: no negative-index wrap-around test
            ua, ub = np.float64(a[lag]), np.float64(b[lag])
            ok, q1, q2, q3, q4, q5 = _terms(ua, ub, pair)
            if ok:
                s0 -= 1.0
                if pair:
                    s1, c1 = _add(s1, c1, -q1)
                    s2, c2 = _add(s2, c2, -q2)
                else:
                    s1 -= q1
                    s2 -= q2
                s3, c3 = _add(s3, c3, -q3)
                s4, c4 = _add(s4, c4, -q4)
                s5, c5 = _add(s5, c5, -q5)
        else:
            ua = ub = np.nan
        t0, t1, t2, t3, t4, t5 = s0, s1 + c1, s2 + c2, s3 + c3, s4 + c4, s5 + c5
        if keep_sums:
            sums[0, i] = t0
            sums[1, i] = t1
            sums[2, i] = t2
            sums[3, i] = t3
            sums[4, i] = t4
            sums[5, i] = t5
        if pair:
            results[0, i] = _corr(t0, t1, t2, t3, t4, t5)
        else:
            slope, resi, r2 = _regression(t0, t1, t2, t3, t4, t5, va, vb, window)
            results[0, i] = slope
            results[1, i] = resi
            results[2, i] = r2
        if screen:
            flag = 0
            cnt_a, prev_a, row_a, jump_a, open_a = jump_screen(va, ua, i, window, cnt_a, prev_a, row_a, jump_a,
                                                               scale, shrink)
            if open_a:
                flag = 1
            if pair:
                cnt_b, prev_b, row_b, jump_b, open_b = jump_screen(vb, ub, i, window, cnt_b, prev_b, row_b, jump_b,
                                                                   scale, shrink)
                if open_b:
                    flag |= 2
            undecided[i] = flag
            marked += flag != 0
    return marked


@dataclass
class WindowPass:
    """What ``pair_window`` / ``regression_window`` computed: the row results, and the sums if kept."""

    results: np.ndarray
    sums: np.ndarray | None


_NO_ROWS = np.zeros((0, 0))
_NO_FLAGS = np.zeros(0, dtype=np.uint8)


def _run(a: np.ndarray, b: np.ndarray, pair: bool, window: int, keep_sums: bool, first_real: np.ndarray | None,
         masked_row: int) -> WindowPass:
    a, b = float_input(a), float_input(b)
    sums = buffers.empty((6, a.size), dtype=np.float64) if keep_sums else _NO_ROWS
    results = buffers.empty((1 if pair else 3, a.size), dtype=np.float64)
    screen = first_real is not None
    flags = buffers.empty(a.size, dtype=np.uint8) if screen else _NO_FLAGS
    marked = _window_pass(a, b, pair, int(window), keep_sums, sums, results, screen, flags)
    if screen and marked:
        for bit, x in ((1, a), (2, b))[: 2 if pair else 1]:
            settle(x, int(window), first_real, flags, bit, results[masked_row])
    return WindowPass(results, sums if keep_sums else None)


def pair_window(x: np.ndarray, y: np.ndarray, window: int, *, keep_sums: bool = False,
                first_real: np.ndarray | None = None) -> WindowPass:
    """Correlation of ``x`` and ``y`` over rows where both are finite (results row 0), and with ``keep_sums`` the
    sums n, sx, sy, sxy, sxx, syy. With ``first_real`` (the layout's), windows where either input is flat in Qlib's
    sense (rolling std <= 2e-5) have NaN correlation, as Qlib's Corr."""
    return _run(x, y, True, window, keep_sums, first_real, 0)


def regression_window(y: np.ndarray, k: np.ndarray, window: int, *, first_real: np.ndarray | None = None) -> WindowPass:
    """Slope, residual and r^2 (results rows 0-2) of Qlib's rolling regression of ``y`` on x = 1..window (``k``: each
    row's position in its block). With ``first_real``, r^2 is NaN where y's window is flat, as Qlib's Rsquare."""
    return _run(y, k, False, window, False, first_real, 2)
