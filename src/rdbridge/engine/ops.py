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
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import polars as pl

from rdbridge.engine import kernels
from rdbridge.engine.columns import filled
from rdbridge.engine.context import (
    BOOL,
    CONST,
    F32,
    F64,
    NAN,
    PL_DTYPE,
    CompileError,
    Ctx,
    Value,
    nan_of,
    num,
    promote,
    rolling_input,
    truthy,
)
from rdbridge.engine.epilogue import finish
from rdbridge.engine.pair_windows import pair_window, regression_window
from rdbridge.engine.window_stats import window_moments


class Op:
    """An operator: ``n_args`` expression inputs then ``params`` literal parameters."""

    name: ClassVar[str]
    n_args: ClassVar[int] = 1
    params: ClassVar[tuple[str, ...]] = ()  # "window" (int >= 0), "number" (float), "ewindow" (int or 0<float<1)
    accepts_const: ClassVar[bool] = False  # may an expression input be a plain number?
    masks_pads: ClassVar[bool] = False  # output may be non-null on pad rows unless masked

    def check(self, params: tuple[int | float, ...]) -> str | None:
        """A message when the literal parameters are invalid for this operator."""
        return None

    def lookback(self, params: tuple[int | float, ...]) -> int:
        """Rows of history (pad rows) a window over the padded column needs."""
        return 0

    def dtype(self, ins: list[Value]) -> str:
        return F64

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        raise NotImplementedError


# element-wise arithmetic ----------------------------------------------------------------------------------------------


class _Arith(Op):
    n_args = 2
    accepts_const = True
    fn: ClassVar[Callable[[pl.Expr, pl.Expr], pl.Expr]]

    def dtype(self, ins: list[Value]) -> str:
        return promote(ins[0], ins[1])

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        t = self.dtype(ins)
        if t == BOOL:
            return self.bool_fn(num(ins[0], BOOL), num(ins[1], BOOL))
        return type(self).fn(num(ins[0], t), num(ins[1], t))

    def bool_fn(self, a: pl.Expr, b: pl.Expr) -> pl.Expr:
        return type(self).fn(a.cast(pl.Float64), b.cast(pl.Float64))


class Add(_Arith):
    name = "Add"
    fn = staticmethod(lambda a, b: a + b)

    def bool_fn(self, a: pl.Expr, b: pl.Expr) -> pl.Expr:
        return a | b  # numpy adds booleans with logical or


class Sub(_Arith):
    name = "Sub"
    fn = staticmethod(lambda a, b: a - b)

    def dtype(self, ins: list[Value]) -> str:
        t = promote(ins[0], ins[1])
        if t == BOOL:
            raise CompileError("Sub of two booleans is undefined (numpy refuses it); cast with If(...) first")
        return t


class Mul(_Arith):
    name = "Mul"
    fn = staticmethod(lambda a, b: a * b)

    def bool_fn(self, a: pl.Expr, b: pl.Expr) -> pl.Expr:
        return a & b


class Div(_Arith):
    name = "Div"
    fn = staticmethod(lambda a, b: a / b)

    def dtype(self, ins: list[Value]) -> str:
        t = promote(ins[0], ins[1])
        return F64 if t == BOOL else t

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        t = self.dtype(ins)
        if ins[1].expr is not None or ins[0].expr is None:
            return super().compile(ctx, ins, params)
        # Polars divides by a number as a product with its reciprocal, an ulp off numpy's division in 1 value of 5
        # (float32: enough to move Rsquare of a short window by 1e-4); numpy divides, as Qlib does
        return _numpy_by_const(num(ins[0], t), ins[1].const, t, lambda a, c, np_t: np.divide(a, np_t(c)))


