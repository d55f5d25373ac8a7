"""One pass per (input, window) for Mean, Sum, Var, Std, Max and Min, with pandas' own rolling arithmetic.

Qlib's rolling operators are ``pandas.Series.rolling(N, min_periods=1)`` per instrument. pandas keeps online
window state: a Kahan-compensated running sum for ``mean`` and ``sum`` (with its sign and "all values equal"
clean-ups), and Welford's update with Kahan compensation for ``var``/``std``, recomputing the window from scratch
when an update cancels catastrophically (pandas 3). ``_moments`` keeps the same state with the same IEEE
operations in the same order, so the engine's numbers are pandas' numbers, bit for bit, rather than merely close,
and it computes every statistic asked of one input and one window in a single walk over the padded column
(instead of one Polars rolling pass, plus its masking passes, per statistic). Max and Min (``_extreme``) use van
Herk / Gil-Werman segments, skipping NaN as pandas does.

Rows are the engine's padded layout (``runner.py``): ``first_real[i]`` is the first real row of row ``i``'s
block; a block's state starts empty, so windows never mix instruments, and pad rows are never read (their slots
may hold anything). ±inf count as missing (pandas turns them into NaN before rolling). Pad rows come out NaN;
callers mark them null.
"""

from __future__ import annotations

import numba
import numpy as np

from rdbridge.engine import buffers
from rdbridge.engine.kernels import block_at, float_input

MEAN, VAR, STD, SUM, MAX, MIN = 0, 1, 2, 3, 4, 5
STAT_INDEX = {"mean": MEAN, "var": VAR, "std": STD, "sum": SUM, "max": MAX, "min": MIN}
_ONLINE = ("mean", "var", "std", "sum")  # kept by ``_moments``; max and min come from ``_extreme``


INV_COND_TOL = np.finfo(np.float64).eps * 1e3
"""pandas' test for catastrophic cancellation in the running sum of squared deviations: when one update shrinks it
by more than this factor, pandas recomputes the window from scratch, and so does this kernel."""


@numba.njit(cache=True, nogil=True, inline="always")
def _kahan(v: float, s: float, c: float) -> tuple[float, float]:
    y = v - c
    t = s + y
    return t, (t - s) - y


@numba.njit(cache=True, nogil=True, inline="always")
def _welford(
    v: float, sign: float, nobs: float, mean: float, ssq: float, comp: float
) -> tuple[float, float, float, bool]:
    """Add (``sign`` 1) or remove (-1) ``v``; ``nobs`` is the count after the update. Returns the new mean, sum of
    squared deviations, compensation, and whether the update looked numerically unstable."""
    prev_ssq = ssq
    prev_mean = mean - comp
    y = v - comp
    t = y - mean
    comp = t + mean - y
    mean = mean + sign * (t / nobs)
    ssq = ssq + sign * ((v - prev_mean) * (v - mean))
    return mean, ssq, comp, prev_ssq * INV_COND_TOL > ssq


