"""Materialize's per-loop documents (strategy.json, model_meta.json) as the catalogs read them: registered in the
registry, read from the artifact store, checked against the registered sha256, validated by their contract.

Parsed documents are kept by sha256 (content-addressed, so a kept one is exactly what the file held), so a catalog
page re-reads only documents it has not seen. A document that is missing, outside the store, altered or invalid is
treated as absent: its loop shows up as not materialized instead of failing the whole catalog.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, select

from rdbridge.registry.models import Artifact, ArtifactFile

D = TypeVar("D", bound=BaseModel)
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
_KEEP = 4096
_parsed: OrderedDict[tuple[str, str], BaseModel] = OrderedDict()


def _clean(rel: str) -> bool:
    return not (not rel or rel.startswith("/") or "\\" in rel or "\0" in rel
                or any(p in ("", ".", "..") for p in rel.split("/")))


def read_document(store_root: Path, rel: str, sha256: str | None, model: type[D]) -> D | None:
    """The document at store-relative `rel` when it is a regular file inside the store with the registered hash."""
    if not sha256 or not _clean(rel):
        return None
    key = (model.__name__, sha256)
    hit = _parsed.get(key)
    if hit is not None:
        _parsed.move_to_end(key)
        return hit  # type: ignore[return-value]
    root = Path(os.path.realpath(store_root))
    real = Path(os.path.realpath(root / rel))
    try:
        if not real.is_relative_to(root) or not real.is_file() or real.stat().st_size > MAX_DOCUMENT_BYTES:
            return None
        data = real.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    try:
        doc = model.model_validate_json(data)
    except ValidationError:
        return None
    _parsed[key] = doc
    if len(_parsed) > _KEEP:
        _parsed.popitem(last=False)
    return doc


def loop_documents(conn: Connection, store_root: Path, name: str, model: type[D],
                   experiment_ids: list[str] | None = None) -> dict[str, D]:
    """experiment_id -> its materialized document `name` (e.g. strategy.json), for the given loops or all loops."""
    ar, af = Artifact.__table__, ArtifactFile.__table__
    stmt = (select(ar.c.experiment_id, af.c.path, af.c.sha256)
            .join(af, af.c.artifact_id == ar.c.artifact_id)
            .where(ar.c.root_kind == "store", ar.c.name == name, ar.c.status == "present"))
    if experiment_ids is not None:
        if not experiment_ids:
            return {}
        stmt = stmt.where(ar.c.experiment_id.in_(experiment_ids))
    out: dict[str, D] = {}
    for r in conn.execute(stmt):
        doc = read_document(store_root, r.path, r.sha256, model)
        if doc is not None:
            out[r.experiment_id] = doc
    return out
