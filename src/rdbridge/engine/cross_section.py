"""Cross-sectional operators: ``CSRank``, ``CSZScore``, ``CSDemean`` across instruments per date.

Qlib's operators are time series per instrument, which is what lets the engine lay each instrument out as one
block and partition a panel by instrument. A cross-sectional operator needs every instrument of a date instead, so
a request holding one is run in stages (``staged_roots``): the inputs of the innermost cross-sectional nodes are
computed as ordinary outputs (per instrument partition), a date-wise pass (``cross_section_pass``) turns them into
columns, and the rest of the request reads those columns through the internal ``CSValue`` node, as many stages as
cross-sectional operators are nested. In-memory and partitioned runs take exactly the same path, so they give the
same numbers.

Conventions (documented in docs/engine.md):
- the input is read as the engine outputs it: float32, Qlib's output dtype; the result is float64, as a rolling
  operator's, so ``Mean(CSRank($close), 5)`` keeps float64 throughout;
- ``CSRank(x)``: pandas ``groupby(datetime).rank(pct=True)`` (method average): ties share their average rank, the
  rank is divided by the number of non-NaN values of the date, NaN stays NaN, ±inf rank last/first;
- ``CSZScore(x)``: ``(x - mean) / std`` over the date's finite values (std with ddof=1, as pandas); ±inf and NaN
  give NaN, a date with one finite value or all equal values gives NaN (0 / 0);
- ``CSDemean(x)``: ``x - mean`` over the date's finite values; ±inf and NaN give NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from rdbridge.engine.ast import Call, Node, walk
from rdbridge.engine.context import F64, CompileError, Ctx, Value
from rdbridge.engine.ops import OPERATORS, Op

CS_PREFIX = "__cs"
IN_PREFIX = "__csin"


class CrossSection(Op):
    """A cross-sectional operator: one expression input, float64 out; computed by the staged runner."""

    masks_pads = True
    form: str = ""

    def dtype(self, ins: list[Value]) -> str:
        return F64

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        raise CompileError(f"{self.name} is computed by a date-wise pass; call runner.compute, not the compiler")


class CSRank(CrossSection):
    name = "CSRank"


class CSZScore(CrossSection):
    name = "CSZScore"


class CSDemean(CrossSection):
    name = "CSDemean"


class CSValue(Op):
    """Internal: the result column of cross-sectional node ``index`` from an earlier stage (float64)."""

    name = "_CSValue"
    n_args = 0
    params = ("index",)

    def dtype(self, ins: list[Value]) -> str:
        return F64

    def compile(self, ctx: Ctx, ins: list[Value], params: tuple[int | float, ...]) -> pl.Expr:
        return pl.col(f"{CS_PREFIX}{int(params[0])}")


CROSS_SECTION_OPERATORS: dict[str, Op] = {cls.name: cls() for cls in (CSRank, CSZScore, CSDemean, CSValue)}
OPERATORS.update(CROSS_SECTION_OPERATORS)


def has_cross_section(roots: Mapping[str, Node]) -> bool:
    """Whether any expression holds a cross-sectional operator."""
    return any(isinstance(n, Call) and n.op in CROSS_SECTION_OPERATORS for r in roots.values() for n in walk(r))


@dataclass
class Stage:
    """One date-wise pass: cross-sectional node ``index`` -> (operator, its input with earlier ones replaced)."""

    jobs: dict[int, tuple[str, Node]] = field(default_factory=dict)

    def inputs(self) -> dict[str, Node]:
        """The inputs to compute before the pass, as output names -> nodes."""
        return {f"{IN_PREFIX}{k}": node for k, (_, node) in self.jobs.items()}


@dataclass
class StagedPlan:
    stages: list[Stage]
    roots: dict[str, Node]  # the request with every cross-sectional node replaced by its CSValue


def staged_roots(roots: Mapping[str, Node]) -> StagedPlan:
    """Split a request into date-wise stages: a cross-sectional node's stage is one more than the deepest
    cross-sectional node inside its input; equal nodes are computed once."""
    memo: dict[Node, Node] = {}
    level: dict[Node, int] = {}
    index: dict[Node, int] = {}  # rewritten input key (op, input) -> index
    stages: list[Stage] = []
    for root in roots.values():
        for n in walk(root):
            if n in memo:
                continue
            if not isinstance(n, Call):
                memo[n], level[n] = n, 0
                continue
            args = tuple(memo[a] for a in n.args)
            lv = max((level[a] for a in n.args), default=0)
            if n.op in CROSS_SECTION_OPERATORS and n.op != CSValue.name:
                key = Call(n.op, args, n.params)
                if key not in index:
                    index[key] = len(index)
                    while len(stages) <= lv:
                        stages.append(Stage())
                    stages[lv].jobs[index[key]] = (n.op, args[0])
                memo[n] = Call(CSValue.name, (), (index[key],))
                level[n] = lv + 1
            else:
                memo[n] = Call(n.op, args, n.params, n.column)
                level[n] = lv
    return StagedPlan(stages, {name: memo[r] for name, r in roots.items()})


def cross_section_pass(frame: pl.DataFrame, stage: Stage) -> pl.DataFrame:
    """The date-wise pass of one stage over ``frame`` (``datetime`` and the stage's ``__csin<k>`` input columns,
    all instruments of every date it holds): returns ``__cs<k>`` float64 columns, row for row."""
    out = []
    for k, (op, _) in stage.jobs.items():
        x = pl.col(f"{IN_PREFIX}{k}").cast(pl.Float64)
        if op == "CSRank":
            v = x.fill_nan(None)
            expr = v.rank("average").over("datetime") / v.count().over("datetime")
        else:
            v = pl.when(x.is_finite()).then(x)
            dev = v - v.mean().over("datetime")
            expr = dev / v.std(ddof=1).over("datetime") if op == "CSZScore" else dev
        out.append(expr.cast(pl.Float64).fill_null(float("nan")).alias(f"{CS_PREFIX}{k}"))
    return frame.select(out)
