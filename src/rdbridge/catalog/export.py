"""`rdbridge catalog export`: the five catalogs as JSON files, each written atomically (temp + fsync + rename)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Engine

from rdbridge.atomic import write_atomic
from rdbridge.catalog.alpha158 import alpha158_entries
from rdbridge.catalog.factors import factor_page, factor_sources
from rdbridge.catalog.loops import loop_page
from rdbridge.catalog.models import model_page
from rdbridge.catalog.paging import MAX_LIMIT, Filters, PageRequest
from rdbridge.catalog.strategies import strategy_page
from rdbridge.contracts.catalog import (
    CATALOG_FILES,
    Alpha158Meta,
    FactorCatalog,
    LoopCatalog,
    ModelCatalog,
    StrategyCatalog,
)
from rdbridge.registry import current_revision, utcnow

Pager = Callable[[Connection, Filters, PageRequest], tuple[list[Any], list[Any] | None]]


def walk(conn: Connection, pager: Pager, f: Filters | None = None) -> list[Any]:
    """Every entry of a paged list (the same pages the API serves)."""
    out: list[Any] = []
    after: list[Any] | None = None
    while True:
        items, after = pager(conn, f or Filters(), PageRequest(limit=MAX_LIMIT, after=after))
        out += items
        if after is None:
            return out


def build_catalogs(engine: Engine, store_root: Path | None = None) -> dict[str, BaseModel]:
    """file name -> catalog document, all read in one transaction (a consistent snapshot of the registry).

    `store_root`: the artifact store (package snapshots, strategy.json, model_meta.json); default: the configured one.
    """
    now = utcnow()
    source = f"rdbridge registry ({engine.dialect.name}, schema {current_revision(engine)})"
    with engine.connect() as conn, conn.begin():
        docs: dict[str, BaseModel] = {
            "factor_catalog.json": FactorCatalog(generated_at_utc=now, source=source,
                                                 factors=walk(conn, partial(factor_page,
                                                                                   sources=factor_sources(store_root)))),
            "strategy_catalog.json": StrategyCatalog(generated_at_utc=now, source=source,
                                                     strategies=walk(conn, partial(strategy_page,
                                                                                        store_root=store_root))),
            "loop_catalog.json": LoopCatalog(generated_at_utc=now, source=source, loops=walk(conn, loop_page)),
            "model_catalog.json": ModelCatalog(generated_at_utc=now, source=source, models=walk(conn, partial(model_page, store_root=store_root))),
            "alpha158_meta.json": Alpha158Meta(generated_at_utc=now, source="rdbridge.contracts.alpha158",
                                               factors=list(alpha158_entries())),
        }
    assert set(docs) == set(CATALOG_FILES)
    return docs


def export_catalogs(engine: Engine, out_dir: Path, store_root: Path | None = None) -> dict[str, int]:
    """Write every catalog under `out_dir`; returns file name -> number of entries."""
    counts: dict[str, int] = {}
    for name, doc in build_catalogs(engine, store_root).items():
        write_atomic(out_dir / name, doc.model_dump_json(indent=1).encode("utf-8") + b"\n")
        counts[name] = len(next(v for k, v in doc if isinstance(v, list)))
    return counts


def catalog_schemas() -> dict[str, dict[str, Any]]:
    """file name -> the JSON Schema of its document."""
    return {name: model.model_json_schema() for name, model in CATALOG_FILES.items()}
