"""Polars columns to numpy arrays for the kernels, with nulls as NaN (or another fill), in one pass.

Polars' own routes copy a column with nulls through a generic per-element iterator: `to_numpy()` took 5.5 ms and
`fill_null(nan).to_numpy()` 1.6 ms for 675k float64 rows, and an Alpha158 request makes dozens of such calls
(`perf` put the iterator at ~5% of a compute). Here the values buffer is read zero-copy and the validity bitmap
is applied by a compiled loop.
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl

from rdbridge.engine import buffers


@numba.njit(cache=True, nogil=True)
def _apply_validity(values: np.ndarray, bits: np.ndarray, offset: int, fill: float, out: np.ndarray) -> None:
    for i in range(values.size):
        j = i + offset
        out[i] = values[i] if (bits[j >> 3] >> (j & 7)) & 1 else fill


def filled(s: pl.Series, fill: float = np.nan) -> np.ndarray:
    """The float column ``s`` as a numpy array (float32 stays float32), nulls replaced by ``fill``.

    Without nulls this is Polars' zero-copy view; other dtypes take Polars' own path."""
    if s.dtype not in (pl.Float32, pl.Float64) or s.null_count() == 0:
        return s.fill_null(fill).to_numpy() if s.null_count() else s.to_numpy()
    arr = s.rechunk().to_arrow()
    dt = np.dtype(np.float32 if s.dtype == pl.Float32 else np.float64)
    validity, data = arr.buffers()[0], arr.buffers()[1]
    values = np.frombuffer(data, dtype=dt, count=len(arr) + arr.offset)[arr.offset :]
    out = buffers.empty(len(arr), dtype=dt)
    _apply_validity(values, np.frombuffer(validity, dtype=np.uint8), arr.offset, fill, out)
    return out
