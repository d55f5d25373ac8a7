"""Outputs written by the window kernel that computed them: ``Stat(x, N)``, ``Stat(x, N) / $field`` and
``Stat(x, N) / number`` as float32 real rows, in one compiled pass.

Most Alpha158 factors are a window statistic divided by a field (``Mean($close, 5) / $close``) or by a number
(``IdxMax($high, 5) / 5``), or the statistic alone (``Rank($close, 5)``). Evaluated as Polars expressions, each
such output costs four passes over the padded column (the field cast to float64, the division, the cast to
float32, the filter dropping the pad rows), each into fresh memory. Here the kernel's float64 result goes
straight to the output's float32 real rows: the same IEEE operations (float64 division, then rounding to float32,
as numpy and Polars do), so the numbers are bit for bit the ones the Polars form gives.

The compiler (``compiler.plan``) decides which requested outputs take this path; ``Ctx.emit`` runs it when the
kernel's column is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from rdbridge.engine import buffers

BARE, BY_NUMBER, BY_FIELD = 0, 1, 2


@dataclass(frozen=True)
class Epilogue:
    """One fused output: which field of the kernel's result, divided by what, stored under which column name."""

    field: str
    out: str
    mode: int = BARE
    number: float = 1.0
    divisor: str = ""  # the panel field for BY_FIELD


@dataclass(frozen=True)
class Blocks:
    """The panel's real rows as runs of the padded column: ``length[b]`` rows from ``src_start[b]`` (padded index)
    go to ``dst_start[b]`` (output row)."""

    src_start: np.ndarray
    dst_start: np.ndarray
    length: np.ndarray
    n_rows: int

    @classmethod
    def from_positions(cls, positions: np.ndarray) -> Blocks:
        n = positions.size
        if n == 0:
            empty = np.zeros(0, np.int64)
            return cls(empty, empty, empty, 0)
        starts = np.flatnonzero(np.r_[True, np.diff(positions) != 1])
        return cls(positions[starts].astype(np.int64), starts.astype(np.int64),
                   np.diff(np.r_[starts, n]).astype(np.int64), n)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _finish(src: np.ndarray, div: np.ndarray, number: float, mode: int, src_start: np.ndarray,
            dst_start: np.ndarray, length: np.ndarray, out: np.ndarray) -> None:
    for b in range(length.size):
        s, d = src_start[b], dst_start[b]
        if mode == 2:
            for i in range(length[b]):
                out[d + i] = np.float32(src[s + i] / np.float64(div[s + i]))
        elif mode == 1:
            for i in range(length[b]):
                out[d + i] = np.float32(src[s + i] / number)
        else:
            for i in range(length[b]):
                out[d + i] = np.float32(src[s + i])


_NO_DIVISOR = np.zeros(0, np.float32)


def finish(src: np.ndarray, ep: Epilogue, blocks: Blocks, fields: dict[str, np.ndarray]) -> np.ndarray:
    """The output's float32 real rows from the kernel's padded float64 column ``src``."""
    out = buffers.empty(blocks.n_rows, dtype=np.float32)  # recycled pages once the caller drops the output
    div = fields[ep.divisor] if ep.mode == BY_FIELD else _NO_DIVISOR
    _finish(np.ascontiguousarray(src, dtype=np.float64), np.ascontiguousarray(div, dtype=np.float32),
            float(ep.number), ep.mode, blocks.src_start, blocks.dst_start, blocks.length, out)
    return out
