"""Verdicts in the platform library: record one, and read the newest per factor with its status. A verdict is
``stale`` when the factor's reference now has a newer impl_version than the one it was verified against."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rdbridge.consumer.models import FactorVerdict, LibFactor
from rdbridge.contracts.verify import Tolerances, VerdictDoc

STATUSES = ("verified", "stale", "failed")


def version_key(v: str) -> tuple:
    """Orders '0.10.0' after '0.9.1' (numeric parts as numbers)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+]", v))


def current_versions(s: Session, names: Iterable[str] | None = None) -> dict[str, str]:
    """Factor name -> the newest impl_version the platform library knows for its reference."""
    q = select(LibFactor.name, LibFactor.impl_version).where(LibFactor.impl_version.is_not(None))
    if names is not None:
        q = q.where(LibFactor.name.in_(list(names)))
    out: dict[str, str] = {}
    for name, v in s.execute(q):
        if name not in out or version_key(v) > version_key(out[name]):
            out[name] = v
    return out


def record(s: Session, *, factor: str, verified: bool, verified_at: datetime, impl_version: str, dataset_name: str,
           dataset_sha256: str, tol: Tolerances, candidate_kind: str, candidate: str, reason: str,
           report_path: str | None) -> None:
    s.add(FactorVerdict(factor_name=factor, verified=verified, verified_at_utc=verified_at, impl_version=impl_version,
                        dataset_name=dataset_name, dataset_sha256=dataset_sha256, rtol=tol.rtol, atol=tol.atol,
                        candidate_kind=candidate_kind, candidate=candidate, reason=reason, report_path=report_path))


def _doc(v: FactorVerdict, current: str | None) -> VerdictDoc:
    if not v.verified:
        status = "failed"
    elif current is not None and version_key(current) > version_key(v.impl_version):
        status = "stale"
    else:
        status = "verified"
    return VerdictDoc(factor=v.factor_name, status=status, verified=v.verified,  # type: ignore[arg-type]
                      verified_at_utc=v.verified_at_utc.isoformat(), impl_version=v.impl_version,
                      current_impl_version=current, dataset_name=v.dataset_name, dataset_sha256=v.dataset_sha256,
                      tolerances=Tolerances(rtol=v.rtol, atol=v.atol), candidate=v.candidate,
                      report_path=v.report_path)


def latest(s: Session, names: Iterable[str] | None = None) -> dict[str, VerdictDoc]:
    """Factor name -> its newest verdict with status verified / stale / failed."""
    newest = select(FactorVerdict.factor_name, func.max(FactorVerdict.id).label("id")).group_by(FactorVerdict.factor_name)
    if names is not None:
        newest = newest.where(FactorVerdict.factor_name.in_(list(names)))
    ids = [r.id for r in s.execute(newest)]
    rows = s.scalars(select(FactorVerdict).where(FactorVerdict.id.in_(ids))).all() if ids else []
    current = current_versions(s, [r.factor_name for r in rows])
    return {r.factor_name: _doc(r, current.get(r.factor_name)) for r in sorted(rows, key=lambda r: r.factor_name)}


def names_with_status(s: Session, status: str) -> set[str]:
    """Factor names whose newest verdict has ``status`` (the UI's /factors filter)."""
    return {n for n, d in latest(s).items() if d.status == status}
