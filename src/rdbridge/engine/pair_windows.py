"""Cov / Corr and Qlib's regressions (Slope, Resi, Rsquare), each with its reference tool's own arithmetic.

Qlib's ``Cov``/``Corr`` are pandas' ``rolling(N, min_periods=1).cov/corr`` per instrument, and its ``Slope``/
``Resi``/``Rsquare`` are Cython loops over running sums (``qlib/data/_libs/rolling.pyx`` and ``expanding.pyx``).
Formulas that are equal on paper round differently, and where a window is nearly flat (a constant input, equal
values, an exact fit) later operators blow the rounding residue up: ``1 / Cov`` is ±1e15 against inf, ``Sign(Cov)``
is ±1 against 0. So the kernels below repeat each tool's IEEE operations in its order, to get its numbers bit for
bit rather than close:

- pairs (``_pair_pass``): pandas 3's online co-moments. Each window's state is anchored to its first value
  (``origin``), means and sums of co-deviations are updated Welford-style, the largest deviation absorbed is
  tracked, and the window is recomputed from scratch when an update looks like catastrophic cancellation.
  Covariance and correlation come from the same state.
- regressions (``_regression_pass``): Qlib's uncompensated running sums of x, x^2, y, y^2 and x*y on x = 1..N,
  shifted by one slot per row and never reset within an instrument (missing values count in the window, as in
  Qlib's deque of NaN), and its slope / residual / r^2 formulas.

Both run over the engine's padded layout (``runner.py``): ``first_real[i]`` is the first real row of row ``i``'s
block, state starts empty at each block (each instrument is a separate pandas / Cython call in Qlib), pad rows are
never read and come out NaN. ``window == 0`` is Qlib's expanding form.

Corr and Rsquare also need Qlib's flat-window mask; the same pass screens each input for it (``flat_windows``) and
the few undecided blocks are settled afterwards with pandas' exact std.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from rdbridge.engine import buffers
from rdbridge.engine.flat_windows import MARGIN_REL, jump_screen, settle
from rdbridge.engine.kernels import float_input

_EPS = np.finfo(np.float64).eps
INV_COND_TOL = _EPS * 1e3
"""pandas: an accumulator that shrank below ``INV_COND_TOL`` times the square of the largest deviation it absorbed
holds mostly round-off (3 significant digits left), and the window is recomputed."""
MAX_ORIGIN = np.sqrt(np.finfo(np.float64).max)
"""pandas anchors a window on its first value unless that value is this large (its squares would overflow)."""


@numba.njit(cache=True, nogil=True, inline="always")
def _suspect(cxy: float, cxx: float, cyy: float, px: float, py: float) -> bool:
    """pandas' ``cancellation_suspected``: NaN anywhere, or an accumulator mostly round-off."""
    if np.isnan(cxy) or np.isnan(cxx) or np.isnan(cyy):
        return True
    return px * py * INV_COND_TOL > abs(cxy) or px * px * INV_COND_TOL > cxx or py * py * INV_COND_TOL > cyy


