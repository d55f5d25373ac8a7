"""The staged run of a request holding cross-sectional operators, on one panel in memory.

Each stage computes the inputs of its cross-sectional nodes as ordinary outputs, runs the date-wise pass and adds
the results to the panel as float64 columns the next stage reads (``cross_section.py``). The partitioned job
(``job.py``) runs the same stages with each instrument partition in place of the panel and the date-wise pass over
all partitions, so both give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime

import polars as pl

from rdbridge.engine.cross_section import cross_section_pass, staged_roots
from rdbridge.engine.runner import ProgressHook, _compute, parse_all


def compute_staged(
    panel: pl.DataFrame,
    exprs: Mapping[str, str],
    *,
    start: str | date | datetime | None = None,
    end: str | date | datetime | None = None,
    pyfactors: Mapping[str, Callable[..., object]] | None = None,
    progress: bool | ProgressHook = False,
) -> pl.DataFrame:
    """``runner.compute`` for requests with cross-sectional operators (same contract)."""
    plan = staged_roots(parse_all(exprs))
    work = panel
    for stage in plan.stages:
        inputs = stage.inputs()
        got = _compute(work, inputs, start=None, end=None, pyfactors=None, progress=progress)
        cs = cross_section_pass(got.select("datetime", *inputs), stage)
        work = work.with_columns(cs)
    return _compute(work, plan.roots, start=start, end=end, pyfactors=pyfactors, progress=progress)
