"""The command: --json report contract, progress-free output, exit codes 0 / 1 / 2, `rdbridge loops` shows the state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rdbridge.contracts.artifacts import MaterializeReport

from .conftest import SAMPLE, ingest_copy


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RDBRIDGE_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "rdbridge.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_json_report_exit_codes_and_loops(tmp_path: Path) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'registry.sqlite'}"
    home.mkdir()
    t = ingest_copy(SAMPLE, tmp_path, url)
    # break loop 2's portfolio report: that loop fails, the others are done, exit code 1
    exp_ws = next(p for p in (t.root / "workspace").iterdir() if (p / "ret.parquet").exists()
                  and "Reversal_Rank_5D" in (p / "combined_factors_df.parquet").read_bytes().decode("latin1"))
    (exp_ws / "ret.parquet").write_bytes(b"not parquet")
    r = _cli("materialize", "--db", url, "--json", home=home)
    assert r.returncode == 1, r.stderr
    rep = MaterializeReport.model_validate_json(r.stdout)
    assert (rep.counts.done, rep.counts.failed) == (3, 1)
    assert rep.failures[0].experiment_id.endswith("/2") and "ret.parquet" in rep.failures[0].error
    assert rep.artifact_root == str(home / "artifacts")
    shown = json.loads(_cli("loops", "--db", url, "--json", home=home).stdout)["loops"]
    assert [lp["materialization_status"] for lp in shown] == ["done", "done", "failed", "done"]
    assert "ret.parquet" in shown[2]["materialization_error"]
    # nothing pending: a second run does nothing and succeeds; --all retries the failed loop (still broken)
    r = _cli("materialize", "--db", url, "--json", home=home)
    assert r.returncode == 0 and json.loads(r.stdout)["counts"] == {"done": 0, "failed": 0, "skipped": 3}
    r = _cli("materialize", "--all", "--db", url, "--json", home=home)
    assert r.returncode == 1 and json.loads(r.stdout)["counts"]["failed"] == 1
    # human output names the failure
    r = _cli("materialize", "--task-run", shown[2]["task_run_id"], "--loop", "2", "--db", url, home=home)
    assert r.returncode == 1 and "ret.parquet" in r.stderr and "1 failed" in r.stdout


def test_unusable_arguments_exit_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    for args in (["--all", "--task-run", "x"], ["--task-run", "no-such-run"], ["--workers", "0"],
                 ["--loop", "1"]):
        r = _cli("materialize", *args, "--db", url, "--json", home=home)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert json.loads(r.stdout)["ok"] is False