def _numpy_by_const(x: pl.Expr, c: int | float, t: str, ufunc: Callable[[np.ndarray, int | float, type], np.ndarray]
                    ) -> pl.Expr:
    """`ufunc(x, c)` computed by numpy in the column's dtype (Qlib's arithmetic), nulls kept; warnings silenced."""
    np_t = np.float32 if t == F32 else np.float64

    def run(s: pl.Series) -> pl.Series:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return pl.Series(s.name, ufunc(filled(s).astype(np_t, copy=False), c, np_t), dtype=s.dtype)

    return pl.when(x.is_null()).then(None).otherwise(x.map_batches(run, return_dtype=PL_DTYPE[t]))


class Power(_Arith):
    name = "Power"
    fn = staticmethod(lambda a, b: a.pow(b))

    def dtype(self, ins: list[Value]) -> str:
        t = promote(ins[0], ins[1])
        return F64 if t == BOOL else t

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        t = self.dtype(ins)
        if ins[1].expr is not None or ins[0].expr is None:
            return super().compile(ctx, ins, params)
        # Polars raises to a small integer power by repeated products (float32 x**3: an ulp off numpy's powf in a
        # third of the values; then Var/Kurt of a near-flat window of them are 1e-5 off); numpy raises, as Qlib
        return _numpy_by_const(num(ins[0], t), ins[1].const, t, lambda a, c, _np_t: np.power(a, c))


class _Extreme(_Arith):
    """np.maximum / np.minimum: NaN wins."""

    pick_left: ClassVar[Callable[[pl.Expr, pl.Expr], pl.Expr]]
    pick_right: ClassVar[Callable[[pl.Expr, pl.Expr], pl.Expr]]

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        t = self.dtype(ins)
        a, b = num(ins[0], t), num(ins[1], t)
        if t == BOOL:
            return (a | b) if isinstance(self, Greater) else (a & b)
        if any(object_valued(v.key) for v in ins):
            # numpy's object loop (Qlib's Ref of a condition is a pandas object column): ``a if a >= b else b``
            # (``<=`` for Less), so a NaN on either side gives b, where the float loop lets NaN win
            a, b = a.fill_null(NAN), b.fill_null(NAN)  # a shift's missing rows: NaN, as in pandas
            ordered = (a >= b) if isinstance(self, Greater) else (a <= b)
            keep_a = ordered & ~a.is_nan() & ~b.is_nan()  # Polars orders NaN above all; Python's compare is False
            return pl.when(ctx.pad).then(None).when(keep_a).then(a).otherwise(b)
        chain = None
        na, nb = nan_of(ins[0]), nan_of(ins[1])
        for cond, val in ((na, a), (nb, b)):
            if cond is not None:
                chain = pl.when(cond).then(val) if chain is None else chain.when(cond).then(val)
        for cond, val in ((type(self).pick_left(a, b), a), (type(self).pick_right(a, b), b)):
            chain = pl.when(cond).then(val) if chain is None else chain.when(cond).then(val)
        return chain  # no otherwise: null (a pad row) stays null


class Greater(_Extreme):
    name = "Greater"
    pick_left = staticmethod(lambda a, b: a >= b)
    pick_right = staticmethod(lambda a, b: a < b)


class Less(_Extreme):
    name = "Less"
    pick_left = staticmethod(lambda a, b: a <= b)
    pick_right = staticmethod(lambda a, b: a > b)


# comparisons and logic ------------------------------------------------------------------------------------------------


class _Compare(Op):
    n_args = 2
    accepts_const = True
    fn: ClassVar[Callable[[pl.Expr, pl.Expr], pl.Expr]]
    nan_result: ClassVar[bool] = False

    def dtype(self, ins: list[Value]) -> str:
        return BOOL

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        t = promote(ins[0], ins[1])
        if t == BOOL and any(v.dtype != BOOL for v in ins):
            t = F64
        cmp = type(self).fn(num(ins[0], t), num(ins[1], t))
        nans = [c for c in (nan_of(ins[0]), nan_of(ins[1])) if c is not None]
        if not nans:
            return cmp
        any_nan = nans[0] if len(nans) == 1 else nans[0] | nans[1]
        return pl.when(any_nan).then(pl.lit(self.nan_result)).otherwise(cmp)


