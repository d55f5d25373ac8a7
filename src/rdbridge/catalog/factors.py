"""The factor catalog: Alpha158, the curated package factors and RD-Agent's factors, as one paged list.

Each origin is a `FactorSource` with a rank; the list is ordered by (rank, key) and the cursor holds both, so a page
may span two origins. A new origin (the factor package's `factor_versions`, or factor_meta documents from
materialize enriching RD-Agent rows) is one more `FactorSource` in `SOURCES`; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, or_, select

from rdbridge.catalog.alpha158 import alpha158_entries
from rdbridge.catalog.metrics import key_metrics
from rdbridge.catalog.paging import Filters, PageRequest, text_match
from rdbridge.contracts.catalog import FactorEntry
from rdbridge.registry.models import Factor, Loop

SCOPE = "catalog/factors"
CURSOR_TYPES = (int, str)


class FactorSource(Protocol):
    """One origin of factors: `page` returns up to `limit` (key, entry) pairs with key > `after`, in key order."""

    name: str
    rank: int

    def page(self, conn: Connection, f: Filters, after: str | None, limit: int) -> list[tuple[str, FactorEntry]]: ...


class Alpha158Source:
    """The 158 static definitions (no registry read); updated_since excludes them (they never change)."""

    name = "alpha158"
    rank = 0

    def page(self, conn: Connection, f: Filters, after: str | None, limit: int) -> list[tuple[str, FactorEntry]]:
        if f.updated_since is not None:
            return []
        q = f.q.casefold() if f.q else None
        out: list[tuple[str, FactorEntry]] = []
        for i, e in enumerate(alpha158_entries()):
            key = f"{i:03d}"
            if after is not None and key <= after:
                continue
            tags = ["alpha158", e.group, e.family]
            if f.tag and f.tag not in tags:
                continue
            if q and q not in e.name.casefold() and q not in e.description.casefold() and q not in e.expression.casefold():
                continue
            out.append((key, FactorEntry(id=f"alpha158:{e.name}", name=e.name, source="alpha158",
                                         description=e.description, expression=e.expression, tags=tags,
                                         region=None, freq="day", impl_module="rd_factors_lib.alpha158",
                                         impl_func=e.name)))
            if len(out) == limit:
                break
        return out


_DECISION_TAGS = {"accepted": True, "rejected": False}


def _rdagent_tags(decision: bool | None) -> list[str]:
    return ["rdagent", "accepted" if decision else "undecided" if decision is None else "rejected"]


class RdAgentSource:
    """Every factor implementation RD-Agent wrote (registry `factors`, one per name+code), with its loop's result."""

    name = "rdagent"
    rank = 2

    def page(self, conn: Connection, f: Filters, after: str | None, limit: int) -> list[tuple[str, FactorEntry]]:
        fa, lo = Factor.__table__, Loop.__table__
        stmt = (select(fa.c.factor_id, fa.c.factor_name, fa.c.description, fa.c.formulation, fa.c.variables_json,
                       fa.c.code_sha256, fa.c.created_at_utc, fa.c.experiment_id, fa.c.impl_module, fa.c.impl_func,
                       fa.c.impl_version, lo.c.decision, lo.c.metrics_json, lo.c.updated_at_utc)
                .join(lo, lo.c.experiment_id == fa.c.experiment_id)
                .order_by(fa.c.factor_id).limit(limit))
        if after is not None:
            stmt = stmt.where(fa.c.factor_id > after)
        if f.tag and f.tag != "rdagent":
            if f.tag == "undecided":
                stmt = stmt.where(lo.c.decision.is_(None))
            elif f.tag in _DECISION_TAGS:
                stmt = stmt.where(lo.c.decision == _DECISION_TAGS[f.tag])
            else:
                return []
        if f.action:
            stmt = stmt.where(lo.c.action == f.action)
        if f.has_result is not None:
            stmt = stmt.where(lo.c.has_result == int(f.has_result))
        if f.q:
            stmt = stmt.where(text_match(f.q, fa.c.factor_name, fa.c.description, fa.c.formulation))
        if f.updated_since is not None:
            stmt = stmt.where(or_(lo.c.updated_at_utc >= f.updated_since, fa.c.created_at_utc >= f.updated_since))
        out = []
        for r in conn.execute(stmt):
            updated = max(r.updated_at_utc, r.created_at_utc)
            out.append((r.factor_id, FactorEntry(
                id=f"rdagent:{r.factor_id}", name=r.factor_name, source="rdagent", description=r.description,
                formula_hint=r.formulation, variables=r.variables_json, tags=_rdagent_tags(r.decision),
                freq="day", best_metrics=key_metrics(r.metrics_json) or None, experiment_id=r.experiment_id,
                factor_id=r.factor_id, code_sha256=r.code_sha256, created_at_utc=r.created_at_utc,
                impl_module=r.impl_module, impl_func=r.impl_func, impl_version=r.impl_version,  # set once promoted
                updated_at_utc=updated)))
        return out


SOURCES: tuple[FactorSource, ...] = (Alpha158Source(), RdAgentSource())
"""In rank order. The factor package's source (rank 1) joins here when its registry table exists."""


def factor_page(conn: Connection, f: Filters, page: PageRequest,
                sources: Sequence[FactorSource] = SOURCES) -> tuple[list[FactorEntry], list[Any] | None]:
    """Up to `page.limit` factors after `page.after` = [rank, key], and the key of the last one if more may follow."""
    after_rank, after_key = (page.after[0], page.after[1]) if page.after else (-1, None)
    items: list[FactorEntry] = []
    last: list[Any] | None = None
    for src in sources:
        if f.source and src.name != f.source or src.rank < after_rank:
            continue
        want = page.limit - len(items)
        got = src.page(conn, f, after_key if src.rank == after_rank else None, want)
        items += [e for _, e in got]
        if got:
            last = [src.rank, got[-1][0]]
        if len(items) >= page.limit:
            return items, last
    return items, None


