"""Vectorised numpy kernels for the few operators Polars has no exact rolling form for.

They run on the engine's padded layout (see ``layout.py``): one long float64 column where every instrument's block
starts with pad rows, ``first_real[i]`` is the index of the first real row of row ``i``'s block. No loop runs per
instrument or per row: loops run over window offsets or over the ``log2(N)`` levels of a sparse table.
"""

from __future__ import annotations

import numpy as np


def window_start(n_rows: int, window: int, first_real: np.ndarray) -> np.ndarray:
    """First row of each row's window: ``window`` rows back (0 = expanding), never before the block's first real row."""
    idx = np.arange(n_rows, dtype=np.int64)
    if window <= 0:
        return first_real.astype(np.int64, copy=True)
    return np.maximum(idx - (window - 1), first_real)


def _window_count(valid: np.ndarray, start: np.ndarray) -> np.ndarray:
    cs = np.concatenate([[0], np.cumsum(valid, dtype=np.int64)])
    return cs[np.arange(1, valid.size + 1)] - cs[start]


def rolling_first_argmax(score: np.ndarray, valid: np.ndarray, window: int, first_real: np.ndarray) -> np.ndarray:
    """1-based position in its window of the first maximum of ``score``; NaN where the window holds no valid value.

    A sparse table of first-argmax over power-of-two blocks answers every window with two lookups (O(n log N)).
    ``score`` must already encode the ordering (NaN inputs mapped to +inf so the first NaN wins, as ``np.argmax``).
    """
    n = score.size
    start = window_start(n, window, first_real)
    length = np.arange(n, dtype=np.int64) - start + 1
    length = np.maximum(length, 1)
    max_len = int(length.max()) if n else 1
    levels = [np.arange(n, dtype=np.int64)]
    span = 1
    while span * 2 <= max_len:
        prev = levels[-1]
        nxt = prev.copy()
        left = prev[: n - span]
        right = prev[span:]
        take_right = score[right] > score[left]
        nxt[: n - span] = np.where(take_right, right, left)
        levels.append(nxt)
        span *= 2
    table = np.stack(levels)
    level = np.floor(np.log2(length)).astype(np.int64)
    a = table[level, start]
    b = table[level, np.arange(n, dtype=np.int64) - (1 << level) + 1]
    sa, sb = score[a], score[b]
    best = np.where(sb > sa, b, np.where(sb == sa, np.minimum(a, b), a))
    out = (best - start + 1).astype(np.float64)
    out[_window_count(valid, start) == 0] = np.nan
    return out


