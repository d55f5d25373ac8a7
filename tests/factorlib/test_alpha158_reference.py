"""rd_factors_lib.alpha158 is the readable reference for Alpha158: each of its 158 functions equals pyqlib 0.9.7
and rdbridge's engine on the shared panel with late listings, delistings and suspended days (NaN at the same rows,
values within 1e-5 * (1 + |b|))."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from rdbridge.contracts.alpha158 import alpha158_expressions
from engine.qlib_ref import compare_one, small_alpha158_reference  # the module pytest already imported (shared cache)

from .panels import as_panel_frame, rdagent_frame

EXPRS = alpha158_expressions()


@pytest.fixture(scope="module")
def reference_and_ours(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    from rd_factors_lib import REGISTRY

    panel, qlib_ref = small_alpha158_reference(tmp_path_factory)
    df = rdagent_frame(panel)
    ours = as_panel_frame({name: REGISTRY[name].func(df) for name in EXPRS})
    return panel, qlib_ref, ours


def test_registry_holds_the_158_in_group_alpha158() -> None:
    from rd_factors_lib import REGISTRY, alpha158

    names = [n for n, info in REGISTRY.items() if info.group == "alpha158"]
    assert names == list(EXPRS)
    for name in EXPRS:
        info = REGISTRY[name]
        assert info.doc == f"{name} = {EXPRS[name]}", name
        assert info.func.__name__ == f"factor_{name.lower()}"
        assert getattr(alpha158, info.func.__name__) is info.func


@pytest.mark.qlib
def test_every_alpha158_function_equals_pyqlib(reference_and_ours: tuple[pl.DataFrame, ...]) -> None:
    _, qlib_ref, ours = reference_and_ours
    found = [m.summary() for n, e in EXPRS.items() if (m := compare_one(n, e, ours, qlib_ref))]
    assert not found, f"{len(found)} of 158 differ from pyqlib:\n" + "\n".join(found)


def test_every_alpha158_function_equals_the_engine(reference_and_ours: tuple[pl.DataFrame, ...]) -> None:
    from rdbridge.engine import compute

    panel, _, ours = reference_and_ours
    engine = compute(panel, EXPRS).sort(["instrument", "datetime"])
    found = [m.summary() for n, e in EXPRS.items() if (m := compare_one(n, e, ours, engine))]
    assert not found, f"{len(found)} of 158 differ from the engine:\n" + "\n".join(found)


def test_result_follows_the_callers_index_and_is_pure(reference_and_ours: tuple[pl.DataFrame, ...]) -> None:
    """Shuffled rows in, the same values out on the same (shuffled) index; the input frame is left untouched."""
    from rd_factors_lib.alpha158 import factor_corr10, factor_rsqr5

    panel = reference_and_ours[0]
    df = rdagent_frame(panel)
    shuffled = df.sample(frac=1.0, random_state=3)
    before = shuffled.copy()
    for fn, name in ((factor_rsqr5, "RSQR5"), (factor_corr10, "CORR10")):
        out = fn(shuffled)
        assert out.name == name and out.index.equals(shuffled.index)
        pd.testing.assert_series_equal(out.sort_index(), fn(df).sort_index())
        assert np.isfinite(out).sum() > len(out) // 2
    pd.testing.assert_frame_equal(shuffled, before)
