"""The factor catalog: Alpha158, the curated package factors and RD-Agent's factors, as one paged list.

Each origin is a `FactorSource` with a rank; the list is ordered by (rank, key) and the cursor holds both, so a page
may span two origins: Alpha158 (rank 0), the curated factors of the factor package (rank 1, read from its registered
snapshot as text, never imported) and RD-Agent's implementations (rank 2, with the package pointers of promoted ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, or_, select

from rdbridge.catalog.alpha158 import alpha158_entries
from rdbridge.catalog.documents import loop_documents
from rdbridge.catalog.metrics import key_metrics
from rdbridge.catalog.package_factors import PackageFactor, PackageIndex, package_index
from rdbridge.catalog.paging import Filters, PageRequest, text_match
from rdbridge.config import artifact_root
from rdbridge.contracts.artifacts import FactorMeta
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


def _formula(p: PackageFactor) -> str | None:
    """The docstring's first paragraph when it is the formula (`NAME = ...`), as the package writes them."""
    first = p.doc.split("\n\n", 1)[0].strip()
    return " ".join(first.split()) if first.startswith(f"{p.name} =") else None


def package_entry(index: PackageIndex, p: PackageFactor) -> FactorEntry:
    return FactorEntry(id=f"package:{p.name}", name=p.name, source="package", description=p.doc or None,
                       formula_hint=_formula(p), variables={f: "panel field" for f in p.fields} or None,
                       tags=["package", p.module], freq="day", align="close", nan_policy="keep",
                       created_at_utc=index.created_at_utc, updated_at_utc=index.created_at_utc,
                       impl_module=f"rd_factors_lib.{p.module}", impl_func=p.func, impl_version=index.version)


class PackageSource:
    """The curated factors of the latest registered rd_factors_lib (or the shipped one before any registration).

    Key: `module/name`. updated_since keeps them when their version was registered at or after it (the shipped
    package, never registered, has no time and is excluded like Alpha158)."""

    name = "package"
    rank = 1

    def __init__(self, store_root: Path | None = None) -> None:
        self.store_root = store_root

    def page(self, conn: Connection, f: Filters, after: str | None, limit: int) -> list[tuple[str, FactorEntry]]:
        index = package_index(conn, self.store_root if self.store_root is not None else artifact_root())
        if index is None:
            return []
        if f.updated_since is not None and (index.created_at_utc is None or index.created_at_utc < f.updated_since):
            return []
        q = f.q.casefold() if f.q else None
        keyed = sorted((f"{p.module}/{p.name}", p) for p in index.factors)
        out: list[tuple[str, FactorEntry]] = []
        for key, p in keyed:
            if after is not None and key <= after:
                continue
            if f.tag and f.tag not in ("package", p.module):
                continue
            if q and q not in p.name.casefold() and q not in p.doc.casefold():
                continue
            out.append((key, package_entry(index, p)))
            if len(out) == limit:
                break
        return out


_DECISION_TAGS = {"accepted": True, "rejected": False}


def _rdagent_tags(decision: bool | None) -> list[str]:
    return ["rdagent", "accepted" if decision else "undecided" if decision is None else "rejected"]


class RdAgentSource:
    """Every factor implementation RD-Agent wrote (registry `factors`, one per name+code), with its loop's result;
    `region`, `align` and `nan_policy` from the loop's materialized factor_meta.json (null before)."""

    name = "rdagent"
    rank = 2

    def __init__(self, store_root: Path | None = None) -> None:
        self.store_root = store_root

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
        rows = conn.execute(stmt).all()
        metas = loop_documents(conn, self.store_root if self.store_root is not None else artifact_root(),
                               "factor_meta.json", FactorMeta, sorted({r.experiment_id for r in rows}))
        meta = {(eid, m.factor_id): m for eid, doc in metas.items() for m in doc.factors if m.factor_id}
        out = []
        for r in rows:
            updated = max(r.updated_at_utc, r.created_at_utc)
            m = meta.get((r.experiment_id, r.factor_id))
            out.append((r.factor_id, FactorEntry(
                id=f"rdagent:{r.factor_id}", name=r.factor_name, source="rdagent", description=r.description,
                formula_hint=r.formulation, variables=r.variables_json, tags=_rdagent_tags(r.decision),
                freq="day", region=m.region if m else None, align=m.align if m else None,
                nan_policy=m.nan_policy if m else None,
                best_metrics=key_metrics(r.metrics_json) or None, experiment_id=r.experiment_id,
                factor_id=r.factor_id, code_sha256=r.code_sha256, created_at_utc=r.created_at_utc,
                impl_module=r.impl_module, impl_func=r.impl_func, impl_version=r.impl_version,  # set once promoted
                updated_at_utc=updated)))
        return out


def factor_sources(store_root: Path | None = None) -> tuple[FactorSource, ...]:
    """Every origin in rank order; `store_root`: the artifact store holding package snapshots (default: config)."""
    return (Alpha158Source(), PackageSource(store_root), RdAgentSource(store_root))


SOURCES: tuple[FactorSource, ...] = factor_sources()


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


