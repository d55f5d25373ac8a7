"""``compute``: Qlib expressions and Python factors over a long panel, in one pass.

The panel (``instrument``, ``datetime``, Float32 fields; sorted; dense per instrument) is laid out as one long
column per field in which every instrument's block is preceded by ``P`` null pad rows, P being the longest window
or shift of the request. Rolling windows then run over whole columns (fast, parallel Polars kernels) and still
never mix instruments; Qlib's partial windows at the start of a history fall out naturally. Requests are evaluated
in groups of expressions (``chunks``); each finished output leaves the work frame at once as float32 without its
pad rows, so peak memory is the output plus one group's live intermediates, and the output rows are the panel's
rows, in the panel's order.
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime

import numba
import numpy as np
import polars as pl

from rdbridge.engine import buffers
from rdbridge.engine.ast import Node, fields_of
from rdbridge.engine.columns import series_over, values_view
from rdbridge.engine.compiler import Plan, canonical, lookback, plan
from rdbridge.engine.cross_section import CS_PREFIX, CSValue, has_cross_section
from rdbridge.engine.epilogue import Blocks
from rdbridge.engine.context import CompileError, Ctx
from rdbridge.engine.parser import ExpressionSyntaxError, parse
from rdbridge.engine.pyfactors import run_pyfactors

ProgressHook = Callable[[str, int, int], None]
"""``(label, done, total)``: what a progress bar needs."""

KEYS = ("instrument", "datetime")


class PanelError(ValueError):
    """The panel does not have the shape the engine's contract asks for."""


class FactorExpressionError(ValueError):
    """One requested expression is invalid; names the factor, keeps the parser's column and caret message."""

    def __init__(self, name: str, expression: str, cause: Exception) -> None:
        self.name = name
        self.expression = expression
        self.column = getattr(cause, "column", None)
        super().__init__(f"factor {name!r}: {cause}")


def required_fields(exprs: Mapping[str, str] | Iterable[str]) -> set[str]:
    """Field names (without ``$``) the expressions read: what a data service must load."""
    texts = exprs.values() if isinstance(exprs, Mapping) else exprs
    out: set[str] = set()
    for text in texts:
        out |= fields_of(parse(text))
    return out


@functools.lru_cache(maxsize=4096)
def _canonical_tree(text: str) -> Node:
    """Parsed and canonicalised once per distinct text: a service asks for the same factor library again and again
    (Alpha158: ~8 ms of parsing per compute), and nodes are immutable, so requests can share them."""
    return canonical(parse(text))


def parse_all(exprs: Mapping[str, str]) -> dict[str, Node]:
    """Parse and canonicalise every expression, naming the factor in any error."""
    roots: dict[str, Node] = {}
    for name, text in exprs.items():
        if isinstance(text, Node):  # already parsed (the staged runner's rewritten requests)
            roots[name] = canonical(text)
            continue
        try:
            roots[name] = _canonical_tree(text) if isinstance(text, str) else canonical(parse(text))  # parse: TypeError
        except ExpressionSyntaxError as exc:
            raise FactorExpressionError(name, text, exc) from exc
    return roots


