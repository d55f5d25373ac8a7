"""Rolling-window operators: ``Op(x, N)`` over each instrument's history (Mean ... Corr), computed by the numba window
kernels through ``map_batches`` on the padded layout (``ops.py`` states the layout and Qlib's semantics they follow).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl

from rdbridge.engine import kernels
from rdbridge.engine.columns import filled
from rdbridge.engine.context import (
    BOOL,
    F32,
    F64,
    CompileError,
    Ctx,
    Value,
    rolling_input,
)
from rdbridge.engine.elementwise import Op
from rdbridge.engine.pair_windows import pair_window, regression_window
from rdbridge.engine.window_stats import window_moments

# rolling ----------------------------------------------------------------------------------------------------------------


class Rolling(Op):
    """Shared shape of ``Op(x, N)`` rolling operators: N >= 1 rows, or 0 for Qlib's expanding window."""

    params = ("window",)
    masks_pads = True
    min_window: ClassVar[int] = 1

    def check(self, params: tuple[int | float, ...]) -> str | None:
        n = params[0]
        if n != 0 and n < self.min_window:
            return f"{self.name} needs a window of at least {self.min_window} (or 0 for expanding), got {n}"
        return None

    def lookback(self, params: tuple[int | float, ...]) -> int:
        return max(int(params[0]) - 1, 0)

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        n = int(params[0])
        expr = self.rolling(ctx, ins, n)
        return expr if self.clean(n) else ctx.finish(expr)

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        raise NotImplementedError

    kernel_column: ClassVar[bool] = False
    """``rolling`` gives a kernel column (``Ctx.kernel_series``): already null on pad rows and NaN (never null) on
    real rows without a result, so ``Ctx.finish``'s two masking passes are skipped."""

    def clean(self, n: int) -> bool:
        """Whether this window's column needs no finishing masks (``kernel_column``, or per window when the form
        depends on it)."""
        return self.kernel_column


def prep(ctx: Ctx, v: Value) -> pl.Expr:
    """The shared column pandas' rolling would see for ``v`` (float64, NaN/inf -> null)."""
    return ctx.shared(("prep", v.key), lambda: rolling_input(v))


def kernel_input(v: Value) -> pl.Expr:
    """``v`` as a window kernel reads it: float32 and float64 columns as they are (the kernels widen float32 values
    to float64 as they read them, exactly, so a float64 copy would only cost a pass and 8 bytes a row), booleans as
    float32 0/1."""
    assert v.expr is not None
    return v.expr if v.dtype in (F32, F64) else v.expr.cast(pl.Float32)


def wsums(ctx: Ctx, kind: str, key: object, n: int, a: pl.Expr, b: pl.Expr | None = None) -> dict[str, pl.Expr]:
    """The results of one window kernel pass (``pair_windows``; nulls, the pads, count as missing): for a Cov/Corr
    pair (``kind="pair"``) the covariance and correlation with pandas' arithmetic, for a regression (``"reg"``, y=a)
    Qlib's slope, residual and r^2. When Corr or Rsquare reads its result (``masked``), Qlib's flat windows are
    already NaN there; the covariance is computed only when Cov reads it (``cov``). ``n == 0`` is expanding."""
    results = PAIR_RESULTS if kind == "pair" else REG_RESULTS
    ckey = ("wsums", kind, key, n)
    state = ctx.kernel_cache.setdefault(ckey, {"masked": False, "cov": False})
    first_real = ctx.first_real

    def run(s: pl.Series) -> pl.Series:
        if kind == "pair":
            got = pair_window(filled(s.struct.field("a")), filled(s.struct.field("b")), n, first_real,
                              mask=state["masked"], cov=state["cov"])
        else:
            got = regression_window(filled(s), n, first_real, mask=state["masked"])
        cols = dict(zip(results, got.results))
        ctx.emit(ckey, cols)
        return ctx.result_struct(ckey, cols, results, s.name)

    def build() -> pl.Expr:
        src = pl.struct([a.alias("a"), b.alias("b")]) if b is not None else a
        return src.map_batches(run, return_dtype=pl.Struct({w: pl.Float64 for w in results}))

    col = ctx.shared(ckey, build)
    return {w: col.struct.field(w) for w in results}


PAIR_RESULTS = ("cov", "corr")
REG_RESULTS = ("slope", "resi", "r2")


