"""Cell-by-cell comparison of a candidate column with the reference column on the same (instrument, datetime) rows,
vectorised in numpy and Polars: NaN masks, errors, tolerance, per-date correlations, worst and first differences."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from rdbridge.contracts.verify import Comparison, DateCorrelation, Tolerances, WorstCell

N_WORST = 10
N_LOWEST_DATES = 5


def _f(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def failing_cells(cand: np.ndarray, ref: np.ndarray, tol: Tolerances) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fail, mask_mismatch, scaled_error) per cell: a cell fails on a NaN-mask difference or when
    |a - b| > atol + rtol |b|; equal infinities pass."""
    a, b = cand.astype(np.float64), ref.astype(np.float64)
    na, nb = np.isnan(a), np.isnan(b)
    mismatch = na != nb
    both = ~na & ~nb
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - b)
        bound = tol.atol + tol.rtol * np.abs(b)
        equal = a == b
        scaled = np.where(both & ~equal, diff / np.where(bound > 0, bound, np.inf), 0.0)
    scaled = np.where(np.isnan(scaled), np.inf, scaled)  # inf vs finite, inf vs -inf
    value_fail = both & ~equal & ~(diff <= bound)
    return mismatch | value_fail, mismatch, scaled


def _date_correlations(keys: pl.DataFrame, a: np.ndarray, b: np.ndarray) -> pl.DataFrame:
    ok = np.isfinite(a) & np.isfinite(b)
    frame = pl.DataFrame({"datetime": keys["datetime"], "a": a, "b": b}).filter(pl.Series(ok))
    return (frame.group_by("datetime").agg(
        pl.len().alias("n"),
        pl.corr("a", "b", method="pearson").alias("pearson"),
        pl.corr("a", "b", method="spearman").alias("spearman"),
    ).filter(pl.col("n") >= 3).sort("datetime")
        .with_columns(pl.col("pearson").fill_nan(None), pl.col("spearman").fill_nan(None)))


def compare(keys: pl.DataFrame, cand: np.ndarray, ref: np.ndarray, tol: Tolerances) -> Comparison:
    """Compare ``cand`` with ``ref`` on the rows of ``keys`` (columns instrument, datetime)."""
    a, b = cand.astype(np.float64), ref.astype(np.float64)
    fail, mismatch, scaled = failing_cells(a, b, tol)
    na, nb = np.isnan(a), np.isnan(b)
    both = ~na & ~nb
    finite = both & np.isfinite(a) & np.isfinite(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        absdiff = np.abs(a - b)
        rel = np.where(finite & (b != 0), absdiff / np.abs(b), np.where(finite & (absdiff == 0), 0.0, np.nan))
    dates = keys["datetime"].to_numpy()
    insts = keys["instrument"].to_numpy()
    n = len(a)
    first_date = first_inst = None
    if fail.any():
        idx = np.flatnonzero(fail)
        d0 = dates[idx].min()
        at = idx[dates[idx] == d0]
        first_date, first_inst = str(np.datetime_as_string(d0, unit="D")), str(min(insts[at]))
    worst: list[WorstCell] = []
    mm_idx = np.flatnonzero(mismatch)
    if mm_idx.size:
        mm_idx = mm_idx[np.lexsort((insts[mm_idx], dates[mm_idx]))][:N_WORST // 2 if fail.sum() > mm_idx.size else N_WORST]
    val_idx = np.flatnonzero(fail & ~mismatch)
    if val_idx.size:
        val_idx = val_idx[np.argsort(-scaled[val_idx], kind="stable")][:N_WORST - mm_idx.size]
    for i, kind in [(i, "mask") for i in mm_idx] + [(i, "value") for i in val_idx]:
        worst.append(WorstCell(date=str(np.datetime_as_string(dates[i], unit="D")), instrument=str(insts[i]),
                               reference=_f(b[i]), candidate=_f(a[i]),
                               abs_error=_f(absdiff[i]) if both[i] else None, kind=kind))  # type: ignore[arg-type]
    corr = _date_correlations(keys, a, b)
    p, s = corr["pearson"].drop_nulls(), corr["spearman"].drop_nulls()
    lowest = corr.drop_nulls("pearson").sort("pearson").head(N_LOWEST_DATES)
    return Comparison(
        cells=n,
        mask_equal=not mismatch.any(),
        nan_reference_only=int((nb & ~na).sum()),
        nan_candidate_only=int((na & ~nb).sum()),
        both_valid=int(both.sum()),
        max_abs_error=_f(absdiff[finite].max()) if finite.any() else None,
        max_rel_error=_f(np.nanmax(rel)) if np.isfinite(rel).any() else None,
        share_within_tolerance=float(1.0 - fail.sum() / n) if n else 1.0,
        failing_cells=int(fail.sum()),
        first_differing_date=first_date,
        first_differing_instrument=first_inst,
        pearson_mean=_f(p.mean()) if len(p) else None,
        pearson_min=_f(p.min()) if len(p) else None,
        spearman_mean=_f(s.mean()) if len(s) else None,
        spearman_min=_f(s.min()) if len(s) else None,
        lowest_dates=[DateCorrelation(date=str(r["datetime"].date()), pearson=r["pearson"], spearman=r["spearman"])
                      for r in lowest.iter_rows(named=True)],
        worst_cells=worst,
    )
