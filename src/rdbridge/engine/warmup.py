"""``warm_up``: load the engine's compiled kernels before the first real compute.

numba keeps the machine code of every kernel in its on-disk cache, but a process still loads each kernel signature
from that cache on its first call: about 0.1 s for an Alpha158 request, measured as the difference between a
process's first and second compute of a 3-instrument panel (``benchmarks/bench_engine.py`` reports it). A service
that computes factors repeatedly pays it once, at start-up; ``warm_up`` lets it (and the benchmark) pay it there
instead of inside the first request. On a fresh install the cache is empty and this is where the kernels are
compiled (tens of seconds, once).
"""

from __future__ import annotations

import time

from rdbridge.contracts.alpha158_table import alpha158_expressions
from rdbridge.engine.runner import compute
from rdbridge.engine.synthetic import make_panel

EXTRA = {
    "skew": "Skew($close, 10)",
    "kurt": "Kurt($volume, 10)",
    "mad": "Mad($close / $open, 10)",
    "ema": "EMA($close, 10) + EMA($close, 0)",
    "wma": "WMA($close, 10)",
    "count": "Count($close > $open, 10)",
    "cov": "Cov($close, $volume, 10)",
    "var": "Var(Log($volume + 1), 10) + Mean($close / $open, 0)",
    "med": "Med($close, 10) + Quantile($close, 0, 0.5)",
    "rank0": "Rank($close, 0) + Rank($close, 300)",
    "regression0": "Slope($close, 0) + Resi($close, 0) + Rsquare($close, 0)",
    "flat": "Corr($close, $open * 0, 5) + Cov($close, $open, 5)",  # flat windows: the exact std settles them
}
"""Operators and input kinds (float64 inputs, expanding windows, long windows, flat windows) that Alpha158 does not
reach."""


def warm_up() -> float:
    """Compute Alpha158 and ``EXTRA`` on a tiny synthetic panel, so every kernel signature a request meets is
    loaded; returns the seconds it took."""
    t0 = time.perf_counter()
    panel = make_panel(3, 80, seed=0)
    compute(panel, {**alpha158_expressions(), **EXTRA})
    return time.perf_counter() - t0
