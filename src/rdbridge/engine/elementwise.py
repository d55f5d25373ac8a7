"""Element-wise operators and the operator interface: arithmetic, comparisons, logic, If / Abs / Sign / Log, and
the shifts Ref / Delta. Each is one small class saying its signature, result dtype and Polars form; the registry
and the semantics contract they follow are in ``ops.py``, the window operators in ``window_ops.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import polars as pl

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
    truthy,
)


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