MOMENT_STATS = ("mean", "var", "std", "sum", "max", "min")


def moment(ctx: Ctx, v: Value, n: int, stat: str) -> pl.Expr:
    """Mean / Var / Std / Sum / Max / Min of ``v`` over window ``n``, null on pads, NaN where the window is empty.

    Every statistic asked of the same input and window comes from one kernel pass (``window_stats``) into one
    struct column: one task for Polars' thread pool, so no thread waits for another to fill a shared cache. The
    set of statistics is read when the kernel runs, after the whole request is planned; fields nobody asked for
    share another field's buffer and are never read.
    """
    if v.expr is None:
        raise CompileError("a rolling operator needs an expression, not a number, as its input")
    stats: set[str] = ctx.kernel_cache.setdefault(("moments", v.key, n), {"stats": set()})["stats"]
    stats.add(stat)
    first_real = ctx.first_real
    src = kernel_input(v)

    key = ("moments", v.key, n)

    def run(s: pl.Series) -> pl.Series:
        got = window_moments(ctx.real_values(s), n, first_real, sorted(stats))
        ctx.emit(key, got)
        return ctx.result_struct(key, got, MOMENT_STATS, s.name)

    col = ctx.shared(
        key, lambda: src.map_batches(run, return_dtype=pl.Struct({name: pl.Float64 for name in MOMENT_STATS}))
    )
    return ctx.raw_field(key, stat, col.struct.field(stat))


class _MomentOp(Rolling):
    """A statistic of the one-pass window kernel: its column is already null on pads and NaN where empty."""

    stat: ClassVar[str]

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        return moment(ctx, ins[0], int(params[0]), self.stat)


class Mean(_MomentOp):
    name = "Mean"
    stat = "mean"


class Sum(_MomentOp):
    name = "Sum"
    stat = "sum"


class Std(_MomentOp):
    name = "Std"
    stat = "std"


class Var(_MomentOp):
    name = "Var"
    stat = "var"


class Max(_MomentOp):
    name = "Max"
    stat = "max"


class Min(_MomentOp):
    name = "Min"
    stat = "min"


class Quantile(Rolling):
    """Linear-interpolated quantile of the window's non-NaN values (pandas ``rolling.quantile``)."""

    name = "Quantile"
    params = ("window", "number")

    def check(self, params: tuple[int | float, ...]) -> str | None:
        if not 0 <= params[1] <= 1:
            return f"Quantile's quantile must lie in [0, 1], got {params[1]}"
        return super().check(params)

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        return sorted_window_stat(ctx, ins[0], int(params[0]), float(params[1]))


QUANTILE_SLOTS = 8
"""Quantiles one sorted-window pass computes at most (more of the same input and window take another pass)."""

SORTED_FIELDS = ("rank",) + tuple(f"q{i}" for i in range(QUANTILE_SLOTS))


def sorted_window_stat(ctx: Ctx, v: Value, n: int, stat: float | str) -> pl.Expr:
    """A quantile (``stat`` a float) or the percentile rank (``"rank"``) of ``v`` over window ``n``.

    Every quantile and the rank asked of the same input and window come from one sorted-window pass (QTLU, QTLD
    and RANK share it: 186 against 246 ms single-threaded for Alpha158's five windows) into one struct column, one
    task for Polars' thread pool; the set asked for is read when the kernel runs, after the whole request is planned.
    A rank asked alone keeps the direct-comparison kernel, faster without a sorted buffer to maintain. The
    columns are already null on pads and NaN where the window is empty.
    """
    state = ctx.kernel_cache.setdefault(("sorted", v.key, n), {"qs": [], "rank": False})
    qs: list[float] = state["qs"]
    if stat == "rank":
        state["rank"] = True
        part, field = 0, "rank"
    else:
        if stat not in qs:
            qs.append(float(stat))
        part, slot = divmod(qs.index(float(stat)), QUANTILE_SLOTS)
        field = f"q{slot}"
    f32, first_real = v.dtype == F32, ctx.first_real
    raw = v.dtype in (F32, F64)  # the kernels skip NaN and ±inf and never read pad rows: no prepared column

    def run(s: pl.Series) -> pl.Series:
        x = ctx.real_values(s) if raw else filled(s)
        x = x.astype(np.float32) if f32 and x.dtype != np.float32 else x
        mine = qs[part * QUANTILE_SLOTS : (part + 1) * QUANTILE_SLOTS]
        rank = state["rank"] and part == 0
        if mine:
            got = kernels.rolling_ranks_and_quantiles(x, n, mine, rank, first_real)
        else:
            got = {"rank": kernels.rolling_rank_pct(x, n, first_real)}
        arrays = {("rank" if k == "rank" else f"q{mine.index(k)}"): a for k, a in got.items()}
        ctx.emit(key, arrays)
        return ctx.result_struct(key, arrays, SORTED_FIELDS, s.name)

    key = ("sorted", v.key, n, part)
    src = v.expr if raw else prep(ctx, v)
    col = ctx.shared(key, lambda: src.map_batches(run, return_dtype=pl.Struct({f: pl.Float64 for f in SORTED_FIELDS})))
    return ctx.raw_field(key, field, col.struct.field(field))


