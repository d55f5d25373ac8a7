"""Issue 23, items 1-8: hostile pickles and odd files planted in a trace that was already ingested once.

One module-scoped scenario: a 12-loop synthetic trace is ingested (good), then one attack is planted per loop and the
trace is ingested again in a subprocess (so a crash of the ingest would fail these tests, not kill pytest). Each test
checks its own loop: a named error on the planted file, the facts of the earlier good ingest kept, the other loops
ingested, and the ingest process alive (exit code 0, a report printed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from rdbridge.ingest import ingest
from rdbridge.registry import Artifact, ArtifactFile, Loop
from support import hostile, tracegen

from .conftest import loops_by_id, query

KEY = b"k" * 32
LOOPS = 12
CAP = 4_000_000  # --max-pickle-bytes of the hostile ingest; the synthetic pickles are a few KB

CHILD = """
import json, sys
from pathlib import Path
from rdbridge.ingest import ingest
r = ingest(log_root=Path(sys.argv[1]), workspace_root=Path(sys.argv[2]), db_url=sys.argv[3], signing_key=b"k" * 32,
           max_pickle_bytes=int(sys.argv[4]))
import pandas._libs.tslibs.timestamps as ts
print(json.dumps({"report": r.model_dump(mode="json"), "doc": ts._unpickle_timestamp.__doc__}))
"""


def _pickle(run_dir: Path, loop: int, tag: str) -> Path:
    found = sorted((run_dir / f"Loop_{loop}").glob(f"*/{tag}/*/*.pkl"))
    assert found, f"no {tag} pickle in Loop_{loop}"
    return found[-1]


def _plant(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


@dataclass
class Scenario:
    paths: tracegen.TracePaths
    url: str
    before: dict[int, Loop]
    after: dict[int, Loop]
    report: dict[str, Any]
    doc_after: str | None
    planted: dict[str, Path]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    tmp = tmp_path_factory.mktemp("hostile")
    paths = tracegen.write_trace(tmp / "t", loops=LOOPS, key=KEY, fail_last=False)
    url = f"sqlite:///{tmp / 'registry.sqlite'}"
    good = ingest(log_root=paths.log_root, workspace_root=paths.workspace_root, db_url=url, signing_key=KEY)
    assert good.ok and good.counts.loops_new == LOOPS, good.issues
    before = loops_by_id(url)
    run, ws = paths.run_dir, paths.workspace_root
    planted: dict[str, Path] = {}

    def plant(name: str, loop: int, tag: str, data: bytes) -> None:
        p = _pickle(run, loop, tag)
        _plant(p, data)
        planted[name] = p

    plant("dtype", 1, "runner result", hostile.dtype_object_pointer())
    plant("pyarrow", 2, "runner result", hostile.pyarrow_overlong())
    plant("list_range", 3, "runner result", hostile.list_of_range())
    plant("bytearray", 4, "hypothesis generation", hostile.bytearray_bomb())
    plant("dataframe", 4, "experiment generation", hostile.dataframe_bomb())
    plant("ndarray", 4, "runner result", hostile.object_ndarray_bomb())
    plant("cython", 5, "runner result", hostile.build_on_cython_function())
    plant("tz_exists", 6, "runner result", hostile.tz_path("/etc/passwd"))
    plant("tz_absent", 7, "runner result", hostile.tz_path("/nonexistent/nothing"))
    # 6. a FIFO as a trace pickle, a .pkl linked to /dev/zero, a FIFO in a workspace
    fifo = _pickle(run, 8, "runner result")
    fifo.unlink()
    os.mkfifo(fifo)
    planted["fifo"] = fifo
    zero = _pickle(run, 8, "hypothesis generation")
    zero.unlink()
    zero.symlink_to("/dev/zero")
    planted["dev_zero"] = zero
    ws8 = ws / tracegen.loop_workspace_ids(8)["tasks"][0]
    os.mkfifo(ws8 / "stuck.fifo")
    planted["ws_fifo"] = ws8 / "stuck.fifo"
    # size cap
    plant("oversize", 9, "hypothesis generation", b"\x80\x04" + b"N" * (CAP + 10) + b".")
    # 7. a .pkl linked to a pickle outside the run folder; a workspace link to a secret beside the workspace root
    outside = paths.root / "elsewhere.pkl"
    hypo10 = _pickle(run, 10, "hypothesis generation")
    outside.write_bytes(hypo10.read_bytes())
    hypo10.unlink()
    hypo10.symlink_to(outside)
    planted["link_out"] = hypo10
    secret = ws.parent / "id_rsa"
    secret.write_text("PRIVATE KEY")
    ws10 = ws / tracegen.loop_workspace_ids(10)["tasks"][0]
    (ws10 / "key.txt").symlink_to(secret)
    # 8. a hypothesis nested a million deep
    plant("deep", 11, "hypothesis generation", hostile.deep_hypothesis())

    out = subprocess.run([sys.executable, "-c", CHILD, str(paths.log_root), str(ws), url, str(CAP)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"ingest died (rc {out.returncode}): {out.stderr[-3000:]}"
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    return Scenario(paths, url, before, loops_by_id(url), payload["report"], payload["doc"], planted)


def _errors(sc: Scenario, loop: int) -> list[dict[str, Any]]:
    return sc.after[loop].errors_json or []


def _named(sc: Scenario, loop: int, planted: str, kind: str) -> dict[str, Any]:
    """The error recorded on `loop` for the planted file, of the expected kind; and the loop kept its facts."""
    name = sc.planted[planted].name
    found = [e for e in _errors(sc, loop) if e["file"].endswith(name) and e["kind"] == kind]
    assert found, (planted, kind, _errors(sc, loop))
    old, new = sc.before[loop], sc.after[loop]
    assert new.status == old.status and new.status in ("completed", "failed")
    assert new.hypothesis == old.hypothesis and new.hypothesis is not None, "hypothesis of the good ingest kept"
    assert new.metrics_json == old.metrics_json and new.has_result == old.has_result, "metrics kept"
    return found[0]


def test_every_loop_ingested_and_the_control_loop_clean(scenario: Scenario) -> None:
    assert sorted(scenario.after) == list(range(LOOPS))
    assert scenario.report["counts"]["loops_seen"] == LOOPS
    assert scenario.after[0].error is None and scenario.after[0].metrics_json == scenario.before[0].metrics_json
    assert all(scenario.after[i].metrics_json for i in range(LOOPS)), "no loop lost its metrics"


def test_1_dtype_state_with_object_field_is_refused(scenario: Scenario) -> None:
    e = _named(scenario, 1, "dtype", "forbidden_class")
    assert "dtype" in e["message"]


def test_2_overlong_pyarrow_array_is_refused_and_no_heap_bytes_stored(scenario: Scenario) -> None:
    e = _named(scenario, 2, "pyarrow", "corrupt")
    assert "pyarrow" in e["message"]


def test_3_allocation_bombs_are_refused(scenario: Scenario) -> None:
    _named(scenario, 3, "list_range", "too_large")
    _named(scenario, 4, "bytearray", "too_large")
    _named(scenario, 4, "dataframe", "forbidden_class")
    _named(scenario, 4, "ndarray", "forbidden_class")


def test_4_build_on_a_cython_function_is_refused(scenario: Scenario) -> None:
    _named(scenario, 5, "cython", "forbidden_class")
    assert scenario.doc_after != "pwned"


def test_5_time_zone_paths_are_refused_without_telling_whether_they_exist(scenario: Scenario) -> None:
    a = _named(scenario, 6, "tz_exists", "forbidden_class")
    b = _named(scenario, 7, "tz_absent", "forbidden_class")
    assert a["message"].replace("/etc/passwd", "X") == b["message"].replace("/nonexistent/nothing", "X")


def test_6_fifo_device_and_oversize_files_are_not_read(scenario: Scenario) -> None:
    _named(scenario, 8, "fifo", "unreadable")
    _named(scenario, 8, "dev_zero", "unreadable")
    fifo_err = [e for e in _errors(scenario, 8) if e["file"].endswith("stuck.fifo")]
    assert fifo_err and fifo_err[0]["kind"] == "unreadable"
    _named(scenario, 9, "oversize", "too_large")


def test_7_links_are_trusted_only_inside_their_roots(scenario: Scenario) -> None:
    e = _named(scenario, 10, "link_out", "unreadable")
    assert "outside" in e["message"]
    rows = query(scenario.url, select(ArtifactFile).join(Artifact).where(Artifact.loop_id == 10,
                                                                       ArtifactFile.path == "key.txt"))
    assert rows and all(r.is_symlink and r.sha256 is None for r in rows), "the secret beside the root was not read"


def test_8_deep_nesting_drops_only_that_files_facts(scenario: Scenario) -> None:
    name = scenario.planted["deep"].name
    found = [e for e in _errors(scenario, 11) if e["file"].endswith(name) and e["kind"] == "bad_format"]
    assert found, _errors(scenario, 11)
    assert scenario.after[11].metrics_json == scenario.before[11].metrics_json
    assert scenario.after[11].hypothesis == scenario.before[11].hypothesis, "the earlier hypothesis is kept"


def test_8_workspace_change_after_the_last_trace_file_is_read_again(tmp_path: Path) -> None:
    paths = tracegen.write_trace(tmp_path / "t", loops=2, key=KEY, fail_last=False)
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    first = ingest(log_root=paths.log_root, workspace_root=paths.workspace_root, db_url=url, signing_key=KEY)
    assert first.counts.loops_new == 2
    ws = paths.workspace_root / tracegen.loop_workspace_ids(0)["tasks"][0]
    (ws / "notes.txt").write_text("written after RD-Agent logged the loop\n")
    second = ingest(log_root=paths.log_root, workspace_root=paths.workspace_root, db_url=url, signing_key=KEY)
    assert (second.counts.loops_updated, second.counts.loops_unchanged) == (1, 1)
    rows = query(url, select(ArtifactFile).join(Artifact).where(Artifact.loop_id == 0,
                                                                ArtifactFile.path == "notes.txt"))
    assert len(rows) == 1 and rows[0].sha256
    third = ingest(log_root=paths.log_root, workspace_root=paths.workspace_root, db_url=url, signing_key=KEY)
    assert third.counts.loops_unchanged == 2
