"""JSON documents of ``rdbridge factorlib``: a promotion report and the package's version list."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FactorOutcome(BaseModel):
    """What happened to one factor of one loop: promoted (new or changed code), unchanged, or refused (with why)."""

    model_config = ConfigDict(extra="forbid")

    experiment_id: str
    factor_name: str
    factor_id: str | None
    status: str
    """``added``, ``changed``, ``unchanged``, ``superseded`` (newer code of the same name won in the same run) or
    ``refused``."""
    impl_module: str | None = None
    impl_func: str | None = None
    impl_version: str | None = None
    reason: str = ""
    stored_result: str = ""
    """For a newly checked factor: how its output compares with the workspace's result.h5 (identical, equal within
    1e-12, absent)."""


class PromotionReport(BaseModel):
    """The result of one ``factorlib promote``: the version before and after, and every factor's outcome."""

    model_config = ConfigDict(extra="forbid")

    ok: bool = True
    """False when any factor was refused (the CLI then exits 1, as ingest does for loop errors)."""
    package_path: str
    version_before: str
    version_after: str
    snapshot_sha256: str | None = None
    factors: list[FactorOutcome]


class PackageVersionDoc(BaseModel):
    """One version of the package as ``factorlib versions --json`` lists it."""

    model_config = ConfigDict(extra="forbid")

    version: str
    sha256: str
    archive_path: str
    size_bytes: int
    added: list[str]
    changed: list[str]
    created_at_utc: str
