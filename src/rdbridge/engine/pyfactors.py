"""Python factor functions run on the same panel as the expressions.

Two calling conventions. A function of ``rd_factors_lib`` (marked by its ``@factor`` decorator, so it carries
``factor_name``) takes what RD-Agent's factor scripts read, ``daily_pv.h5``'s frame: pandas, MultiIndex
(datetime, instrument), ``$open`` ... ``$factor`` columns; its Series comes back aligned by that index. Any other
function takes the engine's panel (Polars, long layout). Accepted results: a Polars Series, a Polars expression
(evaluated on the panel), a numpy array, a pandas Series (positional when its length matches, or indexed by
(instrument, datetime) / (datetime, instrument) as RD-Agent's factors write it), or a frame with ``instrument``,
``datetime`` and one value column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import polars as pl

KEYS = ["instrument", "datetime"]


class PyFactorError(ValueError):
    """A Python factor failed or returned something the engine cannot align with the panel."""


def _series_from_pandas(name: str, res: object, panel: pl.DataFrame) -> pl.Series:
    import pandas as pd

    if isinstance(res, pd.DataFrame):
        if res.shape[1] != 1:
            raise PyFactorError(f"Python factor {name!r} returned a pandas frame with {res.shape[1]} columns; return one")
        res = res.iloc[:, 0]
    assert isinstance(res, pd.Series)
    names = [n for n in (res.index.names or []) if n]
    if isinstance(res.index, pd.MultiIndex) and set(KEYS) <= set(names):
        frame = res.rename("__v").reset_index()[["instrument", "datetime", "__v"]]
        right = pl.from_pandas(frame).with_columns(
            pl.col("instrument").cast(pl.Utf8), pl.col("datetime").cast(pl.Datetime("us"))
        )
        left = panel.select(pl.col("instrument").cast(pl.Utf8), pl.col("datetime").cast(pl.Datetime("us")))
        joined = left.join(right, on=KEYS, how="left", maintain_order="left")
        return joined["__v"].cast(pl.Float64).alias(name)
    if len(res) != panel.height:
        raise PyFactorError(
            f"Python factor {name!r} returned {len(res)} values for {panel.height} panel rows and no "
            "(instrument, datetime) index to align them"
        )
    return pl.Series(name, res.to_numpy(dtype=np.float64, na_value=np.nan))


def to_column(name: str, res: object, panel: pl.DataFrame) -> pl.Series:
    """Align one factor function's result with the panel's rows."""
    if isinstance(res, pl.Expr):
        res = panel.select(res.alias(name)).to_series()
    if isinstance(res, pl.DataFrame):
        value_cols = [c for c in res.columns if c not in KEYS]
        if len(value_cols) != 1:
            raise PyFactorError(f"Python factor {name!r} returned a frame with value columns {value_cols}; return one")
        if set(KEYS) <= set(res.columns):
            left = panel.select(pl.col("instrument").cast(pl.Utf8), "datetime")
            right = res.select(pl.col("instrument").cast(pl.Utf8), "datetime", pl.col(value_cols[0]).alias("__v"))
            res = left.join(right, on=KEYS, how="left", maintain_order="left")["__v"]
        else:
            res = res[value_cols[0]]
    if isinstance(res, pl.Series):
        if res.len() != panel.height:
            raise PyFactorError(f"Python factor {name!r} returned {res.len()} values for {panel.height} panel rows")
        return res.cast(pl.Float64).fill_null(float("nan")).alias(name)
    if isinstance(res, np.ndarray):
        if res.shape != (panel.height,):
            raise PyFactorError(f"Python factor {name!r} returned an array of shape {res.shape}; want ({panel.height},)")
        return pl.Series(name, res.astype(np.float64))
    try:
        import pandas as pd

        if isinstance(res, (pd.Series, pd.DataFrame)):
            return _series_from_pandas(name, res, panel).fill_null(float("nan"))
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    raise PyFactorError(f"Python factor {name!r} returned {type(res).__name__}; return a Series/array/expression")


def rdagent_frame(panel: pl.DataFrame) -> Any:
    """The panel as RD-Agent's ``daily_pv.h5`` frame: MultiIndex (datetime, instrument), ``$`` columns, float32."""
    df = panel.to_pandas()
    df = df.rename(columns={c: f"${c}" for c in df.columns if c not in KEYS})
    return df.set_index(["datetime", "instrument"]).sort_index()


def takes_rdagent_frame(fn: Callable[..., object]) -> bool:
    """True for ``rd_factors_lib``'s functions (its ``@factor`` decorator sets ``factor_name``)."""
    return isinstance(getattr(fn, "factor_name", None), str)


def run_pyfactors(panel: pl.DataFrame, funcs: Mapping[str, Callable[..., object]]) -> list[pl.Series]:
    """Run each factor function on the panel (``rd_factors_lib``'s on a copy of RD-Agent's frame of it: a function
    may change what it is given); Float32 columns like the expressions' (Qlib's storage dtype)."""
    out = []
    frame = None
    for name, fn in funcs.items():
        try:
            if takes_rdagent_frame(fn):
                frame = rdagent_frame(panel) if frame is None else frame
                res = fn(frame.copy())
            else:
                res = fn(panel)
        except Exception as exc:  # noqa: BLE001 - the user's code; report which factor failed
            raise PyFactorError(f"Python factor {name!r} ({getattr(fn, '__module__', '?')}."
                                f"{getattr(fn, '__name__', '?')}) raised {type(exc).__name__}: {exc}") from exc
        out.append(to_column(name, res, panel).cast(pl.Float32))
    return out