@dataclass
class Layout:
    """Where each panel row sits in the padded column, and per-row facts operators need.

    Block ``b`` (instrument run ``b`` of the panel) is ``pad_rows`` pad rows then its ``run_lengths[b]`` real rows,
    starting at padded row ``block_starts[b]``; its real rows are panel rows ``run_starts[b]`` onwards."""

    n_rows: int
    n_padded: int
    pad_rows: int
    run_starts: np.ndarray
    run_lengths: np.ndarray
    block_starts: np.ndarray
    first_real: np.ndarray  # per padded row: padded index of its block's first real row
    is_pad: np.ndarray  # per padded row
    k: np.ndarray  # per padded row: its index inside its block (pads included), float64 as Polars reads it
    group: np.ndarray  # per padded row: 1-based block number, uint32
    max_block: int

    @property
    def positions(self) -> np.ndarray:
        """Padded index of each panel row (for tests and diagnostics; the compute works from the blocks)."""
        return np.flatnonzero(~self.is_pad)

    def blocks(self) -> Blocks:
        """The real rows as runs: block b's real rows go to panel rows ``run_starts[b]`` onwards."""
        return Blocks(self.block_starts + self.pad_rows, self.run_starts, self.run_lengths, self.n_rows)

    def validity(self) -> tuple[object, int]:
        """The pads' validity bitmap (an Arrow buffer, LSB first; None without pads) and how many pad rows."""
        import pyarrow as pa

        n_pads = self.n_padded - self.n_rows
        return (pa.py_buffer(np.packbits(~self.is_pad, bitorder="little")) if n_pads else None), n_pads

    def frame(self, panel: pl.DataFrame, fields: Iterable[str], runs: Blocks,
              validity: tuple[object, int]) -> pl.DataFrame:
        """Padded work frame: the fields (null on pads), ``_pad``, ``_k`` (row index inside the block), ``_g``.

        Each field's ``runs`` of panel rows (``self.blocks()``) are copied into a padded float32 array, handed to
        Polars with the pads' ``validity`` bitmap (zero-copy) instead of a masking pass."""
        cols: dict[str, pl.Series] = {
            "_pad": pl.Series("_pad", self.is_pad),
            "_k": pl.Series("_k", self.k),
            "_g": pl.Series("_g", self.group),
        }
        valid, n_pads = validity
        for f in fields:
            # cross-sectional results of an earlier stage stay float64 (cross_section.py); fields are float32
            wide = f.startswith(CS_PREFIX) and panel.schema[f] == pl.Float64
            src = np.ascontiguousarray(panel[f].cast(pl.Float64 if wide else pl.Float32).to_numpy())
            arr = np.empty(self.n_padded, dtype=np.float64 if wide else np.float32)
            _scatter_runs(src, runs.src_start, runs.dst_start, runs.length, arr)
            cols[f] = series_over(arr, valid, n_pads).alias(f)
        return pl.DataFrame(cols)


@numba.njit(cache=True, nogil=True)
def _scatter_runs(src: np.ndarray, at: np.ndarray, start: np.ndarray, length: np.ndarray, out: np.ndarray) -> None:
    """``out`` = NaN (the pads, never read: they are null) with each run of panel rows copied to its padded place:
    block copies instead of a boolean-mask fill and a 675k-index scatter per field."""
    out[:] = np.nan
    for b in range(length.size):
        out[at[b] : at[b] + length[b]] = src[start[b] : start[b] + length[b]]


@numba.njit(cache=True, nogil=True)
def _fill_layout(block_starts: np.ndarray, block_len: np.ndarray, pad_rows: int, first_real: np.ndarray,
                 is_pad: np.ndarray, k: np.ndarray, group: np.ndarray) -> None:
    """The per-row layout columns, block by block through slices (vectorised stores, each array written once:
    the numpy form took a dozen passes and temporaries, 15-50 ms of page faults on this VM)."""
    for b in range(block_len.size):
        s, m = block_starts[b], block_len[b]
        fr, ip, kk, g = first_real[s : s + m], is_pad[s : s + m], k[s : s + m], group[s : s + m]
        for i in range(m):
            fr[i] = s + pad_rows
            ip[i] = i < pad_rows
            kk[i] = float(i)
            g[i] = b + 1


def build_layout(instruments: pl.Series, pad_rows: int) -> Layout:
    """Blocks follow the panel's instrument runs; the panel must keep each instrument's rows together."""
    codes = instruments.to_physical() if instruments.dtype == pl.Categorical else instruments
    n = len(codes)
    change = (codes != codes.shift(1)).fill_null(True).to_numpy() if n else np.zeros(0, dtype=bool)
    run_starts = np.flatnonzero(change).astype(np.int64)
    n_runs = run_starts.size
    if n and codes.gather(run_starts).n_unique() != n_runs:  # one code per run: cheaper than n_unique over all rows
        raise PanelError("the panel's rows of one instrument are not contiguous: sort it by (instrument, datetime)")
    run_lengths = np.diff(np.r_[run_starts, n]).astype(np.int64)
    block_starts = run_starts + pad_rows * np.arange(n_runs, dtype=np.int64)  # padded index of each first pad row
    block_len = run_lengths + pad_rows
    n_padded = int(block_len.sum())
    first_real = np.empty(n_padded, dtype=np.int64)
    is_pad = np.empty(n_padded, dtype=bool)
    k = np.empty(n_padded, dtype=np.float64)
    group = np.empty(n_padded, dtype=np.uint32)
    _fill_layout(block_starts, block_len, int(pad_rows), first_real, is_pad, k, group)
    return Layout(n, n_padded, pad_rows, run_starts, run_lengths, block_starts, first_real, is_pad, k, group,
                  int(block_len.max()) if n_runs else 1)


