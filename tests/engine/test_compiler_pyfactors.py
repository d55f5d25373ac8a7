"""Python factor functions run on the same panel as the expressions and come back aligned row for row."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import polars as pl
import pytest

from rdbridge.engine import compute
from rdbridge.engine.pyfactors import PyFactorError


def _panel() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "instrument": ["A", "A", "A", "B", "B"],
            "datetime": pl.Series([datetime(2020, 1, d) for d in (1, 2, 3, 2, 3)], dtype=pl.Datetime("us")),
            "close": pl.Series([1.0, 2.0, 4.0, 10.0, 20.0], dtype=pl.Float32),
        }
    )


def factor_ret(df: pl.DataFrame) -> pl.Series:
    return df.select(pl.col("close") / pl.col("close").shift(1).over("instrument") - 1).to_series()


def factor_pandas_indexed(df: pl.DataFrame) -> pd.Series:
    pdf = df.to_pandas().set_index(["datetime", "instrument"]).sort_index()  # RD-Agent's (datetime, instrument)
    return pdf["close"] * 2


def test_python_and_expression_factors_mix_in_one_request() -> None:
    out = compute(
        _panel(),
        {"ret_expr": "$close/Ref($close, 1)-1"},
        pyfactors={"ret_py": factor_ret, "double": factor_pandas_indexed, "arr": lambda df: np.arange(df.height)},
    )
    assert out.columns == ["instrument", "datetime", "ret_expr", "ret_py", "double", "arr"]
    a, b = out["ret_expr"].to_numpy(), out["ret_py"].to_numpy()
    assert np.array_equal(np.isnan(a), np.isnan(b)) and np.allclose(a[~np.isnan(a)], b[~np.isnan(b)])
    assert out["double"].to_list() == [2.0, 4.0, 8.0, 20.0, 40.0]  # aligned by key, not by position
    assert out["arr"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(out.schema[c] == pl.Float32 for c in ("ret_py", "double", "arr"))


def test_python_factor_errors_name_the_factor() -> None:
    def broken(df: pl.DataFrame) -> pl.Series:
        raise KeyError("$close")

    with pytest.raises(PyFactorError, match="'bad'.*KeyError"):
        compute(_panel(), {}, pyfactors={"bad": broken})
    with pytest.raises(PyFactorError, match="3 values for 5 panel rows"):
        compute(_panel(), {}, pyfactors={"short": lambda df: pl.Series([1.0, 2.0, 3.0])})
    with pytest.raises(ValueError, match="both as an expression and as a Python factor"):
        compute(_panel(), {"x": "$close"}, pyfactors={"x": factor_ret})


def test_rd_factors_lib_functions_take_rdagent_frame_and_equal_the_expressions() -> None:
    """The package's functions (RD-Agent's daily frame in, a Series on its index out) run in the engine beside the
    expressions they implement and give the same values."""
    from rd_factors_lib.alpha158 import factor_roc5, factor_std20
    from rd_factors_lib.momentum import factor_mom_20

    from rdbridge.engine.synthetic import make_panel

    panel = make_panel(6, 120, seed=4, late_listing_frac=0.3, suspension_frac=0.03)
    out = compute(panel, {"ROC5": "Ref($close, 5)/$close", "STD20": "Std($close, 20)/$close",
                          "MOM20": "$close/Ref($close, 20)-1"},
                  pyfactors={"roc5": factor_roc5, "std20": factor_std20, "mom20": factor_mom_20})
    for expr, py in (("ROC5", "roc5"), ("STD20", "std20"), ("MOM20", "mom20")):
        a, b = out[expr].to_numpy(), out[py].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), py
        assert np.isfinite(b).sum() > 300 and np.allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=1e-5, atol=1e-6), py


def test_each_rd_factors_lib_function_gets_its_own_copy_of_the_frame() -> None:
    def marked(fn):  # what rd_factors_lib's @factor does
        fn.factor_name = fn.__name__.upper()
        return fn

    @marked
    def vandal(df: pd.DataFrame) -> pd.Series:
        df["$close"] = -1.0
        return df["$close"]

    @marked
    def close(df: pd.DataFrame) -> pd.Series:
        assert isinstance(df.index, pd.MultiIndex) and list(df.index.names) == ["datetime", "instrument"]
        return df["$close"]

    out = compute(_panel(), {}, pyfactors={"vandal": vandal, "close": close})
    assert out["close"].to_list() == [1.0, 2.0, 4.0, 10.0, 20.0] and set(out["vandal"].to_list()) == {-1.0}