class Gt(_Compare):
    name = "Gt"
    fn = staticmethod(lambda a, b: a > b)


class Ge(_Compare):
    name = "Ge"
    fn = staticmethod(lambda a, b: a >= b)


class Lt(_Compare):
    name = "Lt"
    fn = staticmethod(lambda a, b: a < b)


class Le(_Compare):
    name = "Le"
    fn = staticmethod(lambda a, b: a <= b)


class Eq(_Compare):
    name = "Eq"
    fn = staticmethod(lambda a, b: a == b)


class Ne(_Compare):
    name = "Ne"
    fn = staticmethod(lambda a, b: a != b)
    nan_result = True


LOGIC_OPS = frozenset({"Gt", "Ge", "Lt", "Le", "Eq", "Ne", "And", "Or", "Not"})


def shifted_condition(node: object) -> bool:
    """``Ref(condition, N)``: in Qlib a pandas object column of True/False/NaN, which ``&`` and ``|`` take as a
    condition (NaN as False), where they refuse a float column."""
    from rdbridge.engine.ast import Call

    while isinstance(node, Call) and node.op == "Ref":
        node = node.args[0]
    return isinstance(node, Call) and node.op in LOGIC_OPS


def object_valued(node: object) -> bool:
    """Whether Qlib computes ``node`` as a pandas object column: a shifted condition, and what ``Abs``, ``Ref`` and
    arithmetic make of one (object arrays stay object in numpy). Only ``Greater``/``Less`` differ on them here."""
    from rdbridge.engine.ast import Call

    if not isinstance(node, Call):
        return False
    if node.op == "Ref":
        if node.params and node.params[0] == 0:  # Qlib: a Series of the first value, a scalar: never object
            return False
        return shifted_condition(node) or object_valued(node.args[0])
    if node.op in ("Abs", "Add", "Sub", "Mul", "Div", "Power", "Greater", "Less"):
        return any(object_valued(a) for a in node.args)
    if node.op == "Delta":  # a condition (or object column) minus its shifted copy: an object column
        arg = node.args[0]
        return bool(node.params and node.params[0] != 0) and (
            (isinstance(arg, Call) and arg.op in LOGIC_OPS) or object_valued(arg))
    if node.op == "If":  # np.where with an object branch is an object array
        return any(object_valued(a) for a in node.args[1:])
    return False


def _as_bool(v: Value, op: str) -> pl.Expr:
    if v.expr is None:
        return pl.lit(bool(v.const))
    if v.dtype == BOOL:
        return v.expr
    if shifted_condition(v.key):
        return v.expr.fill_nan(0.0) != 0  # pad rows stay null
    raise CompileError(f"{op} takes conditions (comparisons), got a number-valued expression (Qlib refuses "
                       "`&` / `|` of float columns too)")


class And(Op):
    name = "And"
    n_args = 2
    accepts_const = True
    masks_pads = True
    bitwise: ClassVar[Callable[[pl.Expr, pl.Expr], pl.Expr]] = staticmethod(lambda a, b: a & b)

    def dtype(self, ins: list[Value]) -> str:
        return F64 if self._int_const(ins) is not None else BOOL

    @staticmethod
    def _int_const(ins: list[Value]) -> int | None:
        """numpy's ``condition & 2`` is bitwise on 0/1 (an integer column, 0 here): an integer operand."""
        for a, b in ((ins[0], ins[1]), (ins[1], ins[0])):
            if a.expr is None and isinstance(a.const, int) and not isinstance(a.const, bool) and b.expr is not None:
                return a.const
        return None

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        c = self._int_const(ins)
        if c is not None:
            other = ins[1] if ins[0].expr is None else ins[0]
            bits = _as_bool(other, self.name).cast(pl.Int64)
            return type(self).bitwise(bits, pl.lit(c, dtype=pl.Int64)).cast(pl.Float64)
        return type(self).bitwise(_as_bool(ins[0], self.name), _as_bool(ins[1], self.name))


