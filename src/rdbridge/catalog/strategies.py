"""The strategy catalog: one entry per distinct strategy configuration seen in loops.

Until materialize writes strategy.json (the parsed config: topk, n_drop, benchmark, costs ...), a configuration is
identified by content: the set of (path, sha256) of the Qlib config files (`conf*.yaml`) in a loop's experiment
workspace, as ingest registered them. Loops whose workspaces hold byte-identical configs share one entry.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from rdbridge.catalog.metrics import key_metrics
from rdbridge.catalog.paging import Filters, PageRequest
from rdbridge.contracts.catalog import StrategyConfigFile, StrategyEntry, StrategyLoop
from rdbridge.registry.models import Artifact, ArtifactFile, Loop

SCOPE = "catalog/strategies"
CURSOR_TYPES = (str,)


def _is_config(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return "/" not in path and name.startswith("conf") and name.endswith((".yaml", ".yml"))


def all_strategies(conn: Connection, f: Filters) -> list[StrategyEntry]:
    """Every strategy entry, ordered by strategy_id (filters: task_run_id, has_result, q on the config file names)."""
    ar, af, lo = Artifact.__table__, ArtifactFile.__table__, Loop.__table__
    stmt = (select(ar.c.artifact_id, af.c.id, af.c.path, af.c.sha256, lo.c.experiment_id, lo.c.decision,
                   lo.c.metrics_json, lo.c.updated_at_utc)
            .join(ar, ar.c.artifact_id == af.c.artifact_id)
            .join(lo, lo.c.experiment_id == ar.c.experiment_id)
            .where(ar.c.artifact_type == "experiment_workspace", af.c.sha256.is_not(None),
                   af.c.path.like("conf%"))
            .order_by(ar.c.artifact_id, af.c.path))
    if f.task_run_id:
        stmt = stmt.where(lo.c.task_run_id == f.task_run_id)
    if f.has_result is not None:
        stmt = stmt.where(lo.c.has_result == int(f.has_result))
    per_ws: dict[int, dict[str, Any]] = {}
    for r in conn.execute(stmt):
        if not _is_config(r.path):
            continue
        ws = per_ws.setdefault(r.artifact_id, {"files": [], "row": r})
        ws["files"].append(StrategyConfigFile(path=r.path, sha256=r.sha256, file_id=r.id))
    groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"files": None, "loops": {}, "updated": None})
    for ws in per_ws.values():
        ident = "\n".join(f"{c.path}\0{c.sha256}" for c in ws["files"])
        sid = hashlib.sha256(ident.encode("utf-8")).hexdigest()[:16]
        g = groups[sid]
        g["files"] = g["files"] or ws["files"]
        r = ws["row"]
        g["loops"][r.experiment_id] = StrategyLoop(experiment_id=r.experiment_id, decision=r.decision,
                                                   key_metrics=key_metrics(r.metrics_json))
        g["updated"] = max(filter(None, (g["updated"], r.updated_at_utc)))
    out = []
    for sid in sorted(groups):
        g = groups[sid]
        if f.q and not any(f.q.casefold() in c.path.casefold() for c in g["files"]):
            continue
        updated: datetime = g["updated"]
        if f.updated_since is not None and updated < f.updated_since:
            continue
        out.append(StrategyEntry(strategy_id=sid, config_files=g["files"],
                                 loops=sorted(g["loops"].values(), key=lambda x: x.experiment_id),
                                 updated_at_utc=updated))
    return out


def strategy_page(conn: Connection, f: Filters, page: PageRequest) -> tuple[list[StrategyEntry], list[Any] | None]:
    """Up to `page.limit` strategies with strategy_id > `page.after[0]`."""
    entries = all_strategies(conn, f)
    if page.after:
        entries = [e for e in entries if e.strategy_id > page.after[0]]
    items = entries[: page.limit]
    return items, ([items[-1].strategy_id] if len(entries) > page.limit else None)
