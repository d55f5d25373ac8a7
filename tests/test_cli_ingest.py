"""The CLI as scripts use it: `--json` prints exactly one JSON document; bad input exits non-zero with the path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample_trace"


def _run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RDBRIDGE_HOME": str(home)}
    env.pop("RDBRIDGE_DB", None)
    return subprocess.run([sys.executable, "-m", "rdbridge.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_ingest_json_twice_then_loops(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    shutil.copytree(SAMPLE, trace, symlinks=True)
    home = tmp_path / "home"
    args = ("ingest", "--log-root", str(trace / "log"), "--workspace-root", str(trace / "workspace"),
            "--signing-key-file", str(trace / "artifact_signing.key"), "--json")
    first = _run(*args, home=home)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["ok"] is True and doc["counts"]["loops_new"] == 4 and doc["changes"] == 5
    assert (home / "registry.sqlite").is_file(), "the default registry lives under $RDBRIDGE_HOME"

    second = json.loads(_run(*args, home=home).stdout)
    assert second["changes"] == 0 and second["counts"]["loops_unchanged"] == 4

    loops = _run("loops", "--json", home=home)
    assert loops.returncode == 0, loops.stderr
    rows = json.loads(loops.stdout)["loops"]
    assert [r["has_result"] for r in rows] == [1, 1, 1, 0]
    assert {r["materialization_status"] for r in rows} == {"pending"}


def test_ingest_reports_loop_errors_with_exit_code_1(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    shutil.copytree(SAMPLE, trace, symlinks=True)
    fb = sorted((trace / "log").glob("*/Loop_2/feedback/feedback/*/*.pkl"))[0]
    fb.write_bytes(fb.read_bytes()[:-40])
    out = _run("ingest", "--log-root", str(trace / "log"), "--workspace-root", str(trace / "workspace"),
               "--signing-key-file", str(trace / "artifact_signing.key"), "--json", home=tmp_path / "h")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["ok"] is False and doc["counts"]["loops_seen"] == 4
    assert [(i["experiment_id"].split("/")[-1], i["file"], i["kind"]) for i in doc["issues"]] == [
        ("2", str(fb), "tampered")]


def test_bad_paths_are_named(tmp_path: Path) -> None:
    out = _run("ingest", "--log-root", str(tmp_path / "missing"), "--workspace-root", str(tmp_path), "--json",
               home=tmp_path / "h")
    assert out.returncode == 2
    assert json.loads(out.stdout) == {"ok": False, "error": f"--log-root {tmp_path / 'missing'}: no such folder"}
    out = _run("ingest", "--log-root", str(tmp_path), "--workspace-root", str(tmp_path), "--signing-key-file",
               str(tmp_path / "nokey"), "--json", home=tmp_path / "h")
    assert out.returncode == 2
    err = json.loads(out.stdout)["error"]
    assert str(tmp_path / "nokey") in err


def test_postgres_url_via_db_option(tmp_path: Path, db_url: str) -> None:
    out = _run("ingest", "--log-root", str(SAMPLE / "log"), "--workspace-root", str(SAMPLE / "workspace"),
               "--db", db_url, "--json", home=tmp_path / "h")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["counts"]["loops_new"] == 4
    assert not (tmp_path / "h" / "registry.sqlite").exists(), "--db wins over the default SQLite file"