class Or(And):
    name = "Or"
    bitwise = staticmethod(lambda a, b: a | b)


class Not(Op):
    name = "Not"

    def dtype(self, ins: list[Value]) -> str:
        return BOOL

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        if ins[0].expr is not None and ins[0].dtype != BOOL:
            raise CompileError("Not takes a condition (Qlib's ~ refuses numbers)")
        return ~_as_bool(ins[0], "Not")


class If(Op):
    name = "If"
    n_args = 3
    accepts_const = True
    masks_pads = True

    def dtype(self, ins: list[Value]) -> str:
        return promote(ins[1], ins[2]) if not (ins[1].dtype == CONST and ins[2].dtype == CONST) else F64

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        t = self.dtype(ins)
        return pl.when(truthy(ins[0])).then(num(ins[1], t)).otherwise(num(ins[2], t))


# element-wise functions -----------------------------------------------------------------------------------------------


class Abs(Op):
    name = "Abs"

    def dtype(self, ins: list[Value]) -> str:
        return ins[0].dtype

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        return ins[0].expr if ins[0].dtype == BOOL else ins[0].expr.abs()


class Sign(Op):
    name = "Sign"

    def dtype(self, ins: list[Value]) -> str:
        return F32  # Qlib casts to float32 first

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        return ins[0].expr.cast(pl.Float32).sign()


def _np_log32(s: pl.Series) -> pl.Series:
    with np.errstate(divide="ignore", invalid="ignore"):
        return pl.Series(s.name, np.log(filled(s).astype(np.float32, copy=False)), dtype=pl.Float32)


class Log(Op):
    name = "Log"

    def dtype(self, ins: list[Value]) -> str:
        return F64 if ins[0].dtype == BOOL else ins[0].dtype

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        t = self.dtype(ins)
        x = num(ins[0], t)
        if t != F32:
            return x.log()
        # numpy's float32 log (what Qlib runs on float32 features) can differ from a correctly rounded one by an ulp;
        # call it on the whole column so the results agree bit for bit. Nulls (padding) stay null.
        logged = x.map_batches(_np_log32, return_dtype=pl.Float32)
        return pl.when(x.is_null()).then(None).otherwise(logged)


# shifts -----------------------------------------------------------------------------------------------------------------


def _first_value(ctx: Ctx, x: pl.Expr) -> pl.Expr:
    return x.drop_nulls().first().over(ctx.group)


class Ref(Op):
    """``Ref(x, N)``: N rows back (N < 0: ahead); N = 0: the first value of the history."""

    name = "Ref"
    params = ("shift",)
    masks_pads = True

    def lookback(self, params: tuple[int | float, ...]) -> int:
        return abs(int(params[0]))

    def dtype(self, ins: list[Value]) -> str:
        return F64 if ins[0].dtype == BOOL else ins[0].dtype

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        x = num(ins[0], self.dtype(ins))
        n = int(params[0])
        return ctx.finish(_first_value(ctx, x) if n == 0 else x.shift(n))


class Delta(Ref):
    """``Delta(x, N) = x - Ref(x, N)`` (N = 0: minus the first value)."""

    name = "Delta"
    params = ("window",)

    def dtype(self, ins: list[Value]) -> str:
        return F64 if ins[0].dtype == BOOL else ins[0].dtype  # a condition minus its shifted copy: 0/1 numbers

    def check_bool(self, ins: list[Value], n: int) -> None:
        if ins[0].dtype == BOOL and n == 0:
            raise CompileError("Delta(condition, 0) is undefined: it subtracts two boolean columns, which numpy "
                               "refuses (Qlib raises too); use Delta(If(condition, 1, 0), 0)")

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        n = int(params[0])
        self.check_bool(ins, n)
        x = num(ins[0], self.dtype(ins))
        return ctx.finish(x - (_first_value(ctx, x) if n == 0 else x.shift(n)))


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
