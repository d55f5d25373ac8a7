"""Compiler semantics on tiny panels whose results are worked out by hand (Qlib's rules: min_periods=1 windows,
NaN skipped, ddof=1, inf from division, per-instrument history, float32 output)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rdbridge.engine import FactorExpressionError, PanelError, compute

NAN = float("nan")


def panel(rows: dict[str, list[float]], starts: dict[str, int] | None = None, extra: dict | None = None) -> pl.DataFrame:
    """Instruments with their close series; ``starts`` shifts an instrument's first day (late listing)."""
    starts = starts or {}
    inst, dt, close = [], [], []
    for name, values in rows.items():
        s = starts.get(name, 0)
        for i, v in enumerate(values):
            inst.append(name)
            dt.append(datetime(2020, 1, 1) + timedelta(days=s + i))
            close.append(v)
    data = {"instrument": inst, "datetime": pl.Series(dt, dtype=pl.Datetime("us")),
            "close": pl.Series(close, dtype=pl.Float32)}
    for k, v in (extra or {}).items():
        data[k] = pl.Series(v, dtype=pl.Float32)
    return pl.DataFrame(data)


def col(df: pl.DataFrame, name: str, inst: str | None = None) -> list[float]:
    if inst is not None:
        df = df.filter(pl.col("instrument") == inst)
    return df[name].cast(pl.Float64).to_list()


def same(a: list[float], b: list[float], tol: float = 1e-6) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if math.isnan(y):
            if not math.isnan(x):
                return False
        elif math.isinf(y):
            if x != y:
                return False
        elif abs(x - y) > tol * (1 + abs(y)):
            return False
    return True


def test_nan_inside_window_is_skipped() -> None:
    p = panel({"A": [1.0, NAN, 3.0, 5.0]})
    out = compute(p, {"m": "Mean($close, 3)", "s": "Sum($close, 3)", "sd": "Std($close, 3)", "c": "Count($close, 3)",
                      "mx": "Max($close, 3)"})
    assert same(col(out, "m"), [1.0, 1.0, 2.0, 4.0])
    assert same(col(out, "s"), [1.0, 1.0, 4.0, 8.0])
    assert same(col(out, "sd"), [NAN, NAN, math.sqrt(2.0), math.sqrt(2.0)])  # ddof=1: one value -> NaN
    assert same(col(out, "c"), [1.0, 1.0, 2.0, 2.0])
    assert same(col(out, "mx"), [1.0, 1.0, 3.0, 5.0])


def test_late_listing_uses_partial_windows_and_never_mixes_instruments() -> None:
    p = panel({"A": [10.0, 20.0, 30.0, 40.0, 50.0], "B": [1.0, 2.0, 3.0]}, starts={"B": 2})
    out = compute(p, {"m": "Mean($close, 3)", "r": "Ref($close, 1)", "d": "Delta($close, 2)"})
    assert out.height == 8
    assert same(col(out, "m", "B"), [1.0, 1.5, 2.0])
    assert same(col(out, "r", "B"), [NAN, 1.0, 2.0])
    assert same(col(out, "d", "B"), [NAN, NAN, 2.0])
    assert same(col(out, "m", "A"), [10.0, 15.0, 20.0, 30.0, 40.0])


def test_ref_beyond_history_and_into_the_future() -> None:
    p = panel({"A": [1.0, 2.0, 3.0], "B": [7.0, 8.0]})
    out = compute(p, {"far": "Ref($close, 10)", "next": "Ref($close, -1)", "first": "Ref($close, 0)"})
    assert same(col(out, "far"), [NAN] * 5)
    assert same(col(out, "next", "A"), [2.0, 3.0, NAN])  # the last day does not see instrument B
    assert same(col(out, "first", "B"), [7.0, 7.0])


def test_division_by_zero_gives_inf_and_zero_over_zero_nan() -> None:
    p = panel({"A": [1.0, 0.0, -2.0]}, extra={"open": [1.0, 0.0, 1.0]})
    out = compute(p, {"x": "$close/($open-$open)"})
    assert same(col(out, "x"), [math.inf, NAN, -math.inf])


