"""How kernels get their columns and give them back: zero-copy only where it is safe, pads null, no stray values.

``Ctx.real_values`` hands a kernel the values buffer itself when the only nulls are the pad rows (kernels that
never read pads), and a NaN-filled copy otherwise; ``Ctx.kernel_series`` turns a kernel's array into a Series that
is null exactly on the pads; ``buffers.empty`` arrays are writable and shared with that Series, not copied.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from rdbridge.engine import buffers
from rdbridge.engine.columns import filled
from rdbridge.engine.context import Ctx

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


def test_a_buffer_is_reused_only_once_every_view_of_it_is_gone() -> None:
    buffers.release_idle()
    first = buffers.empty((3, 1000), dtype=np.float64)
    first[:] = 1.0
    address = first.__array_interface__["data"][0]
    row = first[1]  # a view outlives its parent array
    del first
    assert buffers.idle_bytes() == 0, "memory still visible through a view must not be handed out again"
    second = buffers.empty((3, 1000), dtype=np.float64)
    second[:] = 2.0
    assert (row == 1.0).all()
    del row
    assert buffers.idle_bytes() > 0
    third = buffers.empty(3000, dtype=np.float64)  # same size: the idle mapping comes back
    assert third.__array_interface__["data"][0] == address
    buffers.release_idle()
    assert buffers.idle_bytes() == 0
    del second, third


def test_prefilled_buffers_are_handed_out_already_faulted_in() -> None:
    """``prefill`` maps and populates buffers on a background thread; ``empty`` then hands them out, and writing
    them takes almost no page faults, where a fresh mapping of the same size takes one per 4 KiB page."""
    import resource

    buffers.release_idle(wait=True)
    count = 4 * 2**20 // 8  # 4 MiB: 1,024 pages
    size = buffers.nbytes(count, np.float64)
    buffers.prefill([(size, 2)]).join()
    assert buffers.idle_bytes() == 2 * size

    def faults_writing(arr: np.ndarray) -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        arr[:] = 1.0
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    warm = buffers.empty(count, dtype=np.float64)
    assert buffers.idle_bytes() == size
    assert faults_writing(warm) < 50
    buffers.release_idle(wait=True)
    cold = buffers.empty(count, dtype=np.float64)
    assert faults_writing(cold) > 900
    del warm, cold
    buffers.release_idle(wait=True)


def test_prefill_maps_at_most_its_budget() -> None:
    """A large panel's request must not map gigabytes ahead: the requests are cut to ``PREFILL_BUDGET`` bytes."""
    buffers.release_idle(wait=True)
    size = buffers.nbytes(2**20, np.float64)  # 8 MiB
    buffers.prefill([(size, 10_000), (buffers.nbytes(10, np.float32), 5)])
    buffers.release_idle(wait=True)  # joins the prefill thread first: nothing is left idle afterwards
    assert buffers.idle_bytes() == 0
    t = buffers.prefill([(size, 10_000), (buffers.nbytes(10, np.float32), 5)])
    t.join()
    assert buffers.idle_bytes() == (buffers.PREFILL_BUDGET // size) * size
    buffers.release_idle(wait=True)


def test_buffers_are_never_transparent_huge_pages() -> None:
    """Huge pages fault in several times slower on these VMs (see buffers.py): the mapping must say no to them."""
    arr = buffers.empty(3 * 2**20, dtype=np.float64)  # 24 MB: eligible for huge pages if not opted out
    arr[:] = 0.0
    start = arr.__array_interface__["data"][0]
    flags = None
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split()[0]
            if "-" in head and not line.startswith("VmFlags"):
                lo, hi = (int(p, 16) for p in head.split("-"))
                inside = lo <= start < hi
            elif line.startswith("VmFlags") and inside:
                flags = line.split()[1:]
                break
    assert flags is not None, "the buffer's mapping was not found in /proc/self/smaps"
    assert "nh" in flags, f"mapping flags {flags} lack nh (MADV_NOHUGEPAGE)"


def test_filled_matches_polars_for_nulls_slices_and_float32() -> None:
    rng = np.random.default_rng(3)
    values = rng.standard_normal(5000)
    values[::97] = np.nan  # NaN that is not null stays NaN
    s = pl.Series("x", values).scatter(np.flatnonzero(rng.random(5000) < 0.1), None)
    np.testing.assert_array_equal(filled(s), s.to_numpy())
    np.testing.assert_array_equal(filled(s, 0.0), s.fill_null(0.0).to_numpy())
    sliced = s.slice(13, 1001)  # a non-zero Arrow offset into the validity bitmap
    np.testing.assert_array_equal(filled(sliced), sliced.to_numpy())
    s32 = s.cast(pl.Float32)
    got = filled(s32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, s32.to_numpy())
    no_nulls = pl.Series("y", values)
    np.testing.assert_array_equal(filled(no_nulls), values)
    chunked = pl.concat([s.slice(0, 10), s.slice(10, 40)], rechunk=False)
    np.testing.assert_array_equal(filled(chunked), s.slice(0, 50).to_numpy())


def test_compute_returns_idle_buffers_and_restores_the_collector() -> None:
    import gc

    from rdbridge.engine import compute
    from rdbridge.engine.synthetic import make_panel

    panel = make_panel(4, 120, seed=5)
    assert gc.isenabled()
    out = compute(panel, {"ma": "Mean($close, 5)", "sd": "Std($close, 20)", "mx": "IdxMax($high, 10)"})
    assert gc.isenabled(), "compute must switch the cycle collector back on"
    assert buffers.idle_bytes() == 0, "idle kernel buffers must be unmapped when a compute ends"
    assert out.height == panel.height and out["ma"].null_count() == 0
    gc.disable()
    try:
        compute(panel, {"ma": "Mean($close, 5)"})
        assert not gc.isenabled(), "a caller's disabled collector stays disabled"
    finally:
        gc.enable()
