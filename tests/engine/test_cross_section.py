"""Cross-sectional operators: CSRank / CSZScore / CSDemean against pandas' groupby by date, nested inside Qlib's
time-series operators and around them, with ties, NaN (suspensions, late listings) and ±inf."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from rdbridge.engine import compute
from rdbridge.engine.cross_section import staged_roots
from rdbridge.engine.runner import parse_all
from rdbridge.engine.synthetic import make_panel


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    p = make_panel(25, 120, seed=7, late_listing_frac=0.3, suspension_frac=0.05)
    # ties across instruments and ±inf in one field
    vol = p["volume"].to_numpy().copy()
    vol[::17] = np.inf
    vol[5::23] = -np.inf
    return p.with_columns(pl.Series("volume", vol, dtype=pl.Float32), (pl.col("close") * 0 + 1).alias("one"))


def _by_date(df: pd.DataFrame, col: pd.Series, how: str) -> np.ndarray:
    """The documented conventions, written with pandas."""
    g = col.groupby(df["datetime"])
    if how == "rank":
        return g.rank(pct=True).to_numpy()
    finite = col.where(np.isfinite(col))
    gf = finite.groupby(df["datetime"])
    dev = finite - gf.transform("mean")
    return (dev / gf.transform("std") if how == "z" else dev).to_numpy()


def _close(ours: np.ndarray, ref: np.ndarray, rtol: float = 1e-6) -> None:
    ref = ref.astype(np.float32).astype(np.float64)
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), "NaN at different rows"
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=rtol, atol=1e-6)


@pytest.mark.parametrize(("op", "how"), [("CSRank", "rank"), ("CSZScore", "z"), ("CSDemean", "demean")])
@pytest.mark.parametrize("field", ["close", "volume", "one"])
def test_operator_equals_pandas_by_date(panel: pl.DataFrame, op: str, how: str, field: str) -> None:
    got = compute(panel, {"x": f"{op}(${field})"})
    df = panel.to_pandas()
    ref = _by_date(df, df[field].astype(np.float64), how)
    _close(got["x"].to_numpy().astype(np.float64), ref)


def test_nested_both_ways_equals_pandas(panel: pl.DataFrame) -> None:
    got = compute(panel, {
        "ts_of_cs": "Mean(CSRank($close), 5)",
        "cs_of_ts": "CSZScore(Std($close / Ref($close, 1), 10))",
        "deep": "CSRank(Corr(CSDemean($close), $volume, 10))",
    })
    df = panel.to_pandas()
    ts = compute(panel, {"std": "Std($close / Ref($close, 1), 10)"}).to_pandas()
    z = _by_date(df, ts["std"].astype(np.float64), "z")
    _close(got["cs_of_ts"].to_numpy().astype(np.float64), z)
    rank = pd.Series(_by_date(df, df["close"].astype(np.float64), "rank").astype(np.float32), index=df.index)
    # Mean over 5 rows per instrument, min_periods=1, NaN skipped (Qlib's rolling mean)
    mean = rank.astype(np.float64).groupby(df["instrument"]).transform(lambda s: s.rolling(5, min_periods=1).mean())
    _close(got["ts_of_cs"].to_numpy().astype(np.float64), mean.to_numpy())
    assert got["deep"].is_nan().sum() < got.height  # computed, not all missing


def test_results_follow_the_panel_rows(panel: pl.DataFrame) -> None:
    """Computed alone, with other factors, or after a row-order-preserving subset: the same numbers."""
    alone = compute(panel, {"r": "CSRank($close)"})["r"]
    mixed = compute(panel, {"a": "Mean($close, 5)", "r": "CSRank($close)", "b": "CSRank(Mean($close, 5))"})["r"]
    assert alone.equals(mixed)


def test_equal_cross_sections_are_computed_once() -> None:
    roots = parse_all({"a": "CSRank($close) + 1", "b": "Mean(CSRank($close), 5)", "c": "CSRank(CSRank($close))"})
    plan = staged_roots(roots)
    assert [len(s.jobs) for s in plan.stages] == [1, 1]


def test_start_end_apply_after_the_cross_section(panel: pl.DataFrame) -> None:
    days = panel["datetime"].unique().sort()
    lo = days[40]
    full = compute(panel, {"r": "Mean(CSRank($close), 5)"}).filter(pl.col("datetime") >= lo)
    cut = compute(panel, {"r": "Mean(CSRank($close), 5)"}, start=lo)
    assert full.equals(cut)
