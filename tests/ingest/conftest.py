"""Fixtures for ingest tests: a writable copy of the bundled sample trace, and helpers to read the registry."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from rdbridge.registry import Loop, make_engine, session_scope

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "sample_trace"


@dataclass
class Trace:
    root: Path
    log_root: Path
    workspace_root: Path
    key: bytes

    @property
    def run_dir(self) -> Path:
        return next(self.log_root.iterdir())


@pytest.fixture
def sample(tmp_path: Path) -> Trace:
    """A private copy of the sample trace (symlinks kept), so a test may damage it."""
    dst = tmp_path / "sample_trace"
    shutil.copytree(SAMPLE, dst, symlinks=True)
    return Trace(dst, dst / "log", dst / "workspace", (dst / "artifact_signing.key").read_bytes())


def loops_by_id(db_url: str) -> dict[int, Loop]:
    engine = make_engine(db_url)
    try:
        with session_scope(engine, write=False) as s:
            return {r.loop_id: r for r in s.scalars(select(Loop))}
    finally:
        engine.dispose()


def query(db_url: str, stmt: Any) -> list[Any]:
    engine = make_engine(db_url)
    try:
        with session_scope(engine, write=False) as s:
            return list(s.scalars(stmt))
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
