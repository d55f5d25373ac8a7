"""Compile many parsed expressions into layers of Polars expressions, computing each shared sub-expression once.

The plan: every unique AST node (structural equality, after putting commutative operands in a canonical order) is
either *materialised* as a column (rolling and shift operators, nodes used more than once, requested outputs) or
*inlined* into the expression of its consumer (cheap element-wise nodes used once). Materialised nodes are grouped
into layers by dependency depth; one ``with_columns`` per layer lets Polars run the layer's expressions in parallel,
and columns are dropped as soon as their last consumer has been computed, so memory stays near the output size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from rdbridge.engine.ast import Call, Const, Field, Node, walk
from rdbridge.engine.epilogue import NONE, NUMBER, OPERAND, PLUS, PLUS32, SPAN, Epilogue, Operand
from rdbridge.engine.context import BOOL, CONST, F32, F64, CompileError, Ctx, Value
from rdbridge.engine.ops import OPERATORS, Ref, Rolling, object_valued

_COMMUTATIVE = {"Add", "Mul", "Greater", "Less", "Eq", "Ne", "And", "Or"}
_MIRROR = {"Gt": "Lt", "Ge": "Le"}


def canonical(node: Node) -> Node:
    """Rewrite commutative operands into a fixed order (``$a+$b`` == ``$b+$a``, ``$a>$b`` == ``$b<$a``) so that
    sub-expression sharing finds them; IEEE addition and multiplication are commutative, so values do not change."""
    memo: dict[Node, Node] = {}
    for n in walk(node):
        if isinstance(n, Call):
            args = tuple(memo[a] for a in n.args)
            op = n.op
            if op in _MIRROR and str(args[0]) > str(args[1]):
                op, args = _MIRROR[op], (args[1], args[0])
            elif op in _COMMUTATIVE and str(args[0]) > str(args[1]) and not _object_order(op, args):
                args = (args[1], args[0])
            memo[n] = Call(op, args, n.params, n.column)
        else:
            memo[n] = n
    return memo[node]


def _object_order(op: str, args: tuple[Node, ...]) -> bool:
    """Greater/Less of a Qlib object column (``Ref`` of a condition) run numpy's object loop, ``a if a >= b else
    b``: a NaN on the left gives b, on the right NaN, so the operands keep their order."""
    return op in ("Greater", "Less") and any(object_valued(a) for a in args)


def lookback(nodes: list[Node]) -> int:
    """Rows of history the padded layout must hold before each instrument: the longest window or shift."""
    best = 0
    for n in nodes:
        if isinstance(n, Call):
            best = max(best, OPERATORS[n.op].lookback(n.params))
    return best


@dataclass
class Plan:
    """What the runner executes: the planned columns, (column name, expression), by dependency depth; the runner
    schedules and drops them by what each reads (``runner._steps``)."""

    layers: list[list[tuple[str, pl.Expr]]]
    outputs: dict[str, str]  # requested name -> column holding it
    output_dtypes: dict[str, str]
    constants: dict[str, float] = field(default_factory=dict)  # requested name -> constant value
    helper_steps: list[list[list[tuple[str, pl.Expr]]]] = field(default_factory=list)  # per layer, per level
    taken: set[str] = field(default_factory=set)  # output columns the runner takes as Float32 real rows
    fused: list[str] = field(default_factory=list)  # output columns a kernel writes itself (``Ctx.fused``)
    cost: dict[str, float] = field(default_factory=dict)  # helper column -> rough kernel cost (``_cost``)
    heavy: set[str] = field(default_factory=set)  # columns that run a kernel or a rolling pass (not element-wise)


def plan(roots: Mapping[str, Node], ctx: Ctx, field_columns: Mapping[str, str]) -> Plan:
    """Build the layered plan for ``roots`` (name -> canonical node); ``field_columns`` maps field -> column."""
    order: list[Node] = []
    seen: set[Node] = set()
    for root in roots.values():
        for n in walk(root):
            if n not in seen:
                seen.add(n)
                order.append(n)
    uses: dict[Node, int] = {n: 0 for n in order}
    for n in order:
        for c in set(n.children()):
            uses[c] += 1
    root_nodes = set(roots.values())

    def materialise(n: Node) -> bool:
        if not isinstance(n, Call):
            return False
        op = OPERATORS[n.op]
        return n in root_nodes or uses[n] > 1 or isinstance(op, (Rolling, Ref))

    values: dict[Node, Value] = {}
    depth: dict[Node, int] = {}
    names: dict[Node, str] = {}
    pending: list[tuple[Node, pl.Expr]] = []
    kernel_of: dict[Node, tuple[object, str]] = {}  # node -> (kernel key, field) when its column is a raw result
    fused: dict[Node, str] = {}
    reads_of: dict[Node, list[tuple[object, str]]] = {}  # kernel result fields each node's expression reads
    for i, n in enumerate(order):
        if isinstance(n, Field):
            if n.name not in field_columns:
                raise CompileError(f"field ${n.name} is not in the panel (it has: {', '.join(sorted(field_columns))})")
            values[n] = Value(pl.col(field_columns[n.name]), F32, None, n)
            depth[n] = 0
            continue
        if isinstance(n, Const):
            values[n] = Value(None, CONST, n.value, n)
            depth[n] = 0
            continue
        assert isinstance(n, Call)
        op = OPERATORS[n.op]
        ins = [values[c] for c in n.args]
        dtype = op.dtype(ins)
        ctx.layer = max((depth[c] for c in n.args), default=0) + 1
        terminal = n in root_nodes and uses[n] == 0  # its pad rows are dropped unread: no pad mask needed
        ctx.terminal = terminal
        ctx.kernel_field = None
        ctx.reads = []
        expr = op.compile(ctx, ins, n.params)
        reads_of[n] = ctx.reads
        ctx.terminal = False
        raw, ctx.kernel_field = ctx.kernel_field, None
        if raw is not None and raw[2] is expr:
            kernel_of[n] = (raw[0], raw[1])
        ep = _epilogue(n, dtype, kernel_of, values, ctx, field_columns, f"_f{i}") if n in root_nodes else None
        if ep is not None:
            for key in ep.kernels():
                ctx.epilogues.setdefault(key, []).append(ep)
            fused[n] = ep.out
            if terminal:
                depth[n] = max((depth[c] for c in n.args), default=0) + 1  # where its kernel's helper runs
                values[n] = Value(None, dtype, None, n)
                continue
            # read by other expressions too: still a column for them (dropped below if only fused outputs read it)
        if op.masks_pads and not terminal and not isinstance(op, (Rolling, Ref)):
            expr = pl.when(ctx.pad).then(None).otherwise(expr)
        d = max((depth[c] for c in n.args), default=0)
        if materialise(n):
            name = f"_n{i}"
            names[n] = name
            depth[n] = d + 1
            if terminal:
                expr = expr.cast(pl.Float32)  # an output nothing else reads: store it as Qlib's float32 at once
            pending.append((n, expr.alias(name)))
            values[n] = Value(pl.col(name), dtype, None, n)
        else:
            depth[n] = d
            values[n] = Value(expr, dtype, None, n)

    kernel_columns = {kernel_of[m][0]: names[m] for m in kernel_of if m in names}
    sources = {kernel_columns[k] for ep in ctx.epilogues.values() for e in ep for k in e.kernels()
               if k not in ctx.helpers}
    pending = _needed(pending, names, root_nodes - set(fused), sources, ctx)
    ctx.column_fields = {r for n, _ in pending for r in reads_of.get(n, ())}
    names = {n: names[n] for n, _ in pending}
    n_layers = max(
        max((depth[n] for n, _ in pending), default=0),
        max((depth[n] for n in fused), default=0),
        max((h.last_layer for h in ctx.helpers.values()), default=0),
    )
    layers: list[list[tuple[str, pl.Expr]]] = [[] for _ in range(n_layers)]
    for n, expr in pending:
        layers[depth[n] - 1].append((names[n], expr))
    helper_steps: list[list[list[tuple[str, pl.Expr]]]] = [[] for _ in range(n_layers)]
    for h in ctx.helpers.values():
        steps = helper_steps[h.first_layer - 1]
        while len(steps) < h.level:
            steps.append([])
        steps[h.level - 1].append((h.name, h.expr.alias(h.name)))
    taken = {name for n, name in names.items() if n in root_nodes and n not in fused}

    outputs: dict[str, str] = {}
    dtypes: dict[str, str] = {}
    constants: dict[str, float] = {}
    for out_name, root in roots.items():
        if isinstance(root, Const):
            constants[out_name] = float(root.value)
        elif isinstance(root, Field):
            outputs[out_name] = field_columns[root.name]
            dtypes[out_name] = F32
        else:
            outputs[out_name] = fused[root] if root in fused else names[root]
            dtypes[out_name] = values[root].dtype
    cost = {h.name: _cost(key, ctx) for key, h in ctx.helpers.items()}
    # rolling columns run their kernel themselves, unless they only read a field of a helper's result
    heavy = set(cost) | {names[n] for n, _ in pending if isinstance(OPERATORS[n.op], Rolling)
                         and not (n in kernel_of and kernel_of[n][0] in ctx.helpers)}
    return Plan(layers, outputs, dtypes, constants, helper_steps, taken, sorted(set(fused.values())), cost, heavy)


def _cost(key: object, ctx: Ctx) -> float:
    """Rough single-thread milliseconds of a helper's kernel per million rows, by which the runner orders a
    parallel step so that both of Polars' threads start with the long kernels and end with the short ones
    (measured with ``benchmarks/profile_engine.py``)."""
    kind = key[0] if isinstance(key, tuple) and key else None
    if kind == "sorted":
        return 40.0
    if kind == "wsums":
        return 16.0 if key[1] == "pair" else 11.0
    if kind == "moments":
        stats = ctx.kernel_cache.get(key, {}).get("stats", ())
        return 9.0 if {"var", "std"} & set(stats) else (5.0 if {"max", "min"} & set(stats) else 3.0)
    return 1.0


def _needed(pending: list[tuple[Node, pl.Expr]], names: dict[Node, str], roots: set[Node], sources: set[str],
            ctx: Ctx) -> list[tuple[Node, pl.Expr]]:
    """The planned columns something still reads: the outputs not written by their kernels, the kernel columns
    (``sources``) and helper columns fused outputs read, what those read, and so on down. A sub-expression only
    fused outputs read is never computed."""
    expr_of = {names[n]: expr for n, expr in pending}
    stack = [names[r] for r in roots if r in names] + sorted(sources)
    for h in ctx.helpers.values():
        stack.extend(h.expr.meta.root_names())
    needed: set[str] = set()
    while stack:
        c = stack.pop()
        if c not in needed:
            needed.add(c)
            if c in expr_of:
                stack.extend(expr_of[c].meta.root_names())
    return [(n, expr) for n, expr in pending if names[n] in needed]


def _epilogue(
    n: Call,
    dtype: str,
    kernel_of: dict[Node, tuple[object, str]],
    values: dict[Node, Value],
    ctx: Ctx,
    field_columns: Mapping[str, str],
    out: str,
) -> Epilogue | None:
    """Whether the requested output ``n`` can be written from its kernels' results (``epilogue.py``): ``(A [- B])
    / D`` over kernel statistics (of shared helpers, which run whether or not a column reads them) and panel
    fields, with at least one statistic, in float64 (or ``$field + c`` in float32), as the Polars form computes it.
    """
    if ctx.blocks is None or dtype != F64:
        return None

    def dt(m: Node) -> str:
        return dtype if m is n else values[m].dtype

    def operand(m: Node) -> Operand | None:
        if m in kernel_of and dt(m) == F64:
            key, stat = kernel_of[m]
            if key in ctx.helpers:  # runs whether or not a column reads it
                return Operand(key, stat)
            return Operand(key, stat) if m is not n else None  # the column of node m runs it (kept by _needed)
        if isinstance(m, Field) and m.name in field_columns and dt(m) == F32:
            return Operand(None, field_columns[m.name])
        return None

    def number(m: Node) -> float | None:
        if isinstance(m, Const) and isinstance(m.value, (int, float)) and not isinstance(m.value, bool):
            return float(m.value)
        return None

    def pair(m: Node, op: str) -> tuple[Operand, Operand] | None:
        """``m`` = op(operand, operand) in float64."""
        if not (isinstance(m, Call) and m.op == op and len(m.args) == 2 and dt(m) == F64):
            return None
        x, y = operand(m.args[0]), operand(m.args[1])
        return (x, y) if x is not None and y is not None else None

    def plus_number(m: Node) -> tuple[Node, float] | None:
        """``m`` = something + number (either order)."""
        if not (isinstance(m, Call) and m.op == "Add" and len(m.args) == 2):
            return None
        for x, y in (m.args, m.args[::-1]):
            k = number(y)
            if k is not None:
                return x, k
        return None

    top, bottom = (n.args[0], n.args[1]) if n.op == "Div" and len(n.args) == 2 else (n, None)
    a = operand(top)
    b = None
    if a is None:
        sub = pair(top, "Sub")
        if sub is None:
            return None
        a, b = sub
    ep: Epilogue | None = None
    if bottom is None:
        ep = Epilogue(out, a, b, NONE)
    elif (k := number(bottom)) is not None:
        ep = Epilogue(out, a, b, NUMBER, number=k)
    elif (c := operand(bottom)) is not None:
        ep = Epilogue(out, a, b, OPERAND, c)
    elif (add := plus_number(bottom)) is not None:
        inner, k = add
        c = operand(inner)
        if c is not None and c.key is not None and dt(bottom) == F64:
            ep = Epilogue(out, a, b, PLUS, c, number=k)
        elif c is not None and c.key is None and dt(bottom) == F32:
            ep = Epilogue(out, a, b, PLUS32, c, number=k)
        elif (span := pair(inner, "Sub")) is not None and dt(bottom) == F64:
            ep = Epilogue(out, a, b, SPAN, span[0], span[1], number=k)
    return ep if ep is not None and ep.kernels() else None


def is_bool(dtype: str) -> bool:
    return dtype == BOOL