@numba.njit(cache=True, nogil=True)
def _sums(x: np.ndarray, window: int, first_real: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """Mean and Sum only: ``_moments`` compiled without the variance state (most Alpha158 passes)."""
    _moments(x, window, first_real, rows, out, False)


@numba.njit(cache=True, nogil=True)
def _sums_and_moments(x: np.ndarray, window: int, first_real: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """Any of Mean, Sum, Var, Std, with the variance state."""
    _moments(x, window, first_real, rows, out, True)


@numba.njit(cache=True, nogil=True, inline="always")
def _moments(
    x: np.ndarray, window: int, first_real: np.ndarray, rows: np.ndarray, out: np.ndarray, with_var: bool
) -> None:
    """Fill ``out[rows[k]]`` for each statistic k (mean, var, std, sum) with ``rows[k] >= 0``; ``window == 0`` is
    expanding. pandas' rolling sum keeps the same Kahan state as its mean, so both come from one running sum.

    Inlined into two entry points where ``with_var`` is a compile-time constant, so the Mean/Sum variant carries no
    variance state or branches (measured 20-25% faster on those passes than one kernel testing a flag); the
    requested statistics are plain locals, so the loop does not re-read them after every store to ``out``.
    """
    r_mean, r_var, r_std, r_sum = rows[MEAN], rows[VAR], rows[STD], rows[SUM]
    do_mean, do_var = r_mean >= 0 or r_sum >= 0, with_var
    block = -1
    nobs = 0
    sum_x = comp_add_m = comp_rem_m = 0.0  # mean: Kahan sums, negatives, run of equal values
    neg = 0
    same = 0
    prev = np.nan
    mean_x = ssq = comp_add_v = comp_rem_v = 0.0  # var: Welford with Kahan compensation
    unstable = False
    for i in range(x.size):
        f = first_real[i]
        if i < f or (f != block or window == 1):
            if i < f:  # a pad row
                _write_nan(out, i, r_mean, r_var, r_std, r_sum)
                continue
            block = f  # a new instrument (or windows that do not overlap): start from empty
            nobs = 0
            sum_x = comp_add_m = comp_rem_m = 0.0
            neg = 0
            same = 0
            prev = np.nan
            mean_x = ssq = comp_add_v = comp_rem_v = 0.0
            unstable = False
        if window > 1 and i - window >= f:  # x[i - window] leaves the window
            v = x[np.uint64(i - window)]  # an unsigned index: no negative-index wrap-around test (~8% of a pass)
            if np.isfinite(v):
                nobs -= 1
                if do_mean:
                    sum_x, comp_rem_m = _kahan(-v, sum_x, comp_rem_m)
                    if np.signbit(v):
                        neg -= 1
                if do_var:
                    if nobs > 0:
                        mean_x, ssq, comp_rem_v, bad = _welford(v, -1.0, float(nobs), mean_x, ssq, comp_rem_v)
                        unstable = unstable or bad
                    else:
                        mean_x = ssq = 0.0
                        unstable = False
        v = x[i]  # entering the window
        if np.isfinite(v):
            nobs += 1
            same = same + 1 if v == prev else 1
            prev = v
            if do_mean:
                sum_x, comp_add_m = _kahan(v, sum_x, comp_add_m)
                if np.signbit(v):
                    neg += 1
            if do_var:
                mean_x, ssq, comp_add_v, bad = _welford(v, 1.0, float(nobs), mean_x, ssq, comp_add_v)
                unstable = unstable or bad
        if do_var and unstable:  # pandas' recompute of the whole window
            cnt = 0.0
            mean_x = ssq = comp_add_v = comp_rem_v = 0.0
            for j in range(max(f, i - window + 1) if window > 0 else f, i + 1):
                u = x[j]
                if np.isfinite(u):
                    cnt += 1.0
                    mean_x, ssq, comp_add_v, bad = _welford(u, 1.0, cnt, mean_x, ssq, comp_add_v)
            unstable = False
        if nobs <= 0:
            _write_nan(out, i, r_mean, r_var, r_std, r_sum)
            continue
        if r_sum >= 0:
            out[r_sum, i] = prev * nobs if same >= nobs else sum_x
        if r_mean >= 0:
            if same >= nobs:
                m = prev
            else:
                m = sum_x / nobs
                if neg == 0 and m < 0.0:
                    m = 0.0
                elif neg == nobs and m > 0.0:
                    m = 0.0
            out[r_mean, i] = m
        if do_var:
            var = ssq / (nobs - 1.0) if nobs >= 2 else np.nan
            if r_var >= 0:
                out[r_var, i] = var
            if r_std >= 0:
                out[r_std, i] = np.sqrt(var) if var > 0.0 else (var if np.isnan(var) else 0.0)


@numba.njit(cache=True, nogil=True, inline="always")
def _write_nan(out: np.ndarray, i: int, r_mean: int, r_var: int, r_std: int, r_sum: int) -> None:
    if r_mean >= 0:
        out[r_mean, i] = np.nan
    if r_var >= 0:
        out[r_var, i] = np.nan
    if r_std >= 0:
        out[r_std, i] = np.nan
    if r_sum >= 0:
        out[r_sum, i] = np.nan


@numba.njit(cache=True, nogil=True)
def _extreme(x: np.ndarray, sign: float, window: int, first_real: np.ndarray, out: np.ndarray, buf: np.ndarray) -> None:
    """Window max of ``sign * x`` (times ``sign`` again) by van Herk / Gil-Werman: each block is cut into segments
    of ``window`` rows from its first real row; a window is a suffix of one segment plus a prefix of the next, so
    every row costs three comparisons whatever the window, with no data-dependent branches. Missing values are
    -inf, and a window with no finite value is NaN."""
    n = x.size  # buf: scratch for the suffix maxima of each segment, n rows
    i = 0
    while i < n:
        f, end, w = block_at(i, window, first_real, out)
        m = end - f  # the block's real rows, through views indexed from 0: no negative-index tests
        xb, ob, bb = x[f:end], out[f:end], buf[f:end]
        seg = 0
        while seg < m:  # suffix maxima, segment by segment
            stop = min(seg + w, m)
            xs, bs = xb[seg:stop], bb[seg:stop]
            acc = -np.inf
            for j in range(stop - seg - 1, -1, -1):
                v = sign * xs[j]
                if v > acc and v != np.inf:
                    acc = v
                bs[j] = acc
            seg = stop
        acc = -np.inf
        pos = w - 1  # position of j in its segment
        for j in range(m):
            v = sign * xb[j]
            pos += 1
            if pos == w:
                pos = 0
                acc = -np.inf
            if v > acc and v != np.inf:
                acc = v
            s = j - w + 1
            best = acc
            if s > 0 and pos != w - 1:
                b = bb[s]
                if b > best:
                    best = b
            ob[j] = sign * best if best > -np.inf else np.nan
        i = end


def window_moments(
    x: np.ndarray, window: int, first_real: np.ndarray, stats: tuple[str, ...] | list[str]
) -> dict[str, np.ndarray]:
    """``{stat: float64 column}`` for the requested stats (``mean``, ``var``, ``std``, ``sum``, ``max``, ``min``)
    of ``x`` (float32 or float64, NaN/±inf = missing) over ``window`` rows (0 = expanding) of each row's block."""
    online = [name for name in _ONLINE if name in stats]
    rows = np.full(len(_ONLINE), -1, dtype=np.int64)  # statistic -> its row of ``out`` (only the ones asked for)
    for r, name in enumerate(online):
        rows[STAT_INDEX[name]] = r
    x = float_input(x)
    result: dict[str, np.ndarray] = {}
    if online:
        out = buffers.empty((len(online), x.size), dtype=np.float64)
        kernel = _sums_and_moments if rows[VAR] >= 0 or rows[STD] >= 0 else _sums
        kernel(x, int(window), first_real, rows, out)
        result.update((name, out[rows[STAT_INDEX[name]]]) for name in online)
    for name, sign in (("max", 1.0), ("min", -1.0)):
        if name in stats:
            ext = buffers.empty(x.size, dtype=np.float64)
            _extreme(x, sign, int(window), first_real, ext, buffers.empty(max(x.size, 1), np.float64))
            result[name] = ext
    return result
