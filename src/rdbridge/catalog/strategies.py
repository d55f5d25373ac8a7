"""The strategy catalog: one entry per distinct strategy configuration seen in loops.

A materialized loop is grouped by its strategy.json (the parsed config: strategy class, topk, n_drop, benchmark,
costs, backtest window): loops with equal parameters share one entry, whatever else differs in their config files.
A loop not materialized yet is grouped by content: the set of (path, sha256) of the Qlib config files (`conf*.yaml`)
in its experiment workspace, as ingest registered them (`identified_by` says which).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from typing import Any

import json
from pathlib import Path

from sqlalchemy import Connection, select

from rdbridge.catalog.documents import loop_documents
from rdbridge.catalog.metrics import key_metrics
from rdbridge.catalog.paging import Filters, PageRequest
from rdbridge.config import artifact_root
from rdbridge.contracts.artifacts import StrategyDoc
from rdbridge.contracts.catalog import StrategyConfigFile, StrategyEntry, StrategyLoop
from rdbridge.registry.models import Artifact, ArtifactFile, Loop

SCOPE = "catalog/strategies"
CURSOR_TYPES = (str,)


def _is_config(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return "/" not in path and name.startswith("conf") and name.endswith((".yaml", ".yml"))


def strategy_params(doc: StrategyDoc) -> dict[str, Any]:
    """The configuration a strategy.json describes (what makes two loops' strategies the same)."""
    return doc.model_dump(mode="json", exclude={"schema_version", "experiment_id", "config_file"})


def _sid(kind: str, ident: str) -> str:
    return hashlib.sha256(f"{kind}\n{ident}".encode()).hexdigest()[:16]


def all_strategies(conn: Connection, f: Filters, store_root: Path | None = None) -> list[StrategyEntry]:
    """Every strategy entry, ordered by strategy_id (filters: task_run_id, has_result, q on the config file names
    and the strategy class)."""
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
    docs = loop_documents(conn, store_root if store_root is not None else artifact_root(), "strategy.json",
                          StrategyDoc, sorted({ws["row"].experiment_id for ws in per_ws.values()}))
    groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"files": [], "loops": {}, "updated": None,
                                                             "params": None})
    for ws in per_ws.values():
        r = ws["row"]
        doc = docs.get(r.experiment_id)
        if doc is not None:
            params = strategy_params(doc)
            sid = _sid("strategy.json", json.dumps(params, sort_keys=True, separators=(",", ":")))
            files = [c for c in ws["files"] if c.path == doc.config_file]
        else:
            params, files = None, ws["files"]
            sid = _sid("config files", "\n".join(f"{c.path}\0{c.sha256}" for c in files))
        g = groups[sid]
        g["params"] = params
        known = {(c.path, c.sha256) for c in g["files"]}
        g["files"] += [c for c in files if (c.path, c.sha256) not in known]
        g["loops"][r.experiment_id] = StrategyLoop(experiment_id=r.experiment_id, decision=r.decision,
                                                   key_metrics=key_metrics(r.metrics_json))
        g["updated"] = max(filter(None, (g["updated"], r.updated_at_utc)))
    out = []
    for sid in sorted(groups):
        g = groups[sid]
        text = [c.path for c in g["files"]] + [str((g["params"] or {}).get("strategy_class") or "")]
        if f.q and not any(f.q.casefold() in t.casefold() for t in text):
            continue
        updated: datetime = g["updated"]
        if f.updated_since is not None and updated < f.updated_since:
            continue
        out.append(StrategyEntry(strategy_id=sid, identified_by="strategy.json" if g["params"] else "config files",
                                 config_files=sorted(g["files"], key=lambda c: (c.path, c.sha256)),
                                 params=g["params"], loops=sorted(g["loops"].values(), key=lambda x: x.experiment_id),
                                 updated_at_utc=updated))
    return out


def strategy_page(conn: Connection, f: Filters, page: PageRequest,
                  store_root: Path | None = None) -> tuple[list[StrategyEntry], list[Any] | None]:
    """Up to `page.limit` strategies with strategy_id > `page.after[0]` (`store_root`: where strategy.json files
    are; default: the configured artifact store)."""
    entries = all_strategies(conn, f, store_root)
    if page.after:
        entries = [e for e in entries if e.strategy_id > page.after[0]]
    items = entries[: page.limit]
    return items, ([items[-1].strategy_id] if len(entries) > page.limit else None)
