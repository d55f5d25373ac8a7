"""Reading the platform library (for the UI and scripts) and writing the user's own annotations.

Annotations (tags, marks, notes) are keyed by what the user sees, e.g. a factor's name, and live in tables sync
never writes, so a re-sync cannot lose them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.orm import Session

from rdbridge.consumer.models import (
    LibAlpha158,
    LibArtifactFile,
    LibExperiment,
    LibFactor,
    LibModel,
    LibStrategy,
    SyncRun,
    UserMark,
    UserNote,
    UserTag,
)

MARKS = ("candidate", "watch", "verified", "rejected")
TARGET_KINDS = ("factor", "experiment", "strategy", "model")
FACTOR_SORTS = {"name": LibFactor.name, "source": LibFactor.source, "created": LibFactor.created_at_utc,
                "updated": LibFactor.remote_updated_at_utc}
MAX_TAG = 64
MAX_NOTE = 10_000


class AnnotationError(ValueError):
    """A tag, mark or note the user typed that cannot be stored (the message says why)."""


@dataclass
class FactorPage:
    rows: list[LibFactor]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_factors(s: Session, *, q: str = "", source: str = "", tag: str = "", mark: str = "", sort: str = "name",
                 desc: bool = False, page: int = 1, per_page: int = 50, metric: str = "",
                 metric_min: float | None = None, metric_max: float | None = None, verdict: str = "") -> FactorPage:
    """Library factors matching the filters, one page, in a stable order (sort key, then id).

    `metric` names a key of `best_metrics`: `metric_min` / `metric_max` bound it, and `sort="metric"` orders by it."""
    stmt: Select[Any] = select(LibFactor).where(LibFactor.in_library.is_(True))
    value = LibFactor.best_metrics[metric].as_float() if metric else None
    if value is not None and metric_min is not None:
        stmt = stmt.where(value >= metric_min)
    if value is not None and metric_max is not None:
        stmt = stmt.where(value <= metric_max)
    if q:
        pat = _like(q.strip())
        stmt = stmt.where(or_(LibFactor.name.ilike(pat, escape="\\"), LibFactor.description.ilike(pat, escape="\\"),
                              LibFactor.expression.ilike(pat, escape="\\"),
                              LibFactor.formula_hint.ilike(pat, escape="\\")))
    if source:
        stmt = stmt.where(LibFactor.source == source)
    if tag:
        stmt = stmt.where(LibFactor.name.in_(select(UserTag.target_key).where(
            UserTag.target_kind == "factor", UserTag.tag == tag)))
    if mark:
        stmt = stmt.where(LibFactor.name.in_(select(UserMark.target_key).where(
            UserMark.target_kind == "factor", UserMark.mark == mark)))
    if verdict:  # verified / stale / failed: the newest verdict of `rdbridge verify`
        from rdbridge.consumer.verdicts import names_with_status

        stmt = stmt.where(LibFactor.name.in_(sorted(names_with_status(s, verdict))))
    total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    col: Any = value if sort == "metric" and value is not None else FACTOR_SORTS.get(sort, LibFactor.name)
    page = max(1, page)
    order = col.desc() if desc else col.asc()
    stmt = stmt.order_by(order.nulls_last(), LibFactor.id).offset((page - 1) * per_page).limit(per_page)
    return FactorPage(rows=list(s.scalars(stmt)), total=total, page=page, per_page=per_page)


def factor_versions(s: Session, name: str) -> list[LibFactor]:
    """Every library entry under this exact name (Alpha158, package and each RD-Agent implementation)."""
    return list(s.scalars(select(LibFactor).where(LibFactor.name == name, LibFactor.in_library.is_(True))
                          .order_by(LibFactor.source, LibFactor.created_at_utc, LibFactor.id)))


def metric_keys(s: Session, sample: int = 2000) -> list[str]:
    """The metric names seen in the library's best metrics (from a sample of rows, for the filter's choices)."""
    keys: set[str] = set()
    for m in s.scalars(select(LibFactor.best_metrics).where(LibFactor.in_library.is_(True),
                                                            LibFactor.best_metrics.is_not(None)).limit(sample)):
        if isinstance(m, dict):
            keys.update(k for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool))
    return sorted(keys)


def sources(s: Session) -> list[str]:
    return list(s.scalars(select(LibFactor.source).where(LibFactor.in_library.is_(True)).distinct()
                          .order_by(LibFactor.source)))


def all_tags(s: Session, kind: str = "factor") -> list[str]:
    return list(s.scalars(select(UserTag.tag).where(UserTag.target_kind == kind).distinct().order_by(UserTag.tag)))


def tags_by_key(s: Session, kind: str, keys: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if keys:
        for key, tag in s.execute(select(UserTag.target_key, UserTag.tag).where(
                UserTag.target_kind == kind, UserTag.target_key.in_(keys)).order_by(UserTag.tag)):
            out.setdefault(key, []).append(tag)
    return out


def marks_by_key(s: Session, kind: str, keys: list[str]) -> dict[str, str]:
    if not keys:
        return {}
    return dict(s.execute(select(UserMark.target_key, UserMark.mark).where(
        UserMark.target_kind == kind, UserMark.target_key.in_(keys))).all())


def notes(s: Session, kind: str, key: str) -> list[UserNote]:
    return list(s.scalars(select(UserNote).where(UserNote.target_kind == kind, UserNote.target_key == key)
                          .order_by(UserNote.created_at_utc, UserNote.id)))


def _check_target(kind: str, key: str) -> None:
    if kind not in TARGET_KINDS:
        raise AnnotationError(f"unknown target kind {kind!r} (one of {', '.join(TARGET_KINDS)})")
    if not key or len(key) > 600:
        raise AnnotationError("the target key must be 1 to 600 characters")


def add_tag(s: Session, kind: str, key: str, tag: str) -> None:
    _check_target(kind, key)
    tag = " ".join(tag.split())
    if not tag or len(tag) > MAX_TAG:
        raise AnnotationError(f"a tag is 1 to {MAX_TAG} characters")
    exists = s.scalar(select(UserTag.id).where(UserTag.target_kind == kind, UserTag.target_key == key,
                                               UserTag.tag == tag))
    if exists is None:
        s.add(UserTag(target_kind=kind, target_key=key, tag=tag, created_at_utc=datetime.now(UTC)))


def remove_tag(s: Session, kind: str, key: str, tag: str) -> None:
    _check_target(kind, key)
    s.execute(delete(UserTag).where(UserTag.target_kind == kind, UserTag.target_key == key, UserTag.tag == tag))


def set_mark(s: Session, kind: str, key: str, mark: str) -> None:
    """Set the one mark of a target; an empty mark clears it."""
    _check_target(kind, key)
    if mark and mark not in MARKS:
        raise AnnotationError(f"unknown mark {mark!r} (one of {', '.join(MARKS)})")
    s.execute(delete(UserMark).where(UserMark.target_kind == kind, UserMark.target_key == key))
    if mark:
        s.add(UserMark(target_kind=kind, target_key=key, mark=mark, updated_at_utc=datetime.now(UTC)))


def add_note(s: Session, kind: str, key: str, text: str) -> None:
    _check_target(kind, key)
    text = text.strip()
    if not text or len(text) > MAX_NOTE:
        raise AnnotationError(f"a note is 1 to {MAX_NOTE} characters")
    s.add(UserNote(target_kind=kind, target_key=key, text=text, created_at_utc=datetime.now(UTC)))


def experiments(s: Session, *, status: str = "", task_run: str = "") -> list[LibExperiment]:
    stmt = select(LibExperiment)
    if status == "library":
        stmt = stmt.where(LibExperiment.in_library.is_(True))
    elif status:
        stmt = stmt.where(LibExperiment.materialization_status == status)
    if task_run:
        stmt = stmt.where(LibExperiment.task_run_id == task_run)
    return list(s.scalars(stmt.order_by(LibExperiment.task_run_id, LibExperiment.loop_id)))


def experiment(s: Session, task_run_id: str, loop_id: int) -> LibExperiment | None:
    return s.scalar(select(LibExperiment).where(LibExperiment.task_run_id == task_run_id,
                                                LibExperiment.loop_id == loop_id))


def experiment_files(s: Session, experiment_id: str) -> list[LibArtifactFile]:
    return list(s.scalars(select(LibArtifactFile).where(LibArtifactFile.experiment_id == experiment_id)
                          .order_by(LibArtifactFile.artifact_type, LibArtifactFile.artifact_name,
                                    LibArtifactFile.path)))


def artifact_file(s: Session, experiment_id: str, file_id: int) -> LibArtifactFile | None:
    return s.scalar(select(LibArtifactFile).where(LibArtifactFile.experiment_id == experiment_id,
                                                  LibArtifactFile.file_id == file_id))


def experiment_factors(s: Session, experiment_id: str) -> list[LibFactor]:
    return list(s.scalars(select(LibFactor).where(LibFactor.experiment_id == experiment_id).order_by(LibFactor.name)))


def strategies(s: Session) -> list[LibStrategy]:
    return list(s.scalars(select(LibStrategy).order_by(LibStrategy.strategy_id)))


def strategy(s: Session, strategy_id: str) -> LibStrategy | None:
    return s.get(LibStrategy, strategy_id)


def models(s: Session) -> list[LibModel]:
    return list(s.scalars(select(LibModel).where(LibModel.in_library.is_(True))
                          .order_by(LibModel.experiment_id, LibModel.task_index)))


def model(s: Session, experiment_id: str, task_index: int) -> LibModel | None:
    return s.get(LibModel, (experiment_id, task_index))


def alpha158(s: Session) -> list[LibAlpha158]:
    return list(s.scalars(select(LibAlpha158).order_by(LibAlpha158.group, LibAlpha158.name)))


def last_sync(s: Session) -> SyncRun | None:
    return s.scalar(select(SyncRun).order_by(SyncRun.id.desc()).limit(1))