_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's split of a double into two 26-bit halves
NEAR_MIDPOINT = 0.48
"""``sqrt`` is correctly rounded and C ``pow(v, 0.5)`` within 0.52 ulp, so they can differ only where the exact
root lies within 0.02 ulp of a rounding midpoint; nearer than this to one, ``_pow_half`` asks ``pow`` itself."""


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _pow_half(v: float, half: float, fbits: np.ndarray, ibits: np.ndarray) -> float:
    """C ``pow(v, 0.5)`` (what pandas' ``(ssqdm_x * ssqdm_y) ** 0.5`` runs; an ulp off ``sqrt`` in about 1 value of
    1,000) at the cost of a ``sqrt``: the exact residual of ``s * s - v`` (Dekker's product) gives how far the exact
    root is from ``s`` in ulps, and only roots near a midpoint (~4%) call ``pow``. ``half`` is 0.5 passed at run
    time, so LLVM cannot rewrite that ``pow`` into ``sqrt``; ``fbits``/``ibits``: one float64 slot and its int64
    view, to read the ulp of ``s`` from its exponent bits."""
    s = np.sqrt(v)
    if not (s > 1e-140 and s < 1e150):
        return v ** half
    c = _SPLIT * s
    hi = c - (c - s)
    lo = s - hi
    sq = s * s
    resid = (sq - v) + (((hi * hi - sq) + 2.0 * hi * lo) + lo * lo)  # s*s - v, exactly (sq - v: Sterbenz)
    fbits[0] = s
    ibits[0] = ((ibits[0] >> 52) - 52) << 52  # ulp(s): s's exponent, 52 binades down (s is normal and positive)
    if abs(resid) > NEAR_MIDPOINT * 2.0 * s * fbits[0]:  # |exact root - s| > 0.48 ulp: pow may round the other way
        return v ** half
    return s


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _co_add(x: float, y: float, n: float, mx: float, my: float, ox: float, oy: float, cxy: float, cxx: float,
            cyy: float, px: float, py: float) -> tuple[float, float, float, float, float, float, float, float, float,
                                                       float, float, bool]:
    """pandas' ``add_cov``: ``x``, ``y`` enter (both finite). Returns the state and whether it looks unstable."""
    n += 1.0
    if n == 1.0:
        ox = x if abs(x) < MAX_ORIGIN else 0.0
        oy = y if abs(y) < MAX_ORIGIN else 0.0
    sx = x - ox
    sy = y - oy
    dx = sx - mx
    dy = sy - my
    mx += dx / n
    my += dy / n
    cxy += (sx - mx) * dy
    cxx += (sx - mx) * dx
    cyy += (sy - my) * dy
    px = max(px, abs(sx - mx))
    py = max(py, abs(sy - my))
    return n, mx, my, ox, oy, cxy, cxx, cyy, px, py, _suspect(cxy, cxx, cyy, px, py)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _pair_pass(a: np.ndarray, b: np.ndarray, window: int, first_real: np.ndarray, out: np.ndarray, screen: bool,
               undecided: np.ndarray, half: float, cov: bool) -> int:
    """pandas' ``roll_cov`` / ``roll_corr`` (``min_periods=1``, ddof 1) of ``a`` and ``b`` per block into ``out``
    rows 0 (cov, NaN unless ``cov``: its division costs 4% of a pass) and 1 (corr); rows where either value is NaN or ±inf are skipped (pandas: ``x + 0*y``, inf as NaN).
    With ``screen``, marks in ``undecided`` the rows whose window of ``a`` (bit 1) or ``b`` (bit 2) the flat-window
    screen cannot decide, and returns how many rows it marked.

    ``half`` is 0.5, for ``_pow_half``."""
    screen = screen and window >= 2  # a window of one row has std NaN: never flat
    scale = np.sqrt(2.0 * (window - 1)) if window >= 2 else 0.0
    shrink = 1.0 - scale * MARGIN_REL
    fbits = np.empty(1)
    ibits = fbits.view(np.int64)
    block = -1
    n = mx = my = ox = oy = cxy = cxx = cyy = px = py = 0.0
    bad = False
    cnt_a = cnt_b = 0
    prev_a = prev_b = 0.0
    row_a = row_b = jump_a = jump_b = -1
    marked = 0
    for i in range(a.size):
        f = first_real[i]
        if i < f:  # a pad row
            out[0, i] = np.nan
            out[1, i] = np.nan
            if screen:
                undecided[i] = 0
            continue
        ua = ub = np.nan
        if f != block:  # the screen's state starts empty too
            cnt_a = cnt_b = 0
            row_a = row_b = jump_a = jump_b = -1
        if f != block or window == 1:  # a new instrument (pandas recomputes a window-1 row from scratch)
            block = f
            n = mx = my = ox = oy = cxy = cxx = cyy = px = py = 0.0
            bad = False
        elif window > 1 and i - window >= f:  # a[i - window] leaves
            lag = np.uint64(i - window)
            ua, ub = np.float64(a[lag]), np.float64(b[lag])
            if np.isfinite(ua) and np.isfinite(ub):  # pandas' remove_cov
                sx = ua - ox
                sy = ub - oy
                dx = sx - mx
                dy = sy - my
                n -= 1.0
                if n != 0.0:
                    mx -= dx / n
                    my -= dy / n
                    cxy -= (sx - mx) * dy
                    cxx -= (sx - mx) * dx
                    cyy -= (sy - my) * dy
                    px = max(px, abs(sx - mx))
                    py = max(py, abs(sy - my))
                    bad = bad or _suspect(cxy, cxx, cyy, px, py)
                else:
                    mx = my = ox = oy = cxy = cxx = cyy = px = py = 0.0
                    bad = False
        va, vb = np.float64(a[i]), np.float64(b[i])  # float32 inputs widen here, exactly
        if np.isfinite(va) and np.isfinite(vb):
            n, mx, my, ox, oy, cxy, cxx, cyy, px, py, worse = _co_add(va, vb, n, mx, my, ox, oy, cxy, cxx, cyy,
                                                                      px, py)
            bad = bad or worse
        if bad:  # pandas' recompute of the whole window
            n = mx = my = ox = oy = cxy = cxx = cyy = px = py = 0.0
            for j in range(max(f, i - window + 1) if window > 0 else f, i + 1):
                u, w = np.float64(a[j]), np.float64(b[j])
                if np.isfinite(u) and np.isfinite(w):
                    n, mx, my, ox, oy, cxy, cxx, cyy, px, py, worse = _co_add(u, w, n, mx, my, ox, oy, cxy, cxx,
                                                                              cyy, px, py)
            bad = False
        out[0, i] = cxy / (n - 1.0) if cov and n > 1.0 else np.nan
        if n <= 0.0 or cxx == 0.0 or cyy == 0.0:
            out[1, i] = np.nan
        else:
            r = cxy / _pow_half(cxx * cyy, half, fbits, ibits)
            out[1, i] = 1.0 if r > 1.0 else (-1.0 if r < -1.0 else r)
        if screen:
            flag = 0
            cnt_a, prev_a, row_a, jump_a, open_a = jump_screen(va, ua, i, window, cnt_a, prev_a, row_a, jump_a,
                                                               scale, shrink)
            cnt_b, prev_b, row_b, jump_b, open_b = jump_screen(vb, ub, i, window, cnt_b, prev_b, row_b, jump_b,
                                                               scale, shrink)
            if open_a:
                flag = 1
            if open_b:
                flag |= 2
            undecided[i] = flag
            marked += flag != 0
    return marked


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _regression_pass(y: np.ndarray, window: int, first_real: np.ndarray, out: np.ndarray, screen: bool,
                     undecided: np.ndarray) -> int:
    """Qlib's ``rolling_slope`` / ``rolling_resi`` / ``rolling_rsquare`` (``expanding_*`` for ``window == 0``) of
    ``y`` per block into ``out`` rows 0-2. Only NaN is missing (Qlib adds ±inf to its sums). With ``screen``, marks
    the rows whose window the flat-window screen cannot decide (bit 1) and returns how many."""
    screen = screen and window >= 2
    scale = np.sqrt(2.0 * (window - 1)) if window >= 2 else 0.0
    shrink = 1.0 - scale * MARGIN_REL
    w = float(window)
    w2 = float(window * window)
    block = -1
    i_sum = x_sum = x2_sum = y_sum = y2_sum = xy_sum = 0.0
    na = 0
    cnt = 0
    prev = 0.0
    row = jump = -1
    marked = 0
    for i in range(y.size):
        f = first_real[i]
        if i < f:  # a pad row
            out[0, i] = np.nan
            out[1, i] = np.nan
            out[2, i] = np.nan
            if screen:
                undecided[i] = 0
            continue
        if f != block:  # a new instrument: Qlib's fresh state (a deque of ``window`` NaN)
            block = f
            i_sum = x_sum = x2_sum = y_sum = y2_sum = xy_sum = 0.0
            na = window
            cnt = 0
            row = jump = -1
        v = np.float64(y[i])
        leaving = np.nan
        if window > 0:
            xy_sum = xy_sum - y_sum  # every member moves one slot left
            x2_sum = x2_sum + i_sum - 2 * x_sum
            x_sum = x_sum - i_sum
            if i - window >= f:
                leaving = np.float64(y[np.uint64(i - window)])
            if not np.isnan(leaving):
                i_sum -= 1
                y_sum -= leaving
                y2_sum -= leaving * leaving
            else:
                na -= 1
            if np.isnan(v):
                na += 1
            else:
                i_sum += 1
                x_sum += w
                x2_sum += w2
                y_sum += v
                y2_sum += v * v
                xy_sum += w * v
            m = float(window - na)
            at = w
        else:
            size = i - f + 1
            if np.isnan(v):
                na += 1
            else:
                x_sum += size
                x2_sum += size * size
                y_sum += v
                y2_sum += v * v
                xy_sum += size * v
            m = float(size - na)
            at = float(size)
        num = m * xy_sum - x_sum * y_sum
        sxx = m * x2_sum - x_sum * x_sum
        slope = num / sxx
        out[0, i] = slope
        out[1, i] = v - (slope * at + (y_sum / m - slope * (x_sum / m)))
        r = num / np.sqrt(sxx * (m * y2_sum - y_sum * y_sum))
        out[2, i] = r * r
        if screen:
            cnt, prev, row, jump, undecided_row = jump_screen(v, leaving, i, window, cnt, prev, row, jump, scale,
                                                              shrink)
            undecided[i] = 1 if undecided_row else 0
            marked += undecided_row
    return marked


