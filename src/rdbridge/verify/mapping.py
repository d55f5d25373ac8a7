"""Which platform implementation goes with which factor: a mapping file (YAML or JSON), the engine's Alpha158
expressions, or entry points of the group ``rdbridge.verify`` (each a callable returning a mapping document)."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from rdbridge.contracts.verify import Tolerances
from rdbridge.verify.run import Target

ENTRY_POINT_GROUP = "rdbridge.verify"


class MappingError(ValueError):
    """The mapping file is unreadable or an entry is malformed; the message names the file and the factor."""


def parse_entry(name: str, entry: Any, defaults: Tolerances, where: str) -> Target:
    if isinstance(entry, str):
        entry = {"expr": entry}
    if not isinstance(entry, dict):
        raise MappingError(f"{where}: factor {name!r}: expected {{expr: ...}} or {{impl: module:func}}")
    kinds = [k for k in ("expr", "impl") if k in entry]
    if len(kinds) != 1 or not isinstance(entry[kinds[0]], str) or not entry[kinds[0]].strip():
        raise MappingError(f"{where}: factor {name!r}: give exactly one of expr / impl as a non-empty string")
    unknown = set(entry) - {"expr", "impl", "rtol", "atol"}
    if unknown:
        raise MappingError(f"{where}: factor {name!r}: unknown keys {sorted(unknown)}")
    try:
        tol = Tolerances(rtol=entry.get("rtol", defaults.rtol), atol=entry.get("atol", defaults.atol))
    except ValueError as exc:
        raise MappingError(f"{where}: factor {name!r}: tolerances: {exc}") from exc
    return Target(name=str(name), kind=kinds[0], spec=entry[kinds[0]].strip(), tol=tol)


def parse_document(doc: Any, where: str) -> list[Target]:
    if not isinstance(doc, dict) or not isinstance(doc.get("factors"), dict):
        raise MappingError(f"{where}: expected a mapping with a 'factors' table (name -> {{expr|impl, rtol, atol}})")
    try:
        defaults = Tolerances(**(doc.get("defaults") or {}))
    except (TypeError, ValueError) as exc:
        raise MappingError(f"{where}: defaults: {exc}") from exc
    return [parse_entry(n, e, defaults, where) for n, e in doc["factors"].items()]


def load_mapping_file(path: Path) -> list[Target]:
    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: cannot read the mapping: {exc}") from exc
    return parse_document(doc, str(path))


def alpha158_targets() -> list[Target]:
    from rdbridge.contracts.alpha158 import alpha158_expressions

    return [Target(name=n, kind="expr", spec=e) for n, e in alpha158_expressions().items()]


def entry_point_targets() -> list[Target]:
    out: list[Target] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        out.extend(parse_document(ep.load()(), f"entry point {ep.name}"))
    return out
