"""The runner's steps (``runner._steps``): kernels whose inputs are cheap columns of any depth share one parallel
step, every column is computed after what it reads, and every column leaves the work frame exactly once."""

from __future__ import annotations

import numpy as np
import pytest

from rdbridge.engine import compute, runner
from rdbridge.engine.synthetic import make_panel

EXPRS = {
    "rank": "Rank($close, 10)",  # a kernel on a field
    "ret_mean": "Mean($close / Ref($close, 1), 5)",  # a kernel on a shifted, divided close: two cheap steps deep
    "corr": "Corr($close, Log($volume + 1), 5)",  # a kernel on an element-wise column that calls numpy
    "imax": "IdxMax($high, 5) / 5",
    "kmid": "($close - $open) / $open",  # no kernel at all
    "roc": "Ref($close, 5) / $close",
    "nested": "Mean(Std($close, 5), 5)",  # a kernel on a kernel's result: needs a second kernel step
}


def test_kernels_with_ready_inputs_share_one_step(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[set[str], list[list[str]], list[str], list[str]]] = []
    real_steps = runner._steps

    def spy(p):  # noqa: ANN001, ANN202 - test spy with _steps' signature
        steps = []
        for exprs, drop, ready in real_steps(p):
            steps.append(([e.meta.output_name() for e in exprs], drop, ready))
            yield exprs, drop, ready
        seen.append((p.heavy, [s[0] for s in steps], [c for s in steps for c in s[1]], [c for s in steps for c in s[2]]))

    monkeypatch.setattr(runner, "_steps", spy)
    panel = make_panel(8, 120, seed=5, late_listing_frac=0.3, suspension_frac=0.05)
    got = compute(panel, EXPRS)
    (heavy, steps, dropped, taken), = seen
    with_kernels = [s for s in steps if set(s) & heavy]
    assert len(with_kernels) == 2  # everything but the nested Mean runs in the first kernel step
    assert len(set(with_kernels[0]) & heavy) >= 5
    computed = [c for s in steps for c in s]
    assert len(computed) == len(set(computed))
    assert sorted(dropped + taken) == sorted(computed)  # each column leaves once: dropped or taken as an output
    want = compute(panel, EXPRS)  # the same request again: same numbers
    for name in EXPRS:
        np.testing.assert_array_equal(got[name].to_numpy(), want[name].to_numpy())
    assert got["nested"].is_nan().sum() < got.height
