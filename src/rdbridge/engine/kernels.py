"""Window kernels for Rank, Quantile, IdxMax/IdxMin, plain window sums, and the rarer statistics (Skew, Kurt, Mad,
WMA, EMA); Mean/Var/Std/Sum/Max/Min are in ``window_stats.py``, Cov/Corr and the regressions in ``pair_windows.py``.

They run on the engine's padded layout (see ``runner.py``): one long column where every instrument's block starts
with pad rows, ``first_real[i]`` is the index of the first real row of row ``i``'s block. All are single-pass numba
loops (direct window compares, a sorted window buffer, van Herk / Gil-Werman segments, compensated running sums,
online moments; no per-window sort) compiled once and cached, releasing the GIL so Polars runs several at once.
The rarer statistics repeat the arithmetic of what Qlib runs for them (pandas' online skew/kurt and ewm, numpy's
pairwise summation inside ``rolling.apply``), so their results are Qlib's bit for bit, not merely close.
"""

from __future__ import annotations

import numba
import numpy as np

from rdbridge.engine import buffers
from rdbridge.engine.import_guard import hidden_modules


@numba.njit(cache=True, nogil=True)
def _start_of(i: int, window: int, first_real: np.ndarray) -> int:
    """First row of row ``i``'s window, at most ``i + 1`` (an empty window on pad rows)."""
    s = first_real[i]
    if window > 0 and i - window + 1 > s:
        s = i - window + 1
    return min(s, i + 1)


@numba.njit(cache=True, nogil=True, inline="always")
def block_end(i: int, first_real: np.ndarray) -> int:
    """One past the last row of row ``i``'s block."""
    n = first_real.size
    f = first_real[i]
    end = i
    while end < n and first_real[end] == f:
        end += 1
    return end


@numba.njit(cache=True, nogil=True, inline="always")
def block_at(i: int, window: int, first_real: np.ndarray, out: np.ndarray) -> tuple[int, int, int]:
    """The block that starts at row ``i``: its first real row, its end (exclusive), and the van Herk / Gil-Werman
    segment width (the window, or the whole block for an expanding window). Its pad rows get NaN in ``out``."""
    f = first_real[i]
    end = block_end(i, first_real)
    for j in range(i, min(f, end)):
        out[j] = np.nan
    return f, end, (window if window > 0 else max(end - f, 1))


@numba.njit(cache=True, nogil=True)
def _first_argmax(x: np.ndarray, sign: float, window: int, first_real: np.ndarray, out: np.ndarray,
                  suf_s: np.ndarray, suf_i: np.ndarray, cum: np.ndarray) -> None:
    """van Herk / Gil-Werman over (score, row) pairs: segments of ``window`` rows from each block's first real row,
    suffix bests right to left (ties keep the earlier row), prefix bests left to right (ties keep the earlier row);
    a window is a suffix of one segment plus a prefix of the next, so each row costs a few comparisons whatever the
    window. NaN and inf score +inf, so the first of them wins, as in ``np.argmax``."""
    n = x.size  # suf_s / suf_i: suffix bests; cum: finite values from the block's first real row (scratch, n rows)
    i = 0
    while i < n:
        f, end, w = block_at(i, window, first_real, out)
        m = end - f  # the block's real rows, through views indexed from 0: no negative-index tests
        xb, ob, sb, ib, cb = x[f:end], out[f:end], suf_s[f:end], suf_i[f:end], cum[f:end]
        seg = 0
        while seg < m:
            stop = min(seg + w, m)
            xs, ss, si = xb[seg:stop], sb[seg:stop], ib[seg:stop]
            best, bi = -np.inf, -1
            for t in range(stop - seg - 1, -1, -1):
                v = xs[t]
                sc = sign * v if np.isfinite(v) else np.inf
                if sc >= best:
                    best, bi = sc, seg + t
                ss[t] = best
                si[t] = bi
            seg = stop
        best, bi = -np.inf, -1
        c = 0
        pos = w - 1  # position of j in its segment
        for j in range(m):
            v = xb[j]
            ok = np.isfinite(v)
            sc = sign * v if ok else np.inf
            if ok:
                c += 1
            cb[j] = c
            pos += 1
            if pos == w:
                pos = 0
                best, bi = -np.inf, -1
            if sc > best:
                best, bi = sc, j
            s = j - w + 1
            if s < 0:
                s = 0
            pick = bi
            if s > 0 and pos != w - 1 and sb[s] >= best:
                pick = ib[s]
            cnt = c - (cb[s - 1] if s > 0 else 0)
            ob[j] = np.nan if cnt == 0 else float(pick - s + 1)
        i = end


