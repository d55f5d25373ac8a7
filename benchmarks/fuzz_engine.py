"""By hand (not a test): thousands of random well-formed Qlib expressions computed by the engine (in subprocesses)
and by pyqlib 0.9.7 (kernels=1) on a small synthetic panel; prints tested / agree / disagree / refused / crashed and,
for each disagreement, refusal or crash, the smallest failing sub-expression.

    .venv/bin/python benchmarks/fuzz_engine.py --count 5000 --seed 1 [--batch 250] [--shape 20x250]

The generator and the comparison are ``tests/engine/fuzz.py``; the suite runs a few hundred (``test_fuzz_qlib.py``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--shape", default="20x250", help="instruments x days of the synthetic panel")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--minimize", type=int, default=25, help="look for the smallest failing sub-expression of the first N")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # pyqlib warns on every Ref(x, 0)

    from rdbridge.engine.synthetic import make_panel
    from tests.engine.fuzz import Outcome, compare, generate, smallest_failing
    from tests.engine.qlib_ref import write_panel_as_qlib

    n_inst, n_days = (int(v) for v in args.shape.split("x"))
    exprs = generate(args.seed, args.count, args.depth)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        panel = make_panel(n_inst, n_days, seed=args.seed, late_listing_frac=0.3, suspension_frac=0.05)
        panel_path = work / "panel.parquet"
        panel.write_parquet(panel_path)
        qlib_dir = write_panel_as_qlib(panel, work / "qlib_data")
        total = Outcome()
        for start in range(0, len(exprs), args.batch):
            got = compare(panel_path, qlib_dir, exprs[start : start + args.batch], work / f"b{start}")
            total.add(got)
            print(f"[{time.perf_counter() - t0:7.1f}s] {start + len(exprs[start:start + args.batch])}/{len(exprs)}: "
                  f"{total.line()}", flush=True)
        print(f"\nseed {args.seed}, panel {args.shape}, depth <= {args.depth}: {total.line()}")
        for title, found in (("crashed", total.crashed), ("refused (pyqlib computes)", total.refused),
                             ("disagree", total.disagree)):
            for k, (expr, why) in enumerate(found.items()):
                small = smallest_failing(panel_path, qlib_dir, expr, work / "min") if k < args.minimize else "(not searched)"
                print(f"- {title}: `{expr}`\n    smallest failing: `{small}`\n    {why[:400]}", flush=True)
        for expr in total.qlib_only_refuses[:20]:
            print(f"- pyqlib alone refuses: `{expr}`")
    print(f"took {time.perf_counter() - t0:.0f} s")
    return 1 if total.crashed or total.refused else 0


if __name__ == "__main__":
    sys.exit(main())
