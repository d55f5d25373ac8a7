"""All 158 Alpha158 reference functions of rd_factors_lib verified against the engine's Alpha158 expressions
(contracts/alpha158.py) on the standard panel at the default tolerances: the platform CI's regression suite."""

from __future__ import annotations

import time
from pathlib import Path

from rdbridge.verify.mapping import alpha158_targets
from rdbridge.verify.run import Options, verify_targets


def test_all_158_alpha158_functions_equal_the_engine_expressions(tmp_path: Path) -> None:
    targets = alpha158_targets()
    assert len(targets) == 158
    t0 = time.perf_counter()
    res = verify_targets(targets, Options(out_dir=tmp_path / "reports", write_html=False))
    seconds = time.perf_counter() - t0
    failed = [f"{r.factor}: {r.reason}" for r in res.reports if not r.verified]
    assert not failed, "\n".join(failed)
    assert res.verified == 158 and res.dataset.name == "std-v1"
    # nothing vacuous: every factor has valid cells, and the NaN masks are not all-empty
    assert all(r.comparison and r.comparison.both_valid > 0.5 * r.comparison.cells for r in res.reports)
    print(f"\n158 Alpha158 factors verified in {seconds:.1f} s ({res.timings})")
