"""The materialization state machine of a loop, safe under many workers on SQLite and PostgreSQL.

    None ──mark_pending──▶ pending ──claim──▶ running ──complete──▶ done
     (loop not final yet)     ▲   ▲             │  ▲ └──fail──▶ failed ──retry──┐
                              │   │             │  └─ claim again when the lease has expired
                              │   └─────────────┼──────────────────────────────┘
                              └── reset_to_pending (from any state, when ingest sees a finished loop change)

Every transition is one conditional UPDATE (`WHERE id = ? AND materialization_status IN (allowed sources)`), so
a transition that lost a race changes nothing and raises `IllegalTransition` instead of overwriting another worker's
work. A worker finishing a loop must still hold its lease (`LeaseLost` otherwise). `claim_next` uses
`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL and a single `UPDATE ... RETURNING` on SQLite, so two workers
never get the same loop. Run a claim in its own short transaction (e.g. `session_scope(engine)`) and commit it
before doing the work, so other workers see the lease. All times are UTC; `now` parameters exist for tests.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from rdbridge.registry.models import FINAL_LOOP_STATUSES, Loop
from rdbridge.registry.types import utcnow

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "TRANSITIONS",
    "IllegalTransition",
    "LeaseLost",
    "Transition",
    "claim_next",
    "complete",
    "fail",
    "initial_materialization_status",
    "mark_pending",
    "renew_lease",
    "reset_to_pending",
    "retry",
]

DEFAULT_LEASE_SECONDS = 600
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


@dataclass(frozen=True)
class Transition:
    """A named move: from any of `sources` to `target`."""

    name: str
    sources: frozenset[str | None]
    target: str


TRANSITIONS: dict[str, Transition] = {
    t.name: t
    for t in (
        Transition("mark_pending", frozenset({None}), PENDING),
        Transition("claim", frozenset({PENDING, RUNNING}), RUNNING),  # RUNNING only when its lease has expired
        Transition("renew_lease", frozenset({RUNNING}), RUNNING),
        Transition("complete", frozenset({RUNNING}), DONE),
        Transition("fail", frozenset({RUNNING}), FAILED),
        Transition("retry", frozenset({FAILED}), PENDING),
        Transition("reset_to_pending", frozenset({None, PENDING, RUNNING, DONE, FAILED}), PENDING),
    )
}


class IllegalTransition(Exception):
    """A state change that the machine does not allow from the loop's current state."""

    def __init__(self, experiment_id: str, transition: str, current: str | None, detail: str = "") -> None:
        t = TRANSITIONS[transition]
        allowed = ", ".join(sorted("None" if s is None else s for s in t.sources))
        message = (
            f"loop {experiment_id}: cannot {transition} (-> {t.target}) from materialization_status="
            f"{current!r}; allowed from: {allowed}"
        )
        if detail:
            message += f". {detail}"
        super().__init__(message)
        self.experiment_id = experiment_id
        self.transition = transition
        self.current = current


class LeaseLost(IllegalTransition):
    """The worker no longer holds the loop's lease (it expired and another worker claimed it, or ingest reset it)."""


def initial_materialization_status(loop_status: str) -> str | None:
    """What a newly ingested loop starts with: 'pending' once RD-Agent has finished it, else None."""
    return PENDING if loop_status in FINAL_LOOP_STATUSES else None


def _status_in(sources: frozenset[str | None]) -> ColumnElement[bool]:
    col = Loop.materialization_status
    named = sorted(s for s in sources if s is not None)
    clauses: list[ColumnElement[bool]] = []
    if named:
        clauses.append(col.in_(named))
    if None in sources:
        clauses.append(col.is_(None))
    return or_(*clauses)


def _apply(
    session: Session,
    loop: Loop,
    name: str,
    values: dict[str, Any],
    extra: list[ColumnElement[bool]] | None = None,
    explain: Any = None,
) -> Loop:
    """Run transition `name` on `loop` as one conditional UPDATE; raise if the row was not in a source state."""
    t = TRANSITIONS[name]
    session.flush()  # the database row decides, not a possibly stale object
    stmt = (
        update(Loop)
        .where(Loop.id == loop.id, _status_in(t.sources), *(extra or []))
        .values(materialization_status=t.target, **values)
        .execution_options(synchronize_session=False)
    )
    if session.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(loop)
        detail = explain(loop) if explain is not None else ""
        cls = LeaseLost if name in ("complete", "fail", "renew_lease") else IllegalTransition
        raise cls(loop.experiment_id, name, loop.materialization_status, detail)
    set_committed_value(loop, "materialization_status", t.target)
    for key, value in values.items():
        set_committed_value(loop, key, value)
    return loop


def _stamp(now: datetime) -> dict[str, Any]:
    return {"materialization_updated_at_utc": now, "updated_at_utc": now}


def _no_lease() -> dict[str, Any]:
    return {"materialization_lease_owner": None, "materialization_lease_expires_at_utc": None}