def _check_panel(panel: pl.DataFrame, fields: set[str]) -> None:
    missing = [c for c in KEYS if c not in panel.columns]
    if missing:
        raise PanelError(f"the panel lacks column(s) {missing}; it needs instrument, datetime and the fields")
    absent = sorted(f for f in fields if f not in panel.columns)
    if absent:
        have = sorted(c for c in panel.columns if c not in KEYS)
        raise PanelError(f"the expressions read ${', $'.join(absent)}, which the panel lacks (it has: {have})")
    bad = [f for f in fields if not panel.schema[f].is_numeric()]
    if bad:
        raise PanelError(f"field column(s) {bad} are not numeric")
    if panel.height > 1:
        keys = panel.select(pl.col("instrument").cast(pl.Utf8), "datetime")
        inst = keys["instrument"]
        same = inst == inst.shift(1)
        back = (keys["datetime"] <= keys["datetime"].shift(1)) & same
        if bool(back.fill_null(False).any()):
            raise PanelError("the panel's dates go backwards or repeat inside an instrument: sort by (instrument, datetime)")


def _time_bound(v: str | date | datetime | None) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day)
    return datetime.fromisoformat(str(v))


def compute(
    panel: pl.DataFrame,
    exprs: Mapping[str, str],
    *,
    start: str | date | datetime | None = None,
    end: str | date | datetime | None = None,
    pyfactors: Mapping[str, Callable[..., object]] | None = None,
    progress: bool | ProgressHook = False,
) -> pl.DataFrame:
    """Evaluate Qlib expressions (and Python factor functions) on ``panel``.

    ``progress``: True prints timed steps on stderr; a callable gets ``("factor groups", done, total)`` after
    each group of expressions (the CLI's progress bar).

    Returns ``instrument``, ``datetime`` and one Float32 column per requested name (Qlib's output dtype), for the
    panel's rows with ``start <= datetime <= end``, in the panel's order. Windows use all history in the panel,
    including rows before ``start``.
    """
    with _no_cyclic_gc():
        try:
            if has_cross_section(parse_all(exprs)):
                from rdbridge.engine.stages import compute_staged

                return compute_staged(panel, exprs, start=start, end=end, pyfactors=pyfactors, progress=progress)
            return _compute(panel, exprs, start=start, end=end, pyfactors=pyfactors, progress=progress)
        finally:
            buffers.release_idle()


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Python's cycle collector off for one compute: planning and Polars create many short-lived objects, and each
    collection walks every object of the process (numba, Polars and pandas included): 5-7% of an Alpha158 compute
    in `perf`. Nothing in a compute builds reference cycles that must be reclaimed before it returns."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _compute(
    panel: pl.DataFrame,
    exprs: Mapping[str, str],
    *,
    start: str | date | datetime | None,
    end: str | date | datetime | None,
    pyfactors: Mapping[str, Callable[..., object]] | None,
    progress: bool | ProgressHook,
) -> pl.DataFrame:
    pyfactors = dict(pyfactors or {})
    clash = sorted(set(exprs) & set(pyfactors))
    if clash:
        raise ValueError(f"factor name(s) {clash} are given both as an expression and as a Python factor")
    report = _Progress(progress)
    # fault in memory on the idle core while this one parses and lays out: about a third of a request's outputs
    # are written by their kernels into float32 buffers from the pool (epilogue.py)
    buffers.prefill([(buffers.nbytes(panel.height, np.float32), len(exprs) // PREFILL_OUTPUT_SHARE)])
    roots = parse_all(exprs)
    needed: set[str] = set()
    for root in roots.values():
        needed |= fields_of(root)
    all_nodes = [n for r in roots.values() for n in _walk_all(r)]
    needed |= {f"{CS_PREFIX}{int(n.params[0])}" for n in all_nodes if getattr(n, "op", None) == CSValue.name}
    _check_panel(panel, needed)
    pad = lookback(all_nodes)
    layout = build_layout(panel["instrument"], pad)
    buffers.prefill([(buffers.nbytes(layout.n_padded, np.float64), PREFILL_COLUMNS)])
    blocks = layout.blocks()
    validity = layout.validity()
    base = layout.frame(panel, sorted(needed), blocks, validity)
    field_values = {f: values_view(base[f]) for f in needed}
    finished: dict[str, pl.Series] = {}  # requested name -> its real rows as Float32 (Qlib's output dtype)
    groups = chunks(roots)
    for k, group in enumerate(groups):
        finished.update(_evaluate(group, base, layout, needed, report, blocks, field_values, validity))
        report.advance("factor groups", k + 1, len(groups))
    del base
    out_cols: list[pl.Series] = [panel["instrument"].cast(pl.Utf8), panel["datetime"]]
    for name in exprs:
        if name not in finished:  # a constant expression
            value = float(roots[name].value)  # type: ignore[attr-defined]
            out_cols.append(pl.Series(name, np.full(panel.height, value, dtype=np.float32)))
            continue
        out_cols.append(finished[name].alias(name))
    out = pl.DataFrame(out_cols)
    del finished
    if pyfactors:
        extra = run_pyfactors(panel, pyfactors)
        out = out.with_columns(extra)
        report.step(f"{len(pyfactors)} Python factors")
    lo, hi = _time_bound(start), _time_bound(end)
    if lo is not None or hi is not None:
        cond = pl.lit(True)
        if lo is not None:
            cond = cond & (pl.col("datetime") >= lo)
        if hi is not None:
            cond = cond & (pl.col("datetime") <= hi)
        out = out.filter(cond)
    return out


PREFILL_OUTPUT_SHARE = 3
PREFILL_COLUMNS = 24
"""Buffers faulted in ahead on a background thread: one float32 output per ``PREFILL_OUTPUT_SHARE`` requested
names, and ``PREFILL_COLUMNS`` padded float64 kernel columns (about what one group keeps live)."""

CHUNK_ROOTS = 64
"""Expressions evaluated together: enough columns per layer to keep every core busy, few enough that the live
intermediates stay a small multiple of one column while finished outputs accumulate as float32."""


def chunks(roots: Mapping[str, Node]) -> list[dict[str, Node]]:
    """Split the request into groups of at most ``CHUNK_ROOTS`` expressions, keeping expressions with the same
    longest window together (Alpha158's families per window share their rolling sums, sorts and deviations)."""
    order = sorted(roots, key=lambda name: lookback(_walk_all(roots[name])))
    return [{name: roots[name] for name in order[i : i + CHUNK_ROOTS]} for i in range(0, len(order), CHUNK_ROOTS)]


def _evaluate(
    roots: Mapping[str, Node],
    base: pl.DataFrame,
    layout: Layout,
    needed: set[str],
    report: _Progress,
    blocks: Blocks,
    field_values: dict[str, np.ndarray],
    validity: tuple[object, int],
) -> dict[str, pl.Series]:
    """Plan and run one group of expressions on the padded ``base`` frame; returns name -> Float32 real rows."""
    pad = layout.pad_rows
    ctx = Ctx(layout.max_block, layout.first_real, pad, validity)
    ctx.blocks, ctx.field_values = blocks, field_values
    try:
        p = plan(roots, ctx, {f: f for f in needed})
    except CompileError as exc:
        raise ValueError(f"cannot compile the request: {exc}") from exc
    work = base
    done: dict[str, pl.Series] = {}  # output column -> real rows, Float32

    def take(columns: list[str]) -> None:
        """Move finished outputs out of the work frame as soon as no later layer reads them: the frame then holds
        only live intermediates, and each output is kept once, as float32, without pad rows."""
        nonlocal work
        real = ~pl.col("_pad")
        got = work.select([(pl.col(c).filter(real) if pad else pl.col(c)).cast(pl.Float32) for c in columns])
        done.update((c, got[c]) for c in columns)
        work = work.drop([c for c in columns if c not in needed])

    for step, drop, ready in _steps(p):
        work = work.with_columns(step)
        if drop:
            work = work.drop(drop)
        if ready:
            take(ready)
    for c in p.fused:  # written by the kernels themselves (epilogue.py): float32, missing values NaN as in Qlib
        done[c] = series_over(ctx.fused.pop(c))
    fields_out = sorted({c for c in p.outputs.values() if c not in done})
    if fields_out:
        take(fields_out)
    report.step(f"{len(roots)} expressions: {sum(len(x) for x in p.layers)} columns in {len(p.layers)} layers")
    return {name: done[col] for name, col in p.outputs.items()}


def _steps(p: Plan) -> Iterator[tuple[list[pl.Expr], list[str], list[str]]]:
    """The plan's columns as parallel steps: ``(expressions, columns to drop after, outputs to take after)``.

    Columns are scheduled by what they read, not by the compiler's layers: every cheap element-wise or shift
    column is computed as soon as its inputs exist, in its own short step, so that each kernel step holds every
    kernel whose inputs are ready, whatever its layer. A layer's kernels then no longer wait for the slowest
    kernel of the layer before (e.g. IdxMax over a shifted close next to a window-60 rank), and the steps are few
    and wide: both of Polars' threads stay busy to the end of the group. Kernels run longest first, split between
    the two halves Polars' pool takes, as the compiler orders them (``_cost``)."""
    items: list[tuple[str, pl.Expr]] = []
    for i, layer in enumerate(p.layers):
        for level in p.helper_steps[i]:
            items.extend(level)
        items.extend(layer)
    produced = {name for name, _ in items}
    deps = {name: set(expr.meta.root_names()) & produced for name, expr in items}
    waiting: dict[str, int] = {name: 0 for name in produced}  # readers not yet computed
    for name in produced:
        for d in deps[name]:
            waiting[d] += 1
    pending = dict(items)
    computed: set[str] = set()
    while pending:
        ready = [name for name in pending if deps[name] <= computed]
        if not ready:
            raise RuntimeError(f"plan columns {sorted(pending)} wait for each other")  # a compiler bug, not input
        cheap = [name for name in ready if name not in p.heavy]
        if cheap:
            step = cheap
        else:
            ordered = sorted(ready, key=lambda n: -p.cost.get(n, 1.0))
            step = ordered[0::2] + ordered[1::2]
        exprs = [pending.pop(name) for name in step]
        computed.update(step)
        for name in step:
            for d in deps[name]:
                waiting[d] -= 1
        free = [c for c in step if waiting[c] == 0] + [d for name in step for d in deps[name] if waiting[d] == 0]
        free = list(dict.fromkeys(free))
        for c in free:
            waiting[c] = -1  # released once
        yield exprs, [c for c in free if c not in p.taken], [c for c in free if c in p.taken]


def _walk_all(root: Node) -> list[Node]:
    from rdbridge.engine.ast import walk

    return walk(root)


class _Progress:
    """Timed progress lines on stderr when asked (True), or counts handed to a hook (the CLI's rich bar)."""

    def __init__(self, enabled: bool | ProgressHook) -> None:
        self.hook = enabled if callable(enabled) else None
        self.enabled = enabled is True
        self.t0 = time.perf_counter()

    def advance(self, label: str, done: int, total: int) -> None:
        if self.hook is not None:
            self.hook(label, done, total)

    def step(self, message: str) -> None:
        if self.enabled:
            import sys

            print(f"[{time.perf_counter() - self.t0:7.3f}s] {message}", file=sys.stderr)
