"""Bad files inside a trace or workspace: unreadable pickles, non-UTF-8 code."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import tracegen

from .test_ingest_bad_input import _ingest, _only_bad, _pickle, trace  # noqa: F401 - fixture re-used

def test_unreadable_trace_file(db_url: str, trace: tracegen.TracePaths) -> None:
    bad = _pickle(trace.run_dir, 1, "runner result")
    tracegen.make_unreadable(bad, "dangling_symlink")
    _ingest(trace, db_url)
    _only_bad(db_url, 1, "unreadable", bad.name)


def test_non_utf8_code_file(db_url: str, trace: tracegen.TracePaths) -> None:
    ws_id = tracegen.loop_workspace_ids(2)["tasks"][0]
    f = tracegen.write_non_utf8_code(trace.workspace_root / ws_id)
    _ingest(trace, db_url)
    _only_bad(db_url, 2, "not_utf8", str(f.name))
