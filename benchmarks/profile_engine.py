"""Where one Alpha158 compute spends its time: numba kernels by name, the rest (Polars passes, planning), page faults.

Run by hand (not a test):

    .venv/bin/python benchmarks/profile_engine.py                  # 300 x 2,500, Polars' default threads
    .venv/bin/python benchmarks/profile_engine.py --threads 1      # one thread: CPU time per part adds up to wall

The first ``compute`` in the process is reported separately: it pays first-touch page faults for all its memory,
which on this VM cost anywhere from 0.2 to 1.2 s of system time for the same ~130k faults; later computes reuse
memory. Kernel times are wall time inside each kernel call, summed over calls (with several threads they overlap).
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

KERNELS = ("rolling_first_argmax", "rolling_ranks_and_quantiles", "rolling_rank_pct", "rolling_sum")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instruments", type=int, default=300)
    ap.add_argument("--days", type=int, default=2500)
    ap.add_argument("--threads", type=int, default=0, help="POLARS_MAX_THREADS (0: Polars' default)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        os.environ["POLARS_MAX_THREADS"] = str(args.threads)

    from rdbridge.contracts.alpha158 import alpha158_expressions
    from rdbridge.engine import compute, kernels, ops
    from rdbridge.engine.synthetic import make_panel

    spent: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()

    def timed(module: object, name: str) -> None:
        fn = getattr(module, name)

        def wrapper(*a: object, **k: object) -> object:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t
                calls[name] += 1

        setattr(module, name, wrapper)

    for name in KERNELS:
        timed(kernels, name)
    for name in ("window_moments", "pair_window", "regression_window"):
        timed(ops, name)

    panel = make_panel(args.instruments, args.days, seed=1)
    exprs = alpha158_expressions()
    threads = os.environ.get("POLARS_MAX_THREADS", "default")
    print(f"{panel.height:,} rows, {len(exprs)} expressions, POLARS_MAX_THREADS={threads}")
    for run in range(args.runs):
        spent.clear()
        calls.clear()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        compute(panel, exprs)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        kern = sum(spent.values())
        print(f"\ncompute {run + 1}{' (first in process)' if run == 0 else ''}: wall {wall:.3f} s, "
              f"user {r1.ru_utime - r0.ru_utime:.3f} s, system {r1.ru_stime - r0.ru_stime:.3f} s, "
              f"page faults {r1.ru_minflt - r0.ru_minflt:,}; kernels {kern:.3f} s")
        if run == args.runs - 1:
            for name, sec in spent.most_common():
                print(f"  {sec * 1000:7.1f} ms  {calls[name]:3d} calls  {name}")


if __name__ == "__main__":
    main()
