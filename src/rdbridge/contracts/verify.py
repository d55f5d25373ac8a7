"""Equivalence verification documents: the comparison of a platform implementation with the reference function of
``rd_factors_lib`` at one version, on one data set, and the verdict recorded in the platform library."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

VerdictStatus = Literal["verified", "stale", "failed"]


class Tolerances(BaseModel):
    """A cell passes when both are NaN, or both are numbers with |a - b| <= atol + rtol * |b| (b = reference)."""

    rtol: float = Field(1e-6, ge=0)
    atol: float = Field(1e-6, ge=0)


class DatasetInfo(BaseModel):
    name: str
    sha256: str
    rows: int
    instruments: int
    dates: int
    source: str


class WorstCell(BaseModel):
    date: str
    instrument: str
    reference: float | None
    candidate: float | None
    abs_error: float | None
    kind: Literal["value", "mask"]


class DateCorrelation(BaseModel):
    date: str
    pearson: float | None
    spearman: float | None


class Comparison(BaseModel):
    cells: int
    mask_equal: bool
    nan_reference_only: int
    nan_candidate_only: int
    both_valid: int
    max_abs_error: float | None
    max_rel_error: float | None
    share_within_tolerance: float
    failing_cells: int
    first_differing_date: str | None
    first_differing_instrument: str | None
    pearson_mean: float | None
    pearson_min: float | None
    spearman_mean: float | None
    spearman_min: float | None
    lowest_dates: list[DateCorrelation] = []
    worst_cells: list[WorstCell] = []


class VerifyReport(BaseModel):
    """One verification: what was compared with what, on which data, with which tolerances, and the verdict."""

    factor: str
    verified: bool
    reason: str
    impl_version: str
    reference_source: str
    candidate_kind: Literal["expr", "impl"]
    candidate: str
    dataset: DatasetInfo
    tolerances: Tolerances
    comparison: Comparison | None = None
    error: str | None = None
    verified_at_utc: str
    seconds: float
    report_json: str | None = None
    report_html: str | None = None


class VerifyAllReport(BaseModel):
    impl_version: str
    dataset: DatasetInfo
    total: int
    verified: int
    failed: int
    seconds: float
    timings: dict[str, float] = {}
    reports: list[VerifyReport]


class VerdictDoc(BaseModel):
    """A recorded verdict as the platform library shows it: ``stale`` once the reference has a newer impl_version."""

    factor: str
    status: VerdictStatus
    verified: bool
    verified_at_utc: str
    impl_version: str
    current_impl_version: str | None
    dataset_name: str
    dataset_sha256: str
    tolerances: Tolerances
    candidate: str
    report_path: str | None
