"""The operator registry: one small class per Qlib operator, each saying its signature, its result dtype and its
Polars form.

The forms run on the padded layout built by ``runner.py``: one long column in which every instrument's block starts
with at least ``max window`` null pad rows. A window over that column never sees another instrument (a shift meets
the null pads; the numba window kernels start each window at its block's first real row), and Qlib's
``min_periods=1`` partial windows at the start of a history come out right. Window statistics are numba kernels
called through ``map_batches``, so the plan stays one set of Polars expressions.

Semantics follow pyqlib 0.9.7 on pandas (the contract):
- fields are float32; element-wise arithmetic keeps numpy's dtype (float32 stays float32, Python numbers are weak);
- comparisons with NaN are False (``!=`` True), as numpy's;
- rolling operators see ±inf as NaN (pandas' ``_prep_values``), skip NaN, need one value (``min_periods=1``),
  return float64; ``Std``/``Var`` use ddof=1; ``Count`` counts non-NaN (inf included);
- ``Slope``/``Rsquare``/``Resi`` follow Qlib's Cython (x = 1..N position in the window, NaN skipped but keeping
  its slot), computed from exact window sums; ``Rsquare`` and ``Corr`` are NaN where a rolling std is ~0.
"""

from __future__ import annotations

import math

from rdbridge.engine.elementwise import (
    Abs,
    Add,
    And,
    Delta,
    Div,
    Eq,
    Ge,
    Greater,
    Gt,
    If,
    Le,
    Less,
    Log,
    Lt,
    Mul,
    Ne,
    Not,
    Op,
    Or,
    Power,
    Ref,
    Sign,
    Sub,
    object_valued,
)
from rdbridge.engine.window_ops import (
    EMA,
    WMA,
    Corr,
    Count,
    Cov,
    IdxMax,
    IdxMin,
    Kurt,
    Mad,
    Max,
    Mean,
    Med,
    Min,
    Quantile,
    Rank,
    Resi,
    Rolling,
    Rsquare,
    Skew,
    Slope,
    Std,
    Sum,
    Var,
)

__all__ = ["OPERATORS", "UNSUPPORTED", "Op", "Ref", "Rolling", "EMA", "is_int_like", "object_valued"]


OPERATORS: dict[str, Op] = {
    cls.name: cls()
    for cls in (
        Add, Sub, Mul, Div, Power, Greater, Less, Gt, Ge, Lt, Le, Eq, Ne, And, Or, Not, If, Abs, Sign, Log,
        Ref, Delta, Mean, Sum, Std, Var, Max, Min, Med, Quantile, Count, Rank, Skew, Kurt, WMA, EMA, Mad,
        IdxMax, IdxMin, Slope, Resi, Rsquare, Cov, Corr,
    )
}
"""Every supported operator by its Qlib name."""

import rdbridge.engine.cross_section  # noqa: E402,F401 - registers CSRank, CSZScore, CSDemean (they subclass Op)

UNSUPPORTED = {
    "Mask": "it reads another instrument's data",
    "ChangeInstrument": "it reads another instrument's data",
    "TResample": "it changes the time index",
    "P": "point-in-time data is not in a daily panel",
    "PRef": "point-in-time data is not in a daily panel",
    "Rolling": "Qlib's generic Rolling takes a pandas method name; use the named operator (Mean, Std...)",
}


def is_int_like(v: int | float) -> bool:
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v) and v.is_integer())