def test_rolling_operators_see_inf_as_missing() -> None:
    """pandas turns inf into NaN before a rolling aggregation; Count still counts it."""
    p = panel({"A": [1.0, 0.0, 3.0]}, extra={"open": [1.0, 0.0, 1.0], "den": [1.0, 0.0, 1.0]})
    out = compute(p, {"m": "Mean($close/$den, 3)", "c": "Count($close/$den, 3)"})
    # rows: 1/1=1, 0/0=NaN, 3/1=3
    assert same(col(out, "m"), [1.0, 1.0, 2.0])
    assert same(col(out, "c"), [1.0, 1.0, 2.0])
    p2 = panel({"A": [1.0, 5.0, 3.0]}, extra={"den": [1.0, 0.0, 1.0]})  # 5/0 = inf
    out2 = compute(p2, {"m": "Mean($close/$den, 3)", "c": "Count($close/$den, 3)"})
    assert same(col(out2, "m"), [1.0, 1.0, 2.0])
    assert same(col(out2, "c"), [1.0, 2.0, 3.0])


def test_comparisons_with_nan_are_false_except_not_equal() -> None:
    p = panel({"A": [1.0, NAN, 3.0]}, extra={"open": [0.0, 0.0, 3.0]})
    out = compute(p, {"gt": "$close>$open", "eq": "$close==$open", "ne": "$close!=$open", "cnt": "Mean($close>$open, 3)"})
    assert same(col(out, "gt"), [1.0, 0.0, 0.0])
    assert same(col(out, "eq"), [0.0, 0.0, 1.0])
    assert same(col(out, "ne"), [1.0, 1.0, 0.0])
    assert same(col(out, "cnt"), [1.0, 0.5, 1.0 / 3.0])  # False counts as a value, not as missing


def test_greater_less_propagate_nan_like_numpy() -> None:
    p = panel({"A": [1.0, NAN, -3.0]})
    out = compute(p, {"g": "Greater($close, 0)", "l": "Less($close, 0)", "a": "Abs($close)", "s": "Sign($close)"})
    assert same(col(out, "g"), [1.0, NAN, 0.0])
    assert same(col(out, "l"), [0.0, NAN, -3.0])
    assert same(col(out, "a"), [1.0, NAN, 3.0])
    assert same(col(out, "s"), [1.0, NAN, -1.0])


def test_regression_on_a_straight_line() -> None:
    line = [2.0 * i + 1.0 for i in range(1, 9)]
    p = panel({"A": line})
    out = compute(p, {"b": "Slope($close, 4)", "r": "Rsquare($close, 4)", "e": "Resi($close, 4)"})
    assert same(col(out, "b")[1:], [2.0] * 7)
    assert math.isnan(col(out, "b")[0])  # one point: 0/0
    assert same(col(out, "r")[3:], [1.0] * 5)
    assert all(abs(v) < 1e-9 for v in col(out, "e")[1:])


def test_slope_keeps_the_slot_of_a_nan_day() -> None:
    # y at positions 1, 3 (position 2 is NaN): slope (7-3)/(3-1) = 2, not (7-3)/1
    p = panel({"A": [3.0, NAN, 7.0]})
    out = compute(p, {"b": "Slope($close, 3)"})
    assert same(col(out, "b")[2:], [2.0])


def test_idxmax_rank_quantile_rules() -> None:
    p = panel({"A": [1.0, 3.0, 2.0, 3.0, NAN, 0.0]})
    out = compute(p, {"im": "IdxMax($close, 3)", "in": "IdxMin($close, 3)", "rk": "Rank($close, 3)",
                      "q": "Quantile($close, 3, 0.5)"})
    # windows: [1] [1,3] [1,3,2] [3,2,3] [2,3,NaN] [3,NaN,0]
    assert same(col(out, "im"), [1.0, 2.0, 2.0, 1.0, 3.0, 2.0])  # first max wins; a NaN in the window wins
    assert same(col(out, "in"), [1.0, 1.0, 1.0, 2.0, 3.0, 2.0])
    # rank: average rank / count; [3,2,3] current 3 ties with one: (1 + (2+1)/2)/3
    assert same(col(out, "rk"), [1.0, 1.0, 2.0 / 3.0, 2.5 / 3.0, NAN, 0.5])
    assert same(col(out, "q"), [1.0, 2.0, 2.0, 3.0, 2.5, 1.5])


