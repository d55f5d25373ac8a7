"""The compile context of the operators: value types (dtype, constant), the per-compile `Ctx` that plans helper
columns and kernel results, and the small dtype rules every operator shares. The operators themselves are in
`ops.py`, `elementwise.py` and `window_ops.py`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from rdbridge.engine import buffers, kernels
from rdbridge.engine.columns import filled, series_over, values_view
from rdbridge.engine.epilogue import Blocks, Epilogue, Operand, finish

BOOL, F32, F64, CONST = "bool", "f32", "f64", "const"
PL_DTYPE = {BOOL: pl.Boolean, F32: pl.Float32, F64: pl.Float64}
NAN = float("nan")


@dataclass(frozen=True)
class Value:
    """A compiled operand: a Polars expression (or a Python number for constants) and its numpy-like dtype."""

    expr: pl.Expr | None
    dtype: str
    const: int | float | None = None
    key: object = None  # the AST node it computes: names shared helper columns


class CompileError(ValueError):
    """An expression that parses but cannot be evaluated (wrong operand kinds, unsupported window...)."""


@dataclass
class Helper:
    """A shared helper column: computed at ``first_layer`` (in sub-step ``level``), dropped after ``last_layer``."""

    name: str
    expr: pl.Expr
    level: int
    first_layer: int
    last_layer: int


class Ctx:
    """What operators need to know about the layout: pad mask, local row index, group key, expanding window length."""

    def __init__(self, max_block: int, first_real: np.ndarray, pad_rows: int,
                 pad_validity: tuple[object, int] | None = None) -> None:
        self.pad = pl.col("_pad")
        self.k = pl.col("_k")
        self.group = "_g"
        self.max_block = max_block
        self.first_real = first_real
        self.pad_rows = pad_rows
        self.layer = 1
        self.terminal = False  # compiling an output no other expression reads
        self.helpers: dict[object, Helper] = {}
        self.kernel_cache: dict[object, dict] = {}
        self._pad_validity = pad_validity  # the layout's, when the runner has it; else built on first use
        self._lock = threading.Lock()
        # outputs the kernels write themselves (epilogue.py): set up by the runner, planned by the compiler
        self.blocks: Blocks | None = None
        self.field_values: dict[str, np.ndarray] = {}  # padded float32 values of each panel field
        self.epilogues: dict[object, list[Epilogue]] = {}  # kernel key -> outputs reading its results
        self.fused: dict[str, np.ndarray] = {}  # output column -> its float32 real rows, once written
        self._operands: dict[str, dict[Operand, np.ndarray]] = {}  # output column -> operands emitted so far
        self.kernel_field: tuple[object, str, pl.Expr] | None = None  # what the last compile returned, if raw
        self.reads: list[tuple[object, str]] = []  # kernel result fields the node being compiled reads
        self.column_fields: set[tuple[object, str]] | None = None  # fields some planned column reads (None: all)
        self._unread: pl.Series | None = None

    def raw_field(self, key: object, field: str, expr: pl.Expr) -> pl.Expr:
        """Note that ``expr`` (returned by an operator as is) is field ``field`` of kernel ``key``'s result, so the
        compiler can fuse an output reading it into that kernel (``emit``)."""
        self.kernel_field = (key, field, expr)
        self.reads.append((key, field))
        return expr

    def result_series(self, key: object, field: str, values: np.ndarray) -> pl.Series | None:
        """Field ``field`` of kernel ``key``'s result as a column (``kernel_series``), or None when no planned
        column reads it (only fused outputs do, and they got it from ``emit``): the kernel's array is then not held
        by the work frame, and its buffer goes back to the pool for the next kernel as soon as the kernel returns
        (fewer fresh pages, lower peak memory)."""
        if self.column_fields is not None and (key, field) not in self.column_fields:
            return None
        return self.kernel_series(values)

    def result_struct(self, key: object, arrays: Mapping[str, np.ndarray], fields: tuple[str, ...], name: str,
                      kept: tuple[str, ...] = ()) -> pl.Series:
        """Kernel ``key``'s results as its helper's struct column with ``fields``: each array some planned column
        reads (``result_series``; those in ``kept`` always), and for every other field a buffer that is never
        read (another field's, or one float64 column per group when no field is read at all)."""
        cols = {f: c for f, a in arrays.items()
                if (c := self.kernel_series(a) if f in kept else self.result_series(key, f, a)) is not None}
        filler = next(iter(cols.values()), None)
        if filler is None:
            with self._lock:
                if self._unread is None:
                    self._unread = series_over(buffers.empty(self.first_real.size, dtype=np.float64))
                filler = self._unread
        return pl.DataFrame([cols.get(f, filler).alias(f) for f in fields]).to_struct(name)

    def emit(self, key: object, arrays: Mapping[str, np.ndarray]) -> None:
        """Called by kernel ``key`` with its padded float64 results: write each fused output reading them whose other
        kernels have emitted too (they may run on other threads; the last one to emit writes it)."""
        eps = self.epilogues.get(key)
        if not eps:
            return
        assert self.blocks is not None, "fused outputs need the runner's layout"
        for ep in eps:
            with self._lock:
                got = self._operands.setdefault(ep.out, {})
                for o in ep.operands():
                    if o.key == key:
                        got[o] = arrays[o.name]
                    elif o.key is None:
                        got[o] = self.field_values[o.name]
                ready = all(o in got for o in ep.operands())
                if ready:
                    del self._operands[ep.out]
            if ready:
                self.fused[ep.out] = finish(ep, got, self.blocks)

    def _pads(self) -> tuple[object, int]:
        """The pad rows' validity bitmap (an Arrow buffer, built once per layout) and how many pad rows there are."""
        import pyarrow as pa

        with self._lock:
            if self._pad_validity is None:
                real = np.arange(self.first_real.size) >= self.first_real
                bits = pa.py_buffer(np.packbits(real, bitorder="little"))
                self._pad_validity = (bits, int(real.size - np.count_nonzero(real)))
            return self._pad_validity

    def kernel_series(self, values: np.ndarray) -> pl.Series:
        """A kernel's float64 column as a Series that is null on pad rows, without another pass: the shared pad
        bitmap and the kernel's array become one Arrow array (zero-copy), so kernel outputs need no masking."""
        bits, n_pads = self._pads()
        return series_over(np.ascontiguousarray(values, dtype=np.float64), bits, n_pads)

    def real_values(self, s: pl.Series) -> np.ndarray:
        """A float column for a kernel that never reads pad rows: a zero-copy view of its values buffer when the
        only nulls are the pads (their slots hold arbitrary numbers the kernel skips), else a copy, nulls as NaN."""
        _, n_pads = self._pads()
        if s.dtype not in (pl.Float32, pl.Float64) or s.n_chunks() != 1 or s.null_count() != n_pads:
            return filled(s)
        return values_view(s)

    def shared(self, key: object, build: Callable[[], pl.Expr]) -> pl.Expr:
        """A helper column computed once per request (before the layer that first needs it): window sums, prepared
        inputs... shared by every operator asking for the same ``key``."""
        h = self.helpers.get(key)
        if h is None:
            expr = build()
            refs = set(expr.meta.root_names())
            level = 1 + max((x.level for x in self.helpers.values() if x.name in refs), default=0)
            h = Helper(f"_h{len(self.helpers)}", expr, level, self.layer, self.layer)
            self.helpers[key] = h
        h.last_layer = max(h.last_layer, self.layer)
        if self.layer < h.first_layer:
            self._lower(h, self.layer)
        return pl.col(h.name)

    def _lower(self, h: Helper, layer: int) -> None:
        """A helper first built for a later layer is now needed earlier: compute it (and what it reads) earlier."""
        h.first_layer = layer
        refs = set(h.expr.meta.root_names())
        for dep in self.helpers.values():
            if dep.name in refs and dep.first_layer > layer:
                self._lower(dep, layer)

    def finish(self, expr: pl.Expr) -> pl.Expr:
        """Null on pad rows, NaN (Qlib's missing value) on real rows without a result. An output nothing else reads
        (``terminal``) skips the pad mask: its pad rows are dropped, never read."""
        if self.terminal:
            return expr.fill_null(NAN)
        return pl.when(self.pad).then(None).otherwise(expr.fill_null(NAN))

    def roll_sum(self, expr: pl.Expr, n: int) -> pl.Expr:
        """Window sum of a null-free column (pads hold 0)."""
        if n == 0:
            return expr.cum_sum().over(self.group)
        return expr.map_batches(
            lambda s: pl.Series(kernels.rolling_sum(filled(s, 0.0), n)), return_dtype=pl.Float64
        )


# --- helpers ----------------------------------------------------------------------------------------------------------


def num(v: Value, dtype: str) -> pl.Expr:
    """The operand as an expression of ``dtype`` (a constant is cast first, like numpy does with Python scalars)."""
    if v.expr is None:
        return pl.lit(v.const, dtype=PL_DTYPE[dtype])
    if v.dtype == dtype:
        return v.expr
    return v.expr.cast(PL_DTYPE[dtype])


def promote(a: Value, b: Value) -> str:
    """numpy 2 result dtype of a binary arithmetic op (NEP 50: Python numbers do not widen arrays)."""
    da, db = a.dtype, b.dtype
    if da == CONST and db == CONST:
        return F64
    if da == CONST:
        da, db = db, da
    if db == CONST:
        return F64 if da == BOOL else da
    if da == db:
        return da
    if F64 in (da, db):
        return F64
    return F32  # f32 with bool


def rolling_input(v: Value) -> pl.Expr:
    """What pandas' rolling sees: float64, with NaN and ±inf turned into missing (here: null)."""
    if v.expr is None:
        raise CompileError("a rolling operator needs an expression, not a number, as its input")
    x = v.expr.cast(pl.Float64)
    return pl.when(x.is_finite()).then(x)


def nan_of(v: Value) -> pl.Expr | None:
    """Where the operand is NaN (None when it never is)."""
    if v.expr is None or v.dtype == BOOL:
        return None
    return v.expr.is_nan()


def truthy(v: Value) -> pl.Expr:
    """numpy truthiness: non-zero, NaN included."""
    if v.expr is None:
        return pl.lit(bool(v.const))
    if v.dtype == BOOL:
        return v.expr
    return v.expr.is_nan() | (v.expr != 0)


# --- operator classes -------------------------------------------------------------------------------------------------