def rolling_mad(x: np.ndarray, window: int, first_real: np.ndarray) -> np.ndarray:
    """Mean absolute deviation around the window mean, over the non-NaN values (NaN when there are none)."""
    n = x.size
    start = window_start(n, window, first_real)
    valid = ~np.isnan(x)
    xz = np.where(valid, x, 0.0)
    cs = np.concatenate([[0.0], np.cumsum(xz)])
    idx = np.arange(n, dtype=np.int64)
    cnt = _window_count(valid, start)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (cs[idx + 1] - cs[start]) / cnt
    acc = np.zeros(n)
    max_off = int((idx - start).max()) + 1 if n else 0
    for j in range(max_off):
        src = idx - j
        ok = (src >= start) & valid[np.maximum(src, 0)]
        dev = np.abs(x[np.maximum(src, 0)] - mean)
        acc += np.where(ok, dev, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = acc / cnt
    out[cnt == 0] = np.nan
    return out


def expanding_ema(x: np.ndarray, first_real: np.ndarray) -> np.ndarray:
    """Qlib's ``EMA(x, 0)``: over each expanding window of length L, weights ``a**age`` with ``a = 1 - 2/(1+L)``
    normalised over all L positions (NaN ones too), then the NaN-skipping sum."""
    n = x.size
    idx = np.arange(n, dtype=np.int64)
    start = first_real.astype(np.int64)
    length = (idx - start + 1).astype(np.float64)
    a = 1.0 - 2.0 / (1.0 + length)
    valid = ~np.isnan(x)
    num = np.zeros(n)
    den = np.zeros(n)
    max_off = int((idx - start).max()) + 1 if n else 0
    for j in range(max_off):
        src = idx - j
        inside = src >= start
        w = np.where(inside, a**j, 0.0)
        den += w
        ok = inside & valid[np.maximum(src, 0)]
        num += np.where(ok, w * x[np.maximum(src, 0)], 0.0)
    out = num / np.where(den == 0, np.nan, den)
    out[_window_count(valid, start) == 0] = np.nan
    return out


def _offset_loop(x: np.ndarray, window: int, first_real: np.ndarray):  # noqa: ANN202 - internal generator
    """Yield, for j = 0, 1, ... the window's j-th newest value per row and whether it is a valid member."""
    n = x.size
    start = window_start(n, window, first_real)
    idx = np.arange(n, dtype=np.int64)
    max_off = int((idx - start).max()) + 1 if n else 0
    valid = ~np.isnan(x)
    for j in range(max_off):
        src = np.maximum(idx - j, 0)
        ok = (idx - j >= start) & valid[src]
        yield x[src], ok


def rolling_central_moments(x: np.ndarray, window: int, first_real: np.ndarray, kind: str) -> np.ndarray:
    """pandas' bias-corrected rolling skew (``kind="skew"``) or kurtosis (``"kurt"``) from central moments.

    Deviations from the window mean are summed explicitly (one pass per window offset), so nearly constant windows
    keep their precision; raw power sums would cancel catastrophically at price levels.
    """
    n = x.size
    start = window_start(n, window, first_real)
    valid = ~np.isnan(x)
    cnt = _window_count(valid, start).astype(np.float64)
    cs = np.concatenate([[0.0], np.cumsum(np.where(valid, x, 0.0))])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (cs[np.arange(1, n + 1)] - cs[start]) / cnt
    m2, m3, m4 = np.zeros(n), np.zeros(n), np.zeros(n)
    lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
    for val, ok in _offset_loop(x, window, first_real):
        d = np.where(ok, val - mean, 0.0)
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        if kind == "kurt":
            m4 += d2 * d2
        lo = np.where(ok, np.minimum(lo, val), lo)
        hi = np.where(ok, np.maximum(hi, val), hi)
    flat = lo == hi
    with np.errstate(invalid="ignore", divide="ignore"):
        b = m2 / cnt
        c = m3 / cnt
        if kind == "skew":
            val = (np.sqrt(cnt * (cnt - 1.0)) * c) / ((cnt - 2.0) * b * np.sqrt(b))
            out = np.where(flat, 0.0, np.where(b <= 1e-14, np.nan, val))
            out[cnt < 3] = np.nan
        else:
            d4 = m4 / cnt
            k = (cnt * cnt - 1.0) * d4 / (b * b) - 3.0 * (cnt - 1.0) ** 2
            val = k / ((cnt - 2.0) * (cnt - 3.0))
            out = np.where(flat, -3.0, np.where(b <= 1e-14, np.nan, val))
            out[cnt < 4] = np.nan
    return out


_CHUNK = 1 << 15


def _lagged(x: np.ndarray, c0: int, c1: int, j: int) -> np.ndarray:
    """x[c0-j : c1-j], NaN-filled before the array start."""
    lo = c0 - j
    if lo >= 0:
        return x[lo : c1 - j]
    return np.concatenate([np.full(-lo, np.nan, dtype=x.dtype), x[: c1 - j]])


def rolling_rank_pct(x: np.ndarray, window: int, first_real: np.ndarray) -> np.ndarray:
    """pandas ``rolling(N, min_periods=1).rank(pct=True)``: (values below + (ties incl. itself + 1) / 2) / count.

    Rolling windows compare each row with its strided window in cache-sized chunks (needs ``window - 1`` NaN pad
    rows before each instrument, which the engine's layout has); expanding windows loop over offsets.
    """
    n = x.size
    start = window_start(n, window, first_real)
    valid = ~np.isnan(x)
    cnt = _window_count(valid, start).astype(np.float64)
    below = np.zeros(n, dtype=np.float64)
    same = np.zeros(n, dtype=np.float64)
    if window > 0:
        view = np.lib.stride_tricks.sliding_window_view(
            np.concatenate([np.full(window - 1, np.nan, dtype=x.dtype), x]), window
        )
        for c0 in range(0, n, _CHUNK):
            c1 = min(n, c0 + _CHUNK)
            block, cur = view[c0:c1], x[c0:c1, None]
            below[c0:c1] = np.count_nonzero(block < cur, axis=1)
            same[c0:c1] = np.count_nonzero(block == cur, axis=1)
    else:
        idx = np.arange(n, dtype=np.int64)
        for j in range(int((idx - start).max()) + 1 if n else 0):
            seg = np.concatenate([np.full(j, np.nan, dtype=x.dtype), x[: n - j]])
            inside = idx - j >= start
            below += (seg < x) & inside
            same += (seg == x) & inside
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (below + (same + 1.0) / 2.0) / cnt
    out[~valid] = np.nan
    return out


def rolling_quantiles(x: np.ndarray, window: int, qs: list[float]) -> dict[float, np.ndarray]:
    """pandas' linear-interpolated rolling quantiles (``min_periods=1``, NaN skipped) for several ``q`` at once.

    Rows are windows of a strided view sorted in chunks (NaN sorts last, so the first ``count`` entries of a sorted
    window are its values). Needs ``window - 1`` NaN rows before each instrument (the engine's pads).
    """
    n = x.size
    padded = np.concatenate([np.full(window - 1, np.nan, dtype=x.dtype), x])
    view = np.lib.stride_tricks.sliding_window_view(padded, window)
    out = {q: np.empty(n, dtype=np.float64) for q in qs}
    for c0 in range(0, n, _CHUNK):
        c1 = min(n, c0 + _CHUNK)
        block = np.sort(view[c0:c1], axis=1)
        cnt = window - np.isnan(block).sum(axis=1)
        rows = np.arange(c1 - c0)
        for q in qs:
            h = q * (cnt - 1).astype(np.float64)
            lo = np.floor(h).astype(np.int64)
            lo_c = np.clip(lo, 0, window - 1)
            hi_c = np.clip(lo + 1, 0, window - 1)
            vlo = block[rows, lo_c].astype(np.float64)
            vhi = block[rows, hi_c].astype(np.float64)
            frac = h - lo
            val = np.where(frac == 0, vlo, vlo + (vhi - vlo) * frac)
            val[cnt == 0] = np.nan
            out[q][c0:c1] = val
    return out