class Med(Rolling):
    name = "Med"
    kernel_column = True

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        return sorted_window_stat(ctx, ins[0], n, 0.5)


class Count(Rolling):
    """Non-NaN values in the window (pandas counts inf)."""

    name = "Count"

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        x = ins[0].expr
        present = x.is_not_null() if ins[0].dtype == BOOL else (x.is_not_null() & ~x.is_nan())
        return ctx.roll_sum(present.cast(pl.Float64), n)


class Rank(Rolling):
    """Percentile of the current value in its window: average rank / count (pandas ``rank(pct=True)``)."""

    name = "Rank"
    kernel_column = True

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        return sorted_window_stat(ctx, ins[0], n, "rank")


class _Moment(Rolling):
    """Bias-corrected skewness / excess kurtosis as pandas 3 computes them (NaN under 3 / 4 values, when every value
    in the window is equal, and when the variance is <= 1e-14)."""

    kind: ClassVar[str]
    kernel_column = True

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        first_real, kind = ctx.first_real, self.kind
        return prep(ctx, ins[0]).map_batches(
            lambda s: ctx.kernel_series(kernels.rolling_central_moments(filled(s), n, first_real, kind)),
            return_dtype=pl.Float64,
        )


class Skew(_Moment):
    name = "Skew"
    min_window = 3
    kind = "skew"

    def check(self, params: tuple[int | float, ...]) -> str | None:
        if params[0] != 0 and params[0] < 3:  # Qlib's limit and words
            return "The rolling window size of Skewness operation should >= 3"
        return super().check(params)


class Kurt(_Moment):
    name = "Kurt"
    min_window = 4
    kind = "kurt"

    def check(self, params: tuple[int | float, ...]) -> str | None:
        if params[0] != 0 and params[0] < 4:  # Qlib accepts 4 and refuses below, with these words (it says 5)
            return "The rolling window size of Kurtosis operation should >= 5"
        return super().check(params)


class WMA(Rolling):
    """Qlib's WMA: weights 1..L over the window's L rows (L shorter at the start), NaN-skipping mean of w*x, with
    numpy's arithmetic (``kernels.rolling_wma``)."""

    name = "WMA"
    kernel_column = True

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        first_real = ctx.first_real
        return prep(ctx, ins[0]).map_batches(
            lambda s: ctx.kernel_series(kernels.rolling_wma(filled(s), n, first_real)),
            return_dtype=pl.Float64,
        )


class EMA(Rolling):
    """pandas ``ewm(span=N)`` (or ``alpha=N`` for 0<N<1), adjust=True, NaN carried; ``N=0`` is Qlib's expanding form."""

    name = "EMA"
    params = ("ewindow",)

    def check(self, params: tuple[int | float, ...]) -> str | None:
        n = params[0]
        if n < 0 or (isinstance(n, float) and not (0 < n < 1) and not n.is_integer()):
            return f"EMA takes a span (integer >= 1), 0, or a smoothing factor in (0, 1); got {n}"
        return None

    def lookback(self, params: tuple[int | float, ...]) -> int:
        return 0

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        n = params[0]
        xp = prep(ctx, ins[0])
        if n == 0:
            first_real = ctx.first_real
            out = xp.map_batches(
                lambda s: pl.Series(kernels.expanding_ema(filled(s), first_real)),
                return_dtype=pl.Float64,
            )
            return ctx.finish(out)
        kw = {"alpha": float(n)} if 0 < n < 1 else {"span": float(n)}
        first_real = ctx.first_real
        return xp.map_batches(lambda s: ctx.kernel_series(kernels.ewm_mean(filled(s), first_real, **kw)),
                              return_dtype=pl.Float64)