@dataclass
class WindowPass:
    """What ``pair_window`` / ``regression_window`` computed: one row of ``results`` per statistic."""

    results: np.ndarray


_NO_FLAGS = np.zeros(0, dtype=np.uint8)


def pair_window(x: np.ndarray, y: np.ndarray, window: int, first_real: np.ndarray, *,
                mask: bool = False, cov: bool = True) -> WindowPass:
    """pandas' rolling covariance (results row 0) and correlation (row 1) of ``x`` and ``y`` over rows where both
    are finite, per block; ``window == 0`` is expanding. With ``mask``, the correlation is NaN where either input's
    window is flat in Qlib's sense (pandas' rolling std <= 2e-5), as Qlib's Corr. Without ``cov``, row 0 is NaN."""
    x, y = float_input(x), float_input(y)
    out = buffers.empty((2, x.size), dtype=np.float64)
    flags = buffers.empty(x.size, dtype=np.uint8) if mask else _NO_FLAGS
    if _pair_pass(x, y, int(window), first_real, out, mask, flags, 0.5, cov):
        for bit, v in ((1, x), (2, y)):
            settle(v, int(window), first_real, flags, bit, out[1])
    return WindowPass(out)


def regression_window(y: np.ndarray, window: int, first_real: np.ndarray, *, mask: bool = False) -> WindowPass:
    """Qlib's slope, residual and r^2 (results rows 0-2) of its rolling regression of ``y`` on x = 1..window per
    block (``window == 0``: expanding, x = 1..rows so far). With ``mask``, r^2 is NaN where y's window is flat, as
    Qlib's Rsquare (fixed windows only: Qlib's expanding Rsquare has no mask)."""
    y = float_input(y)
    out = buffers.empty((3, y.size), dtype=np.float64)
    flags = buffers.empty(y.size, dtype=np.uint8) if mask else _NO_FLAGS
    if _regression_pass(y, int(window), first_real, out, mask and window > 0, flags):
        settle(y, int(window), first_real, flags, 1, out[2])
    return WindowPass(out)
