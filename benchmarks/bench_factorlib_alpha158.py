"""Time rd_factors_lib.alpha158 (the readable reference) against pyqlib 0.9.7 and rdbridge's engine on the panel of
the equivalence tests, and count the factors that differ. Prints wall and CPU seconds; report `uptime` beside them.

    PYTHONPATH=src:factors-lib .venv/bin/python benchmarks/bench_factorlib_alpha158.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "factors-lib"), str(ROOT / "tests")]

from engine.qlib_ref import SMALL_SHAPE, compare_one, qlib_features, write_panel_as_qlib  # noqa: E402
from factorlib.panels import as_panel_frame, rdagent_frame  # noqa: E402

from rdbridge.contracts.alpha158 import alpha158_expressions  # noqa: E402
from rdbridge.engine import compute  # noqa: E402
from rdbridge.engine.synthetic import make_panel  # noqa: E402


def timed(fn):  # noqa: ANN001, ANN201
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    from rd_factors_lib import REGISTRY

    exprs = alpha158_expressions()
    panel = make_panel(*SMALL_SHAPE, seed=7, late_listing_frac=0.3, suspension_frac=0.03)
    with tempfile.TemporaryDirectory() as tmp:
        qdir = write_panel_as_qlib(panel, Path(tmp) / "qlib_data")
        ref, qw, qc = timed(lambda: qlib_features(qdir, exprs))
    df = rdagent_frame(panel)
    ours, ow, oc = timed(lambda: as_panel_frame({n: REGISTRY[n].func(df) for n in exprs}))
    eng, ew, ec = timed(lambda: compute(panel, exprs).sort(["instrument", "datetime"]))
    bad_q = [n for n, e in exprs.items() if compare_one(n, e, ours, ref)]
    bad_e = [n for n, e in exprs.items() if compare_one(n, e, ours, eng)]
    print(f"panel {SMALL_SHAPE[0]} instruments x {SMALL_SHAPE[1]} days ({panel.height} rows), 158 factors")
    print(f"pyqlib 0.9.7 (kernels=1)     wall {qw:6.1f} s  cpu {qc:6.1f} s")
    print(f"rd_factors_lib.alpha158      wall {ow:6.1f} s  cpu {oc:6.1f} s")
    print(f"rdbridge engine              wall {ew:6.1f} s  cpu {ec:6.1f} s")
    print(f"differ from pyqlib: {len(bad_q)}; differ from the engine: {len(bad_e)}")


if __name__ == "__main__":
    main()
