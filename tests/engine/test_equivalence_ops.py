"""Every Qlib operator, through ``rdbridge.engine.compute``, equals pyqlib on the shared synthetic panel, including
Qlib's edge cases: N=0 (expanding), window 1, NaN after suspensions, inf from division by zero, ties."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from .qlib_ref import OPS_EXPRESSIONS, compare_one, engine_results, qlib_features, small_case

OPERATORS = (
    "Ref", "Mean", "Std", "Var", "Skew", "Kurt", "Max", "Min", "Med", "Mad", "Sum", "Quantile", "Rank", "Count",
    "Delta", "Slope", "Rsquare", "Resi", "WMA", "EMA", "IdxMax", "IdxMin", "Corr", "Cov", "Greater", "Less", "Abs",
    "Sign", "Log", "Power", "If", "And", "Or", "Not",
)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame | None, dict[str, str]]:
    from rdbridge.engine import compute

    panel, qlib_dir = small_case(tmp_path_factory)
    ref = qlib_features(qlib_dir, OPS_EXPRESSIONS)
    ours, errors = engine_results(compute, panel, OPS_EXPRESSIONS)
    return ref, ours, errors


def test_every_operator_is_covered() -> None:
    text = " ".join(OPS_EXPRESSIONS.values())
    missing = [op for op in OPERATORS if f"{op}(" not in text]
    assert not missing
    for sym in ("+", "-", "*", "/", ">", ">=", "<", "<=", "==", "!=", "&", "|"):
        assert sym in text, sym


@pytest.mark.qlib
@pytest.mark.parametrize("name", list(OPS_EXPRESSIONS))
def test_operator_equals_qlib(results: tuple[pl.DataFrame, pl.DataFrame | None, dict[str, str]], name: str) -> None:
    ref, ours, errors = results
    expr = OPS_EXPRESSIONS[name]
    assert name not in errors, f"{name} `{expr}` failed in the engine: {errors[name]}"
    assert ours is not None
    mismatch = compare_one(name, expr, ours, ref)
    assert mismatch is None, mismatch.summary()


def test_compare_catches_value_nan_and_row_differences() -> None:
    """The comparison must fail on a small value error, on a moved NaN and on a missing row."""
    ref = pl.DataFrame(
        {"instrument": ["A"] * 4, "datetime": pl.datetime_range(
            pl.datetime(2020, 1, 1), pl.datetime(2020, 1, 4), "1d", eager=True, time_unit="us"),
         "x": [1.0, float("nan"), 3.0, float("inf")]}
    )
    assert compare_one("x", "e", ref, ref) is None
    off = compare_one("x", "e", ref.with_columns(pl.Series("x", [1.0, float("nan"), 3.001, float("inf")])), ref)
    assert off is not None and off.bad_values == 1 and off.max_abs_diff == pytest.approx(0.001)
    within = ref.with_columns(pl.Series("x", [1.0 + 1e-6, float("nan"), 3.0, float("inf")]))
    assert compare_one("x", "e", within, ref) is None
    moved = compare_one("x", "e", ref.with_columns(pl.Series("x", [float("nan"), 2.0, 3.0, float("inf")])), ref)
    assert moved is not None and moved.nan_only_ours == 1 and moved.nan_only_qlib == 1
    sign = compare_one("x", "e", ref.with_columns(pl.Series("x", [1.0, np.nan, 3.0, -np.inf])), ref)
    assert sign is not None
    assert compare_one("x", "e", ref.head(3), ref) is not None
