"""How kernels get their columns and give them back: zero-copy only where it is safe, pads null, no stray values.

``Ctx.real_values`` hands a kernel the values buffer itself when the only nulls are the pad rows (kernels that
never read pads), and a NaN-filled copy otherwise; ``Ctx.kernel_series`` turns a kernel's array into a Series that
is null exactly on the pads; ``buffers.empty`` arrays are writable and shared with that Series, not copied.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from rdbridge.engine import buffers
from rdbridge.engine.ops import Ctx

FIRST_REAL = np.array([2, 2, 2, 2, 2, 7, 7, 7, 7, 7], dtype=np.int64)  # blocks 0-4 and 5-9, pads 0-1 and 5-6
PADS = np.arange(FIRST_REAL.size) < FIRST_REAL


def _ctx() -> Ctx:
    return Ctx(max_block=5, first_real=FIRST_REAL, pad_rows=2)


def test_real_values_is_a_view_when_only_pads_are_null() -> None:
    values = np.arange(10, dtype=np.float32) + 0.5
    s = pl.Series("x", values).scatter(np.flatnonzero(PADS), None)
    got = _ctx().real_values(s)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got[~PADS], values[~PADS])
    assert np.shares_memory(got, np.frombuffer(s.to_arrow().buffers()[1], dtype=np.float32)), "expected no copy"


def test_real_values_copies_with_nan_when_a_real_row_is_null() -> None:
    values = np.arange(10, dtype=np.float64)
    s = pl.Series("x", values).scatter(np.r_[np.flatnonzero(PADS), 8], None)  # row 8 is real but null
    got = _ctx().real_values(s)
    assert np.isnan(got[8]), "a null on a real row must reach the kernel as NaN, not as the buffer's leftover"
    assert not np.shares_memory(got, np.frombuffer(s.to_arrow().buffers()[1], dtype=np.float64))
    np.testing.assert_array_equal(got[[2, 3, 4, 7, 9]], values[[2, 3, 4, 7, 9]])


def test_kernel_series_is_null_exactly_on_pads_and_keeps_nan() -> None:
    arr = buffers.empty(10)
    arr[:] = np.arange(10.0)
    arr[3] = np.nan
    s = _ctx().kernel_series(arr)
    assert s.is_null().to_numpy().tolist() == PADS.tolist()
    assert s[3] is not None and np.isnan(s[3]), "NaN on a real row stays NaN (Qlib's missing value), not null"
    arr[4] = 42.0  # zero-copy: the Series sees the kernel's buffer
    assert s[4] == 42.0


def test_buffers_empty_shapes_and_dtypes() -> None:
    a = buffers.empty((3, 5), np.int64)
    assert a.shape == (3, 5) and a.dtype == np.int64 and a.flags.writeable and a.flags.c_contiguous
    a[:] = 7
    assert int(a.sum()) == 105
    assert buffers.empty(0).shape == (0,)