def test_skew_kurt_wma_ema_against_direct_formulas() -> None:
    vals = [1.0, 4.0, 2.0, 8.0, 5.0, 7.0]
    p = panel({"A": vals})
    out = compute(p, {"sk": "Skew($close, 5)", "ku": "Kurt($close, 5)", "w": "WMA($close, 3)",
                      "e": "EMA($close, 3)"})
    x = np.array(vals[1:6])
    n = len(x)
    m = x.mean()
    m2, m3, m4 = ((x - m) ** 2).mean(), ((x - m) ** 3).mean(), ((x - m) ** 4).mean()
    skew = math.sqrt(n * (n - 1)) / (n - 2) * m3 / m2**1.5
    kurt = (n + 1) * n * (n - 1) / ((n - 2) * (n - 3)) * (n * m4) / (n * m2) ** 2 - 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))
    assert same(col(out, "sk")[5:], [skew])
    assert same(col(out, "ku")[5:], [kurt])
    assert same(col(out, "w")[:3], [1.0 * 1 / 1, (1 * 1 + 4 * 2) / 3 / 2, (1 * 1 + 4 * 2 + 2 * 3) / 6 / 3])
    a = 0.5  # span 3 -> alpha 2/(3+1)
    w = np.array([(1 - a) ** 2, (1 - a), 1.0])
    assert same(col(out, "e")[2:3], [float((w * np.array(vals[:3])).sum() / w.sum())])


def test_output_is_float32_in_panel_order_and_start_end_use_history() -> None:
    p = panel({"B": [5.0, 6.0, 7.0, 8.0], "A": [1.0, 2.0, 3.0, 4.0]})
    out = compute(p, {"m": "Mean($close, 2)", "flag": "$close>2"})
    assert out.columns == ["instrument", "datetime", "m", "flag"]
    assert out.schema["m"] == pl.Float32 and out.schema["flag"] == pl.Float32
    assert out["instrument"].to_list() == ["B"] * 4 + ["A"] * 4
    cut = compute(p, {"m": "Mean($close, 2)"}, start="2020-01-03", end="2020-01-03")
    assert cut["instrument"].to_list() == ["B", "A"]
    assert same(col(cut, "m"), [6.5, 2.5])  # the window reaches back before start


def test_shared_subexpressions_give_the_same_values_as_alone() -> None:
    rng = np.random.default_rng(3)
    p = panel({"A": list(rng.normal(10, 1, 40)), "B": list(rng.normal(20, 2, 30))}, starts={"B": 5})
    exprs = {"a": "Mean($close, 5)/$close", "b": "Std($close, 5)/Mean($close, 5)",
             "c": "Corr($close, Ref($close, 1), 10)", "d": "Rsquare($close, 10)+Slope($close, 10)"}
    together = compute(p, exprs)
    for name, expr in exprs.items():
        alone = compute(p, {name: expr})
        assert same(col(together, name), col(alone, name), tol=0)


def test_bad_requests_name_the_problem() -> None:
    p = panel({"A": [1.0, 2.0]})
    with pytest.raises(PanelError, match=r"\$vwap"):
        compute(p, {"x": "$vwap/$close"})
    with pytest.raises(FactorExpressionError, match="factor 'x'") as info:
        compute(p, {"x": "Mean($close, 5"})
    assert info.value.column == 15  # the end of the text, where ')' is missing
    shuffled = pl.concat([p, panel({"B": [1.0]}), panel({"A": [9.0]}, starts={"A": 5})])
    with pytest.raises(PanelError, match="contiguous"):
        compute(shuffled, {"x": "$close"})


def test_greater_and_less_of_a_shifted_condition_keep_numpys_object_loop_order() -> None:
    """Qlib's ``Ref(condition, N)`` is an object column and np.minimum's object loop is ``a if a <= b else b``: a NaN
    on the left gives b, on the right NaN. The operands must keep their order (no commutative reordering), and
    ``Ref(condition, 0)`` (a Series of one scalar: bool) or a shifted float lets NaN win."""
    p = panel({"A": [1.0, 3.0, 2.0, 5.0]})
    out = compute(p, {"left": "Less(Ref(($close > 2), 1), 0.5)", "right": "Less(0.5, Ref(($close > 2), 1))",
                      "delta": "Greater(Delta(($close > 2), 1), -0.5)",
                      "first": "Less(Ref($close, 1), Ref(($close > 2), 0))"})
    # Ref(close > 2, 1): [NaN, False, True, False]
    assert same(col(out, "left"), [0.5, 0.0, 0.5, 0.0])
    assert same(col(out, "right"), [NAN, 0.0, 0.5, 0.0])
    assert same(col(out, "delta"), [-0.5, 1.0, -0.5, 1.0])  # (close > 2) - its shift: [NaN, 1, -1, 1]
    assert same(col(out, "first"), [NAN, 0.0, 0.0, 0.0])
