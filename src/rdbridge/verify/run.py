"""One verification request end to end: data set, reference values (child process), candidate values, comparison,
reports, and the verdicts recorded in the platform library in one transaction."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from rdbridge.config import home_dir
from rdbridge.consumer import verdicts
from rdbridge.consumer.db import init_platform_db, session_scope
from rdbridge.contracts.verify import DatasetInfo, Tolerances, VerifyAllReport, VerifyReport
from rdbridge.verify import candidate as cand_mod
from rdbridge.verify import dataset as ds
from rdbridge.verify.compare import compare
from rdbridge.verify.reference import open_reference, run_reference
from rdbridge.verify.report import write_reports


@dataclass(frozen=True)
class Target:
    """A factor name and its platform implementation: ``kind`` "expr" (Qlib expression) or "impl" (module:func)."""

    name: str
    kind: str
    spec: str
    tol: Tolerances = field(default_factory=Tolerances)


@dataclass(frozen=True)
class Options:
    bundle: Path | None = None
    version: str | None = None
    data: str | None = None
    dataset: str = ds.DEFAULT_SET
    out_dir: Path | None = None
    db_url: str | None = None  # platform DB; None = do not record
    write_html: bool = True


def load_data(opts: Options) -> tuple[pl.DataFrame, DatasetInfo]:
    return ds.user_data(opts.data) if opts.data else ds.standard(opts.dataset)


def _reason(c: object, tol: Tolerances) -> tuple[bool, str]:
    from rdbridge.contracts.verify import Comparison

    assert isinstance(c, Comparison)
    if not c.mask_equal:
        return False, (f"NaN masks differ: {c.nan_reference_only} cells NaN only in the reference, "
                       f"{c.nan_candidate_only} only in the candidate; first at {c.first_differing_date} "
                       f"{c.first_differing_instrument}")
    if c.failing_cells:
        return False, (f"{c.failing_cells} of {c.cells} cells outside |a - b| <= {tol.atol} + {tol.rtol} |b| "
                       f"(max abs error {c.max_abs_error:.3g}); first at {c.first_differing_date} "
                       f"{c.first_differing_instrument}")
    return True, f"all {c.cells} cells equal within tolerance, NaN masks equal"


def verify_targets(targets: Sequence[Target], opts: Options) -> VerifyAllReport:
    """Verify every target against the reference of one rd_factors_lib version on one data set."""
    t0 = time.perf_counter()
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError("a factor is listed twice")
    panel, info = load_data(opts)
    keys = panel.select(pl.col("instrument").cast(pl.Utf8), pl.col("datetime").cast(pl.Datetime("us")))
    stamp = datetime.now(UTC)
    out_dir = opts.out_dir or home_dir() / "verify_reports" / stamp.strftime("%Y%m%dT%H%M%S%fZ")
    with open_reference(opts.bundle, opts.version) as ref:
        ref_vals, ref_err = run_reference(ref, panel, names)
        t_ref = time.perf_counter()
        exprs = {t.name: t.spec for t in targets if t.kind == "expr"}
        impls = {t.name: t.spec for t in targets if t.kind == "impl"}
        cand_e, err_e = cand_mod.run_exprs(panel, exprs) if exprs else (keys, {})
        cand_i, err_i = cand_mod.run_impls(panel, impls) if impls else (keys, {})
        t_cand = time.perf_counter()
        reports: list[VerifyReport] = []
        for t in targets:
            t1 = time.perf_counter()
            frame = cand_e if t.kind == "expr" else cand_i
            error = ref_err.get(t.name) and f"reference: {ref_err[t.name]}" or (err_e | err_i).get(t.name)
            base = dict(factor=t.name, impl_version=ref.version, reference_source=ref.source, candidate_kind=t.kind,
                        candidate=t.spec, dataset=info, tolerances=t.tol, verified_at_utc=stamp.isoformat())
            if error or t.name not in ref_vals.columns or t.name not in frame.columns:
                error = error or "no values produced"
                rep = VerifyReport(**base, verified=False, reason=error, error=error, seconds=0.0)
                reports.append(write_reports(rep, out_dir) if opts.write_html else rep)
                continue
            b = ref_vals[t.name].cast(pl.Float64).to_numpy()
            a = frame[t.name].cast(pl.Float64).to_numpy()
            comp = compare(keys, a, b, t.tol)
            ok, reason = _reason(comp, t.tol)
            rep = VerifyReport(**base, verified=ok, reason=reason, comparison=comp, seconds=time.perf_counter() - t1)
            if opts.write_html:
                rep = write_reports(rep, out_dir, keys, a, b)
            reports.append(rep)
    if opts.db_url:
        engine = init_platform_db(opts.db_url)
        try:
            with session_scope(engine) as s:
                for r in reports:
                    verdicts.record(s, factor=r.factor, verified=r.verified, verified_at=stamp,
                                    impl_version=r.impl_version, dataset_name=info.name, dataset_sha256=info.sha256,
                                    tol=r.tolerances, candidate_kind=r.candidate_kind, candidate=r.candidate,
                                    reason=r.reason, report_path=r.report_json)
        finally:
            engine.dispose()
    n_ok = sum(r.verified for r in reports)
    return VerifyAllReport(impl_version=ref.version, dataset=info, total=len(reports), verified=n_ok,
                           failed=len(reports) - n_ok, seconds=time.perf_counter() - t0,
                           timings={"data_and_reference_s": t_ref - t0, "candidate_s": t_cand - t_ref,
                                    "compare_and_report_s": time.perf_counter() - t_cand},
                           reports=reports)


__all__ = ["Options", "Target", "np", "verify_targets"]