class Mad(Rolling):
    name = "Mad"
    kernel_column = True

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        first_real = ctx.first_real
        return prep(ctx, ins[0]).map_batches(
            lambda s: ctx.kernel_series(kernels.rolling_mad(filled(s), n, first_real)),
            return_dtype=pl.Float64,
        )


class IdxMax(Rolling):
    """1-based position of the window's first maximum; a NaN in the window wins (``np.argmax``), inf counts as NaN."""

    name = "IdxMax"
    sign: ClassVar[float] = 1.0
    kernel_column = True

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        first_real, sign = ctx.first_real, self.sign
        key = ("argmax", ins[0].key, n, sign)

        def run(s: pl.Series) -> pl.Series:
            got = kernels.rolling_first_argmax(filled(s), sign, n, first_real)
            ctx.emit(key, {"value": got})
            return ctx.kernel_series(got)  # its own column: planned only when something reads it (``_needed``)

        return ctx.raw_field(key, "value", kernel_input(ins[0]).map_batches(run, return_dtype=pl.Float64))


class IdxMin(IdxMax):
    name = "IdxMin"
    sign = -1.0


class _Regression(Rolling):
    """Qlib's Cython rolling regression on x = 1..N (expanding: 1..size): slope, residual and r^2 from one kernel
    pass that repeats Qlib's running sums (``pair_windows.regression_window``)."""

    kernel_column = True


def _fixed(ctx: Ctx, ins: list[Value], n: int, what: str) -> pl.Expr:
    """A regression result (``slope``, ``resi`` or ``r2``) the kernel computed in the same call as the others."""
    got = wsums(ctx, "reg", ins[0].key, n, kernel_input(ins[0]))
    return ctx.raw_field(("wsums", "reg", ins[0].key, n), what, got[what])


class Slope(_Regression):
    name = "Slope"

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        return _fixed(ctx, ins, n, "slope")


class Resi(_Regression):
    name = "Resi"

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        return _fixed(ctx, ins, n, "resi")


class Rsquare(_Regression):
    name = "Rsquare"

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        r2 = _fixed(ctx, ins, n, "r2")
        if n > 0:  # the kernel NaNs Qlib's flat windows (std <= 2e-5); Qlib's expanding Rsquare has no mask
            ctx.kernel_cache[("wsums", "reg", ins[0].key, n)]["masked"] = True
        return r2


# pair rolling -----------------------------------------------------------------------------------------------------------


class _PairRolling(Rolling):
    """Cov / Corr: pandas' rolling covariance and correlation from one kernel pass per pair and window."""

    n_args = 2
    kernel_column = True  # NaN on real rows without a result, null on pads

    def pair(self, ctx: Ctx, ins: list[Value], n: int, what: str) -> pl.Expr:
        if ins[0].expr is None or ins[1].expr is None:
            raise CompileError(f"{self.name} needs two expressions, not a number")
        key = ("wsums", "pair", (ins[0].key, ins[1].key), n)
        got = wsums(ctx, "pair", key[2], n, kernel_input(ins[0]), kernel_input(ins[1]))
        return ctx.raw_field(key, what, got[what])


class Cov(_PairRolling):
    name = "Cov"

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        got = self.pair(ctx, ins, n, "cov")
        ctx.kernel_cache[("wsums", "pair", (ins[0].key, ins[1].key), n)]["cov"] = True
        return got


class Corr(_PairRolling):
    name = "Corr"

    def check(self, params: tuple[int | float, ...]) -> str | None:
        if params[0] == 0:
            return "Corr needs a window >= 1 (Qlib's Corr(x, y, 0) fails in pandas)"
        return super().check(params)

    def rolling(self, ctx: Ctx, ins: list[Value], n: int) -> pl.Expr:
        got = self.pair(ctx, ins, n, "corr")
        ctx.kernel_cache[("wsums", "pair", (ins[0].key, ins[1].key), n)]["masked"] = True  # Qlib's flat windows
        return got
