"""Each of the 158 Alpha158 factors from ``rdbridge.engine.compute`` equals pyqlib's, on a panel with late
listings, early delistings and suspended days: NaN at the same rows, values within float32 precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rdbridge.contracts.alpha158 import alpha158_expressions

from .qlib_ref import compare_one, engine_results, qlib_features, small_alpha158_reference, small_case

EXPRS = alpha158_expressions()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame | None, dict[str, str]]:
    from rdbridge.engine import compute

    panel, ref = small_alpha158_reference(tmp_path_factory)
    ours, errors = engine_results(compute, panel, EXPRS)
    return ref, ours, errors


@pytest.mark.qlib
@pytest.mark.parametrize("name", list(EXPRS))
def test_alpha158_factor_equals_qlib(results: tuple[pl.DataFrame, pl.DataFrame | None, dict[str, str]], name: str) -> None:
    ref, ours, errors = results
    assert name not in errors, f"{name} `{EXPRS[name]}` failed in the engine: {errors[name]}"
    assert ours is not None
    mismatch = compare_one(name, EXPRS[name], ours, ref)
    assert mismatch is None, mismatch.summary()


@pytest.mark.qlib
def test_alpha158_window_uses_history_before_start(tmp_path_factory: pytest.TempPathFactory) -> None:
    """With start/end, rolling windows still see the days before start, as pyqlib's D.features does."""
    from rdbridge.engine import compute

    panel, qlib_dir = small_case(tmp_path_factory)
    cal = np.unique(panel["datetime"].to_numpy())
    start, end = (str(np.datetime_as_string(cal[i], unit="D")) for i in (150, 260))
    picked = {n: EXPRS[n] for n in ("ROC60", "MA20", "STD60", "RSQR30", "CORD60", "SUMD20", "VSTD60", "IMXD60")}
    ref = qlib_features(qlib_dir, picked, start=start, end=end)
    ours = compute(panel, picked, start=start, end=end).sort(["instrument", "datetime"])
    assert ours["datetime"].min() >= ref["datetime"].min()
    found = [m.summary() for n, e in picked.items() if (m := compare_one(n, e, ours, ref))]
    assert not found, "\n".join(found)


def test_results_are_not_trivially_equal(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Guard the guard: the reference really varies across factors, so a constant engine cannot pass."""
    panel, qlib_dir = small_case(tmp_path_factory)
    ref = qlib_features(qlib_dir, {"MA5": EXPRS["MA5"], "MA60": EXPRS["MA60"]})
    assert compare_one("MA5", EXPRS["MA5"], ref.with_columns(pl.col("MA60").alias("MA5")), ref) is not None
    assert Path(qlib_dir).is_dir()