def mark_pending(session: Session, loop: Loop, *, now: datetime | None = None) -> Loop:
    """None -> pending: RD-Agent finished the loop (completed or failed), so its artifacts can be built."""
    if loop.status not in FINAL_LOOP_STATUSES:
        raise IllegalTransition(
            loop.experiment_id,
            "mark_pending",
            loop.materialization_status,
            f"the loop is still {loop.status!r}; only completed or failed loops are materialized",
        )
    return _apply(session, loop, "mark_pending", _stamp(now or utcnow()), [Loop.status.in_(FINAL_LOOP_STATUSES)])


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        Loop.materialization_status == PENDING,
        and_(Loop.materialization_status == RUNNING, Loop.materialization_lease_expires_at_utc < now),
    )


def claim_next(
    session: Session,
    owner: str,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    *,
    now: datetime | None = None,
    only: Collection[int] | None = None,
) -> Loop | None:
    """pending -> running (or take over a running loop whose lease expired) for `owner`; None when nothing to do.

    The lease lasts `lease_seconds`; renew it with `renew_lease` for long work. Attempts are counted. `only`
    restricts the claim to these loop row ids (`Loop.id`), e.g. one task run.
    """
    if not owner:
        raise ValueError("claim_next needs a non-empty owner (e.g. f'{hostname}:{pid}:{worker}')")
    now = now or utcnow()
    session.flush()
    claimable = _claimable(now) if only is None else and_(_claimable(now), Loop.id.in_(sorted(only)))
    values = {
        "materialization_status": RUNNING,
        "materialization_lease_owner": owner,
        "materialization_lease_expires_at_utc": now + timedelta(seconds=lease_seconds),
        "materialization_attempts": Loop.materialization_attempts + 1,
        "materialization_error": None,
        **_stamp(now),
    }
    if session.get_bind().dialect.name == "postgresql":
        pick = (
            select(Loop.id).where(claimable).order_by(Loop.id).limit(1).with_for_update(skip_locked=True)
        )
        loop_id = session.execute(pick).scalar_one_or_none()
        if loop_id is None:
            return None
        session.execute(
            update(Loop).where(Loop.id == loop_id).values(**values).execution_options(synchronize_session=False)
        )
    else:
        # One statement: SQLite holds the write lock from the sub-select to the write, so no one else slips in.
        first = select(Loop.id).where(claimable).order_by(Loop.id).limit(1).scalar_subquery()
        stmt = (
            update(Loop)
            .where(Loop.id == first, claimable)
            .values(**values)
            .returning(Loop.id)
            .execution_options(synchronize_session=False)
        )
        loop_id = session.execute(stmt).scalar_one_or_none()
        if loop_id is None:
            return None
    return session.get(Loop, loop_id, populate_existing=True)


def _lease_detail(owner: str) -> Any:
    def explain(loop: Loop) -> str:
        if loop.materialization_status != RUNNING:
            return f"worker {owner!r} no longer holds it (status is now {loop.materialization_status!r})"
        return f"the lease belongs to {loop.materialization_lease_owner!r}, not {owner!r}; drop this work"

    return explain


def renew_lease(
    session: Session, loop: Loop, owner: str, lease_seconds: float = DEFAULT_LEASE_SECONDS, *, now: datetime | None = None
) -> Loop:
    """running -> running: extend `owner`'s lease (a heartbeat for long materializations)."""
    now = now or utcnow()
    values = {"materialization_lease_expires_at_utc": now + timedelta(seconds=lease_seconds), **_stamp(now)}
    return _apply(
        session, loop, "renew_lease", values, [Loop.materialization_lease_owner == owner], _lease_detail(owner)
    )


def complete(session: Session, loop: Loop, owner: str, *, now: datetime | None = None) -> Loop:
    """running -> done, only by the lease holder."""
    values = {**_no_lease(), "materialization_error": None, **_stamp(now or utcnow())}
    return _apply(session, loop, "complete", values, [Loop.materialization_lease_owner == owner], _lease_detail(owner))


def fail(session: Session, loop: Loop, owner: str, error: str, *, now: datetime | None = None) -> Loop:
    """running -> failed with a message for the user, only by the lease holder."""
    values = {**_no_lease(), "materialization_error": error, **_stamp(now or utcnow())}
    return _apply(session, loop, "fail", values, [Loop.materialization_lease_owner == owner], _lease_detail(owner))


def retry(session: Session, loop: Loop, *, now: datetime | None = None) -> Loop:
    """failed -> pending: try again (the attempt counter keeps counting)."""
    values = {**_no_lease(), "materialization_error": None, **_stamp(now or utcnow())}
    return _apply(session, loop, "retry", values)


def reset_to_pending(session: Session, loop: Loop, *, now: datetime | None = None) -> Loop:
    """any -> pending: ingest saw a finished loop change, so its artifacts must be rebuilt from scratch.

    A worker holding the lease loses it (its `complete` raises `LeaseLost`); the attempt counter restarts.
    """
    if loop.status not in FINAL_LOOP_STATUSES:
        raise IllegalTransition(
            loop.experiment_id,
            "reset_to_pending",
            loop.materialization_status,
            f"the loop is still {loop.status!r}; only completed or failed loops are materialized",
        )
    values = {**_no_lease(), "materialization_error": None, "materialization_attempts": 0, **_stamp(now or utcnow())}
    return _apply(session, loop, "reset_to_pending", values, [Loop.status.in_(FINAL_LOOP_STATUSES)])
