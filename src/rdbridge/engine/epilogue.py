"""Outputs written straight from the window kernels' results: ``N / D`` as float32 real rows, in one compiled pass.

Most Alpha158 factors are a window statistic over a field (``Mean($close, 5) / $close``), over a number
(``IdxMax($high, 5) / 5``), the statistic alone (``Rank($close, 5)``), or a short formula of two or three
statistics (``Sum(Greater(..), 5) / (Sum(Abs(..), 5) + 1e-12)``, ``(Sum(..) - Sum(..)) / (Sum(..) + 1e-12)``,
``Mean(..) - Mean(..)``, ``($close - Min($low, 5)) / (Max($high, 5) - Min($low, 5) + 1e-12)``). Evaluated as Polars
expressions, each such output costs several passes over the padded column (casts, each arithmetic step, the cast
to float32, the filter dropping the pad rows), each into fresh memory. Here the kernels' float64 results go
straight to the output's float32 real rows, with the same IEEE operations in the same order and dtypes (float64
arithmetic, ``$field + c`` in float32 as numpy does, then rounding to float32), so the numbers are bit for bit the
ones the Polars form gives.

The shape is ``N / D`` with N = A or A - B, and D one of: nothing, a number, C, C + number, C - E + number, or
float32(C + number). A, B, C, E are operands: a field of some kernel's result (float64) or a panel field
(float32). The compiler (``compiler.plan``) decides which outputs take this path; ``Ctx.emit`` runs an epilogue
once every kernel it reads has emitted (the kernels of a step run on several threads).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from rdbridge.engine import buffers

NONE, NUMBER, OPERAND, PLUS, SPAN, PLUS32 = range(6)
"""The denominator: none, a number, C, C + number, (C - E) + number, float32(C + float32(number))."""


@dataclass(frozen=True)
class Operand:
    """Field ``name`` of kernel ``key``'s result, or the panel field ``name`` when ``key`` is None."""

    key: object | None
    name: str


@dataclass(frozen=True)
class Epilogue:
    """One fused output, stored under column ``out``: (A [- B]) / D (see the module docstring)."""

    out: str
    a: Operand
    b: Operand | None = None
    den: int = NONE
    c: Operand | None = None
    e: Operand | None = None
    number: float = 1.0

    def operands(self) -> list[Operand]:
        return [o for o in (self.a, self.b, self.c, self.e) if o is not None]

    def kernels(self) -> set[object]:
        """The kernels whose results it reads: it runs once all of them have emitted."""
        return {o.key for o in self.operands() if o.key is not None}


@dataclass(frozen=True)
class Blocks:
    """The panel's real rows as runs of the padded column: ``length[b]`` rows from ``src_start[b]`` (padded index)
    go to ``dst_start[b]`` (output row)."""

    src_start: np.ndarray
    dst_start: np.ndarray
    length: np.ndarray
    n_rows: int


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _num(a: np.ndarray, b: np.ndarray, i: int, has_b: bool) -> float:
    """A - B in float64 (float32 fields promote, as in Polars). ``has_b`` is loop-invariant: LLVM unswitches the
    row loop on it, so neither version tests it per row."""
    return np.float64(a[i]) - np.float64(b[i]) if has_b else np.float64(a[i])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _finish(a: np.ndarray, b: np.ndarray, has_b: bool, c: np.ndarray, e: np.ndarray, den: int, number: float,
            src_start: np.ndarray, dst_start: np.ndarray, length: np.ndarray, out: np.ndarray) -> None:
    """One loop per denominator form, so the row loop has no branch to take. Each block's rows are read through
    slices indexed from 0: numba then knows no index is negative, and LLVM vectorises the loops (indexing the
    whole arrays at ``start + i`` kept a wrap-around test per access and ran 2-3x slower)."""
    for blk in range(length.size):
        s, d, m = src_start[blk], dst_start[blk], length[blk]
        o = out[d : d + m]
        av = a[s : s + m]
        bv = b[s : s + m]  # without B, the caller passes ``a`` (never read)
        if den == NUMBER:
            for i in range(m):
                o[i] = np.float32(_num(av, bv, i, has_b) / number)
        elif den == OPERAND:
            cv = c[s : s + m]
            for i in range(m):
                o[i] = np.float32(_num(av, bv, i, has_b) / np.float64(cv[i]))
        elif den == PLUS:
            cv = c[s : s + m]
            for i in range(m):
                o[i] = np.float32(_num(av, bv, i, has_b) / (cv[i] + number))
        elif den == SPAN:
            cv, ev = c[s : s + m], e[s : s + m]
            for i in range(m):
                o[i] = np.float32(_num(av, bv, i, has_b) / ((cv[i] - ev[i]) + number))
        elif den == PLUS32:
            n32 = np.float32(number)
            cv = c[s : s + m]
            for i in range(m):
                o[i] = np.float32(_num(av, bv, i, has_b) / np.float64(np.float32(cv[i]) + n32))
        else:
            for i in range(m):
                o[i] = np.float32(_num(av, bv, i, has_b))


_UNUSED = np.zeros(0, np.float64)


def finish(ep: Epilogue, values: dict[Operand, np.ndarray], blocks: Blocks) -> np.ndarray:
    """The output's float32 real rows, from each operand's padded column (``values``)."""
    out = buffers.empty(blocks.n_rows, dtype=np.float32)  # recycled pages once the caller drops the output

    def arr(o: Operand | None) -> np.ndarray:
        return _UNUSED if o is None else np.ascontiguousarray(values[o])

    a = arr(ep.a)
    _finish(a, a if ep.b is None else arr(ep.b), ep.b is not None, arr(ep.c), arr(ep.e), ep.den, float(ep.number),
            blocks.src_start, blocks.dst_start, blocks.length, out)
    return out
