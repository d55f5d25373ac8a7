"""Outputs written by their kernel (``epilogue.py``): which ones take the path, and that they are bit for bit what
the Polars form gives, on a panel with late listings, suspensions (NaN rows), zeros in the divisor (inf) and ties."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rdbridge.engine import compiler, compute
from rdbridge.engine.synthetic import make_panel

D1 = "($close - Ref($close, 1))"
EXPRS = {
    "ma": "Mean($close, 5) / $close",
    "std": "Std($close, 10) / $close",
    "mx": "Max($high, 20) / $close",
    "qtlu": "Quantile($close, 10, 0.8) / $close",
    "rank": "Rank($close, 7)",
    "imax": "IdxMax($high, 5) / 5",
    "beta": "Slope($close, 10) / $close",
    "resi": "Resi($close, 5) / $close",
    "by_zero": "Mean($volume, 3) / $zero",  # x / 0 -> inf, 0 / 0 -> NaN
    "sum_by_neg": "Sum($close, 4) / -3",
    "rsqr": "Rsquare($close, 10)",  # the flat-window mask is the kernel's own (flat_windows.py)
    "corr": "Corr($close, Log($volume + 1), 5)",
    # formulas of several statistics and fields, from one or several kernels
    "std_shared": "Std($close, 10)",  # also read by std and std_ratio, which are fused too
    "std_ratio": "Std($close, 10) / Mean($close, 10)",
    "wvma": "Std($close, 10) / (Mean($close, 10) + 1e-12)",
    "vma": "Mean($volume, 5) / ($volume + 1e-12)",  # $volume + 1e-12 in float32, as numpy
    "sump": f"Sum(Greater({D1}, 0), 5) / (Sum(Abs({D1}), 5) + 1e-12)",
    "sumd": f"(Sum(Greater({D1}, 0), 5) - Sum(Greater(Ref($close, 1) - $close, 0), 5)) / (Sum(Abs({D1}), 5) + 1e-12)",
    "cntp": "Mean($close > Ref($close, 1), 5)",
    "cntd": "Mean($close > Ref($close, 1), 5) - Mean($close < Ref($close, 1), 5)",
    "imxd": "(IdxMax($high, 5) - IdxMin($low, 5)) / 5",
    "rsv": "($close - Min($low, 5)) / (Max($high, 5) - Min($low, 5) + 1e-12)",
    "zero_span": "(Mean($close, 3) - $zero) / (Max($zero, 3) - Min($zero, 3) + 0)",  # 0 / 0 and x / 0
    # not fused: no window statistic, or not of the fused shapes
    "roc": "Ref($close, 5) / $close",
    "kmid": "($close - $open) / $open",
    "affine": "Mean($close, 5) * 2 + 1",
    "nested": "Mean($close, 5) / (Mean($close, 5) / $close)",
}
FUSED = set(EXPRS) - {"roc", "kmid", "affine", "nested"}


def _panel() -> pl.DataFrame:
    p = make_panel(12, 90, seed=3, late_listing_frac=0.4, suspension_frac=0.05)
    zero = pl.when(pl.int_range(pl.len()) % 7 == 0).then(0.0).otherwise(pl.col("open") - pl.col("close"))
    return p.with_columns(zero.cast(pl.Float32).alias("zero"))


def test_the_kernel_writes_stat_outputs_and_polars_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    fused: set[str] = set()
    real_plan = compiler.plan

    def spy(roots, ctx, field_columns):  # noqa: ANN001, ANN202 - test spy with plan's signature
        p = real_plan(roots, ctx, field_columns)
        fused.update(name for name, c in p.outputs.items() if c in p.fused)
        return p

    monkeypatch.setattr("rdbridge.engine.runner.plan", spy)
    compute(_panel(), EXPRS)
    assert fused == FUSED


def test_fused_outputs_are_bit_identical_to_the_polars_form(monkeypatch: pytest.MonkeyPatch) -> None:
    p = _panel()
    got = compute(p, EXPRS)
    monkeypatch.setattr(compiler, "_epilogue", lambda *a, **k: None)
    want = compute(p, EXPRS)
    assert got.columns == want.columns
    for name in EXPRS:
        a, b = got[name], want[name]
        assert a.dtype == b.dtype == pl.Float32, name
        assert a.null_count() == b.null_count() == 0, name
        np.testing.assert_array_equal(a.to_numpy().view(np.uint32), b.to_numpy().view(np.uint32), err_msg=name)
    by_zero = got["by_zero"].to_numpy()
    assert np.isinf(by_zero).any() and np.isnan(by_zero).any()


def test_a_lone_fused_output_still_runs_its_kernel() -> None:
    """The only request is a statistic the kernel writes itself: no column reads the kernel's helper."""
    p = _panel()
    alone = compute(p, {"rank": "Rank($close, 7)"})
    with_others = compute(p, EXPRS)
    np.testing.assert_array_equal(alone["rank"].to_numpy(), with_others["rank"].to_numpy())
    assert alone["rank"].is_nan().sum() < alone.height


def test_statistics_only_fused_outputs_read_are_not_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Mean($close, 5) - Mean($open, 5)`` is written from the two kernels' results: no column is planned at all
    (before, the difference was one), and the kernels still run."""
    plans = []
    real_plan = compiler.plan

    def spy(roots, ctx, field_columns):  # noqa: ANN001, ANN202 - test spy with plan's signature
        plans.append(real_plan(roots, ctx, field_columns))
        return plans[-1]

    monkeypatch.setattr("rdbridge.engine.runner.plan", spy)
    p = _panel()
    got = compute(p, {"d": "Mean($close, 5) - Mean($open, 5)"})
    assert [cols for layer in plans[0].layers for cols in layer] == []
    monkeypatch.setattr(compiler, "_epilogue", lambda *a, **k: None)
    want = compute(p, {"d": "Mean($close, 5) - Mean($open, 5)"})
    assert [cols for layer in plans[-1].layers for cols in layer] != []  # the Polars form: one column
    np.testing.assert_array_equal(got["d"].to_numpy().view(np.uint32), want["d"].to_numpy().view(np.uint32))
    assert 0 < got["d"].is_nan().sum() < got.height


def test_results_only_fused_outputs_read_leave_the_work_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel result that only fused outputs read is not kept as a column (``Ctx.result_series``): its buffer
    goes back to the pool when the kernel returns. One a planned column reads stays, and both outputs are right."""
    ctxs = []
    real_plan = compiler.plan

    def spy(roots, ctx, field_columns):  # noqa: ANN001, ANN202 - test spy with plan's signature
        ctxs.append(ctx)
        return real_plan(roots, ctx, field_columns)

    monkeypatch.setattr("rdbridge.engine.runner.plan", spy)
    p = _panel()
    exprs = {"ma": "Mean($close, 5) / $close", "std": "Std($close, 5) / $close", "affine": "Std($close, 5) * 2 + 1"}
    got = compute(p, exprs)
    read = {field for key, field in ctxs[0].column_fields if key[0] == "moments"}
    assert read == {"std"}  # the mean only feeds the fused "ma"
    key = next(k for k, field in ctxs[0].column_fields if field == "std")
    values = np.zeros(ctxs[0].first_real.size)
    assert ctxs[0].result_series(key, "mean", values) is None
    assert ctxs[0].result_series(key, "std", values) is not None
    monkeypatch.setattr(compiler, "_epilogue", lambda *a, **k: None)
    want = compute(p, exprs)
    for name in exprs:
        np.testing.assert_array_equal(got[name].to_numpy().view(np.uint32), want[name].to_numpy().view(np.uint32))