def float_input(x: np.ndarray) -> np.ndarray:
    """``x`` as the window kernels take it: float32 and float64 as they are (the kernels widen each float32 value
    to float64 as they read it, exactly: a float64 copy would only cost a pass and 8 bytes a row), anything else
    as float64; contiguous."""
    return np.ascontiguousarray(x, dtype=x.dtype if x.dtype in (np.float32, np.float64) else np.float64)


def rolling_first_argmax(x: np.ndarray, sign: float, window: int, first_real: np.ndarray) -> np.ndarray:
    """1-based position in its window of the first maximum of ``sign * x`` (NaN and ±inf count as the maximum, as
    ``np.argmax`` on Qlib's rolling values); NaN where the window holds no finite value."""
    n = max(x.size, 1)
    out = buffers.empty(x.size, dtype=np.float64)
    _first_argmax(float_input(x), float(sign), int(window), first_real, out,
                  buffers.empty(n, np.float64), buffers.empty(n, np.int64), buffers.empty(n, np.int64))
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _lower(buf: np.ndarray, m: int, v: float) -> int:
    """First index of the sorted ``buf[:m]`` whose value is not below ``v``."""
    lo, hi = 0, m
    while lo < hi:
        mid = (lo + hi) >> 1
        if buf[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


SHORT_WINDOW = 128
"""Up to this many values, a window's sorted buffer is searched by counting (every comparison, no branches, in
SIMD) rather than by bisection, whose unpredictable branches cost more than the comparisons they save."""


@numba.njit(cache=True, nogil=True, inline="always")
def _count_below(buf: np.ndarray, m: int, v: float) -> int:
    """How many of ``buf[:m]`` are below ``v``: in a sorted buffer, the first index not below ``v``."""
    c = 0
    for k in range(m):
        c += buf[k] < v
    return c


@numba.njit(cache=True, nogil=True)
def _replace(buf: np.ndarray, m: int, old: float, new: float, short: bool) -> int:
    """In the sorted ``buf[:m]``, replace one ``old`` by ``new`` moving only the entries between the two; returns
    the slot ``new`` went to. Entries move through a view indexed from 0 (here and in ``_sorted_window_pass``):
    numba then emits no negative-index test and LLVM vectorises the move (10-17% of a window-20..60 pass)."""
    if short:
        p = _count_below(buf, m, old)
        q = _count_below(buf, m, new)
        if q > p:  # new goes right of old's slot
            seg = buf[p:q]
            for k in range(q - 1 - p):
                seg[k] = seg[k + 1]
            buf[q - 1] = new
            return q - 1
        seg = buf[q : p + 1]
        for k in range(p - q, 0, -1):
            seg[k] = seg[k - 1]
        buf[q] = new
        return q
    j = _lower(buf, m, old)
    while j + 1 < m and buf[j + 1] < new:
        buf[j] = buf[j + 1]
        j += 1
    while j > 0 and buf[j - 1] > new:
        buf[j] = buf[j - 1]
        j -= 1
    buf[j] = new
    return j


@numba.njit(cache=True, nogil=True, inline="always")
def _tie_span(buf: np.ndarray, m: int, slot: int) -> tuple[int, int]:
    """Around ``buf[slot]`` in the sorted ``buf[:m]``: how many entries are below it and how many are at most it.
    Ties are few, so walking them beats counting the whole window twice."""
    v = buf[slot]
    a = slot
    while a > 0 and buf[a - 1] == v:
        a -= 1
    b = slot + 1
    while b < m and buf[b] == v:
        b += 1
    return a, b


def sorted_buffer_size(n: int, window: int) -> int:
    """Slots of the sorted-window buffer: a window holds at most ``window`` finite values (the whole series for the
    expanding window 0), plus one spare. The kernel checks it on every insertion (an ``IndexError``, never a write
    past the end); ``tests/engine/test_sorted_window.py`` checks the size and the check."""
    return (min(n, window) if window > 0 else n) + 1


@numba.njit(cache=True, nogil=True)
def _sorted_window_pass(x: np.ndarray, window: int, first_real: np.ndarray, qs: np.ndarray, out: np.ndarray,
                        rank_row: int, buf: np.ndarray) -> None:
    """Slide a sorted buffer of the window's finite values (±inf count as missing, as pandas' rolling sees them);
    per row write the linear-interpolated quantiles ``qs`` (rows 0.. of ``out``) and, when ``rank_row >= 0``, the
    percentile rank of ``x[i]`` (that row): Rank and Quantile of the same input and window share one pass."""
    n = x.size  # buf: scratch of ``sorted_buffer_size(n, window)`` slots of x's dtype
    short = 0 < window <= SHORT_WINDOW
    m = lo = 0
    for i in range(n):
        v = x[i]
        s = _start_of(i, window, first_real)
        # insert v, preferably by replacing a value that leaves the window; never on a pad row (s > i), whose slot
        # holds whatever the column's producer left there: inserting it overflowed ``buf`` (issue 25)
        pending = s <= i and np.isfinite(v)
        slot = -1  # where v sits in the buffer once inserted
        while lo < s:
            u = x[lo]
            lo += 1
            if lo > i:  # an empty window (pad row): x[i] was never inserted
                pending = False
                continue
            if not np.isfinite(u):
                continue
            if pending:
                slot = _replace(buf, m, u, v, short)
                pending = False
            else:
                if m == 0:
                    raise IndexError("sorted window: removing from an empty buffer")
                j = _count_below(buf, m, u) if short else _lower(buf, m, u)
                if slot > j:  # v was inserted above the value leaving: it moves down one slot
                    slot -= 1
                seg = buf[j:m]
                for k in range(m - 1 - j):
                    seg[k] = seg[k + 1]
                m -= 1
        if pending:
            if m + 1 > buf.size:
                raise IndexError("sorted window: more values than the window holds")
            j = _count_below(buf, m, v) if short else _lower(buf, m, v)
            seg = buf[j : m + 1]
            for k in range(m - j, 0, -1):
                seg[k] = seg[k - 1]
            buf[j] = v
            slot = j
            m += 1
        if rank_row >= 0:
            if not np.isfinite(v) or m == 0 or slot < 0:
                out[rank_row, i] = np.nan
            else:
                a, b = _tie_span(buf, m, slot)
                out[rank_row, i] = (a + ((b - a) + 1.0) / 2.0) / m
        for t in range(qs.size):
            if m == 0:
                out[t, i] = np.nan
                continue
            h = qs[t] * float(m - 1)
            j = int(np.floor(h))
            frac = h - j
            vlo = np.float64(buf[j])  # numba: float() of a float32 stays float32
            if frac == 0:
                out[t, i] = vlo
            else:
                out[t, i] = vlo + (np.float64(buf[min(j + 1, m - 1)]) - vlo) * frac


@numba.njit(cache=True, nogil=True)
def _rank_direct(x: np.ndarray, window: int, first_real: np.ndarray, out: np.ndarray) -> None:
    """Short windows: compare each value with its window directly (branch-free, vectorised by LLVM)."""
    for i in range(x.size):
        v = x[i]
        s = _start_of(i, window, first_real)
        below = same = cnt = 0
        for j in range(s, i + 1):
            u = x[j]
            ok = np.isfinite(u)
            below += ok and u < v
            same += ok and u == v
            cnt += ok
        out[i] = np.nan if (not np.isfinite(v) or cnt == 0) else (below + (same + 1.0) / 2.0) / cnt


@numba.njit(cache=True, nogil=True, inline="always")
def _add(acc: float, comp: float, v: float) -> tuple[float, float]:
    """Compensated ``acc + v`` (Neumaier): a running sum along a 10^6-row column that adds and subtracts would
    otherwise drift by far more than the window's own rounding. The rounding error of ``acc + v`` comes from
    Knuth's branch-free TwoSum, the same exact error Neumaier's |acc| >= |v| branch picks its formula for."""
    t = acc + v
    back = t - acc
    comp += (acc - (t - back)) + (v - back)
    return t, comp


@numba.njit(cache=True, nogil=True)
def _window_sum(x: np.ndarray, window: int, out: np.ndarray) -> None:
    acc = comp = 0.0
    for i in range(x.size):
        acc, comp = _add(acc, comp, x[i])
        if i >= window:
            acc, comp = _add(acc, comp, -x[i - window])
        out[i] = acc + comp


def rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Window sums of a NaN-free float64 column (the engine's pads hold 0, so windows never mix instruments)."""
    out = buffers.empty(x.size, dtype=np.float64)
    _window_sum(np.ascontiguousarray(x, dtype=np.float64), int(window), out)
    return out


@numba.njit(cache=True, nogil=True)
def _pairwise_sum(a: np.ndarray) -> float:
    """``np.add.reduce`` of a float64 vector, the same additions in the same order: numpy's pairwise summation
    (below 8 values a plain loop from -0.0; up to 128, eight interleaved partial sums; beyond, halves at a multiple
    of 8)."""
    n = a.size
    if n < 8:
        res = -0.0
        for i in range(n):
            res += a[i]
        return res
    if n <= 128:
        r0, r1, r2, r3, r4, r5, r6, r7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
        i = 8
        stop = n - n % 8
        while i < stop:
            r0 += a[i]
            r1 += a[i + 1]
            r2 += a[i + 2]
            r3 += a[i + 3]
            r4 += a[i + 4]
            r5 += a[i + 5]
            r6 += a[i + 6]
            r7 += a[i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a[:n2]) + _pairwise_sum(a[n2:])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _mad(x: np.ndarray, window: int, first_real: np.ndarray, out: np.ndarray, vals: np.ndarray,
         devs: np.ndarray) -> None:
    for i in range(x.size):
        s = _start_of(i, window, first_real)
        k = 0
        for j in range(s, i + 1):
            v = x[j]
            if np.isfinite(v):
                vals[k] = v
                k += 1
        if k == 0:
            out[i] = np.nan
            continue
        m = _pairwise_sum(vals[:k]) / k
        for t in range(k):
            devs[t] = abs(vals[t] - m)
        out[i] = _pairwise_sum(devs[:k]) / k


def rolling_mad(x: np.ndarray, window: int, first_real: np.ndarray) -> np.ndarray:
    """Qlib's ``Mad``: per window (``rolling(N, min_periods=1).apply(raw=True)``, ±inf as NaN), the finite values'
    ``np.mean(np.abs(v - v.mean()))`` with numpy's own summation order, so a window of large, nearly equal values
    (volumes) keeps numpy's exact result instead of a difference of running sums (off by 1e-4 relative there)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = buffers.empty(x.size, dtype=np.float64)
    size = max(min(x.size, window) if window > 0 else x.size, 1)
    _mad(x, int(window), first_real, out, np.empty(size), np.empty(size))
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _wma(x: np.ndarray, window: int, first_real: np.ndarray, out: np.ndarray, terms: np.ndarray) -> None:
    for i in range(x.size):
        s = _start_of(i, window, first_real)
        length = i + 1 - s
        total = length * (length + 1) // 2
        cnt = 0
        for j in range(length):
            v = x[s + j]
            if np.isnan(v):
                terms[j] = 0.0
            else:
                terms[j] = (j + 1) / total * v
                cnt += 1
        out[i] = _pairwise_sum(terms[:length]) / cnt if cnt else np.nan


def rolling_wma(x: np.ndarray, window: int, first_real: np.ndarray) -> np.ndarray:
    """Qlib's ``WMA``: per window of L rows (``rolling(N, min_periods=1).apply(raw=True)``, ±inf as NaN), weights
    (1..L) / (L (L + 1) / 2), then ``np.nanmean`` of weight times value: numpy's summation order, NaN terms as 0,
    divided by the count of finite values; ``window == 0`` is expanding."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = buffers.empty(x.size, dtype=np.float64)
    _wma(x, int(window), first_real, out, np.empty(max(min(x.size, window) if window > 0 else x.size, 1)))
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _weighted_rows(x: np.ndarray, rows: np.ndarray, w: np.ndarray, out: np.ndarray, terms: np.ndarray) -> None:
    """``np.nansum(w * x[r - L + 1 : r + 1])`` for each row r of ``rows`` (L = ``w.size``), NaN where the window
    holds no finite value."""
    n = w.size
    for r in rows:
        cnt = 0
        for j in range(n):
            v = w[j] * x[r - n + 1 + j]
            if np.isnan(v):
                v = 0.0
            else:
                cnt += 1
            terms[j] = v
        out[r] = _pairwise_sum(terms[:n]) if cnt else np.nan


def expanding_ema(x: np.ndarray, first_real: np.ndarray) -> np.ndarray:
    """Qlib's ``EMA(x, 0)``: over each expanding window of length L, weights ``a**age`` with ``a = 1 - 2/(1+L)``
    normalised over all L positions (NaN ones too), then the NaN-skipping sum. The weights come from the very numpy
    expression Qlib runs (its vectorised ``power`` differs from libm's ``pow`` in the last bit), once per length for
    all instruments; the sums repeat numpy's summation order."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = x.size
    out = np.full(n, np.nan)
    pos = np.arange(n, dtype=np.int64) - first_real  # 0-based position in the block; pads negative
    if n == 0 or pos.max() < 0:
        return out
    order = np.argsort(pos, kind="stable")
    bounds = np.searchsorted(pos[order], np.arange(pos.max() + 2))
    terms = np.empty(int(pos.max()) + 1)
    x = np.where(np.isinf(x), np.nan, x)  # pandas' rolling input: inf as NaN
    for length in range(1, int(pos.max()) + 2):
        rows = order[bounds[length - 1] : bounds[length]]
        a = 1 - 2 / (1 + length)
        w = a ** np.arange(length)[::-1]
        w /= w.sum()
        _weighted_rows(x, rows, w, out, terms)
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _ewm(x: np.ndarray, first_real: np.ndarray, com: float, out: np.ndarray) -> None:
    alpha = 1.0 / (1.0 + com)
    old_wt_factor = 1.0 - alpha
    block = -1
    weighted = old_wt = 0.0
    nobs = 0
    for i in range(x.size):
        f = first_real[i]
        if i < f:  # a pad row
            out[i] = np.nan
            continue
        cur = x[i]
        obs = not np.isnan(cur)
        if f != block:  # an instrument's first row
            block = f
            weighted = cur
            nobs = 1 if obs else 0
            old_wt = 1.0
        else:
            nobs += obs
            if not np.isnan(weighted):
                old_wt *= old_wt_factor
                if obs:
                    if weighted != cur:  # pandas: no rounding on a constant series
                        weighted = old_wt * weighted + cur
                        weighted /= old_wt + 1.0
                    old_wt += 1.0
            elif obs:
                weighted = cur
        out[i] = weighted if nobs >= 1 else np.nan


def ewm_mean(x: np.ndarray, first_real: np.ndarray, span: float | None = None, alpha: float | None = None
             ) -> np.ndarray:
    """Qlib's ``EMA(x, N)``: pandas' ``ewm(span=N)`` (or ``alpha=N``), ``adjust=True``, ``min_periods=1``, NaN
    carried, per block; pandas' online update, bit for bit (float64 ``x``, NaN = missing)."""
    com = (span - 1) / 2.0 if span is not None else (1 - alpha) / alpha
    out = buffers.empty(x.size, dtype=np.float64)
    _ewm(np.ascontiguousarray(x, dtype=np.float64), first_real, float(com), out)
    return out


_EPS = np.finfo(np.float64).eps
PEAK_DEV_LIMIT = _EPS / (_EPS * 1e3)
"""pandas 3's skew/kurt recompute a window once the second moment falls below this times the square of the largest
deviation it absorbed (its own round-off, ``eps * dev**2``, is then over 1e-3 of it)."""
ANCHOR_DRIFT_LIMIT = 1.0 / 16.0
"""... or once the window's mean sits more than 4 standard deviations from the value it is anchored to."""
MAX_ORIGIN = np.sqrt(np.finfo(np.float64).max)


@numba.njit(cache=True, nogil=True, inline="always")
def _moments_suspect(mean: float, m2: float, m3: float, m4: float, peak: float) -> bool:
    """pandas' ``moment_cancellation_suspected``."""
    if np.isnan(m2) or np.isnan(m3) or np.isnan(m4):
        return True
    if mean * mean * ANCHOR_DRIFT_LIMIT > m2:
        return True
    return peak * peak * PEAK_DEV_LIMIT > m2


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _moments_add(val: float, nobs: int, mean: float, origin: float, m2: float, m3: float, m4: float, peak: float,
                 kurt: bool) -> tuple[int, float, float, float, float, float, float, bool]:
    """pandas' ``add_skew`` / ``add_kurt`` (``moments_add_value`` on the value minus the window's anchor)."""
    if nobs == 0:
        origin = val if abs(val) < MAX_ORIGIN else 0.0
    shifted = val - origin
    delta = shifted - mean
    nobs += 1
    n = float(nobs)
    delta_n = delta / n
    term1 = delta * delta_n * (n - 1.0)
    if kurt:
        m4 += delta_n * (-4.0 * m3 + delta_n * (6.0 * m2 + term1 * (n * n - 3.0 * n + 3.0)))
    m3 += delta_n * (term1 * (n - 2.0) - 3.0 * m2)
    m2 += term1
    mean += delta_n
    peak = max(peak, abs(shifted - mean))
    return nobs, mean, origin, m2, m3, m4, peak, _moments_suspect(mean, m2, m3, m4, peak)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _skew_kurt(x: np.ndarray, window: int, first_real: np.ndarray, kurt: bool, out: np.ndarray) -> None:
    """pandas 3's ``roll_skew`` / ``roll_kurt`` (``min_periods=1``) per block: central moments of the values minus
    the window's anchor, updated online, the window recomputed when an update looks like cancellation."""
    minp = 4 if kurt else 3
    block = -1
    nobs = 0
    mean = origin = m2 = m3 = m4 = peak = 0.0
    bad = False
    for i in range(x.size):
        f = first_real[i]
        if i < f:  # a pad row
            out[i] = np.nan
            continue
        if f != block:  # a new instrument: empty state
            block = f
            nobs = 0
            mean = origin = m2 = m3 = m4 = peak = 0.0
            bad = False
        elif window > 0 and i - window >= f:  # x[i - window] leaves
            val = x[np.uint64(i - window)]
            if not np.isnan(val):
                nobs -= 1
                if nobs == 0:
                    mean = origin = m2 = m3 = m4 = peak = 0.0
                    bad = False
                else:
                    shifted = val - origin
                    n = float(nobs)
                    delta = shifted - mean
                    delta_n = delta / n
                    term1 = delta_n * delta * (n + 1.0)
                    if kurt:
                        m4 += delta_n * (4.0 * m3 + delta_n * (6.0 * m2 - term1 * (n * n + 3.0 * n + 3.0)))
                    m3 -= delta_n * (term1 * (n + 2.0) - 3.0 * m2)
                    m2 -= term1
                    mean -= delta_n
                    peak = max(peak, abs(shifted - mean))
                    bad = bad or _moments_suspect(mean, m2, m3, m4 if kurt else 0.0, peak)
        val = x[i]
        if not np.isnan(val):
            nobs, mean, origin, m2, m3, m4, peak, worse = _moments_add(val, nobs, mean, origin, m2, m3, m4, peak,
                                                                       kurt)
            bad = bad or worse
        if bad:  # pandas' recompute of the whole window
            nobs = 0
            mean = origin = m2 = m3 = m4 = peak = 0.0
            for j in range(max(f, i - window + 1) if window > 0 else f, i + 1):
                u = x[j]
                if not np.isnan(u):
                    nobs, mean, origin, m2, m3, m4, peak, worse = _moments_add(u, nobs, mean, origin, m2, m3, m4,
                                                                               peak, kurt)
            bad = False
        if nobs < minp:
            out[i] = np.nan
        elif kurt:
            dn = float(nobs)
            inner = dn * (dn + 1.0) * (m4 / (m2 * m2)) - 3.0 * (dn - 1.0)
            out[i] = (dn - 1.0) / ((dn - 2.0) * (dn - 3.0)) * inner
        else:
            dn = float(nobs)
            out[i] = m3 / (m2 * np.sqrt(m2)) * ((dn * np.sqrt(dn - 1.0)) / (dn - 2.0))


def rolling_central_moments(x: np.ndarray, window: int, first_real: np.ndarray, kind: str) -> np.ndarray:
    """pandas 3's bias-corrected rolling skew (``kind="skew"``) or excess kurtosis (``"kurt"``) of ``x`` (float64,
    NaN = missing; pandas turns ±inf into NaN first) per block, bit for bit; ``window == 0`` is expanding. NaN under
    3 / 4 values and where the window's values are all equal (0 / 0)."""
    out = buffers.empty(x.size, dtype=np.float64)
    _skew_kurt(np.ascontiguousarray(x, dtype=np.float64), int(window), first_real, kind == "kurt", out)
    return out


def rolling_rank_pct(x: np.ndarray, window: int, first_real: np.ndarray) -> np.ndarray:
    """pandas ``rolling(N, min_periods=1).rank(pct=True)``: (values below + (ties incl. itself + 1) / 2) / count;
    ``window == 0`` is the expanding window. Comparisons run in ``x``'s dtype (float32 stays float32)."""
    if 0 < window <= 128:
        out1 = buffers.empty(x.size, dtype=np.float64)
        _rank_direct(np.ascontiguousarray(x), int(window), first_real, out1)
        return out1
    return rolling_ranks_and_quantiles(x, window, [], True, first_real)["rank"]


def rolling_ranks_and_quantiles(
    x: np.ndarray, window: int, qs: list[float], rank: bool, first_real: np.ndarray
) -> dict[float | str, np.ndarray]:
    """pandas' linear-interpolated rolling quantiles ``qs`` (``min_periods=1``, NaN skipped; keyed by q) and, if
    ``rank``, the percentile rank (key ``"rank"``, what ``rolling_rank_pct`` gives, bit for bit) from one
    sorted-window pass; ``window == 0`` is the expanding window."""
    rows = len(qs) + int(rank)
    out = buffers.empty((max(rows, 1), x.size), dtype=np.float64)
    x = np.ascontiguousarray(x)
    buf = np.empty(sorted_buffer_size(x.size, int(window)), dtype=x.dtype)
    _sorted_window_pass(x, int(window), first_real, np.asarray(qs, dtype=np.float64), out, len(qs) if rank else -1,
                        buf)
    got: dict[float | str, np.ndarray] = {q: out[t] for t, q in enumerate(qs)}
    if rank:
        got["rank"] = out[len(qs)]
    return got


# numba imports its numpy support lazily, on the first call of any kernel: about 0.15 s. Pay it when the engine is
# imported, with polars and numba themselves, instead of inside the first compute; without scipy's BLAS probe
# (``import_guard``: ~50 ms, for np.correlate / np.convolve, which no kernel calls).
with hidden_modules(["scipy.linalg"]):
    _start_of(0, 1, np.zeros(1, dtype=np.int64))
