"""SIGKILL in the middle of an ingest: the registry stays consistent and the next run completes the work."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from rdbridge.ingest import ingest
from rdbridge.registry import IngestRun, Loop, Task, Workspace
from support import tracegen

from .conftest import query

KEY = b"k" * 32
LOOPS = 150


def _count_loops(db_file: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("select count(*) from loops").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_sigkill_mid_ingest_then_resume(tmp_path: Path) -> None:
    paths = tracegen.write_trace(tmp_path / "big", loops=LOOPS, key=KEY, fail_last=False)
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    db_file = tmp_path / "registry.sqlite"
    url = f"sqlite:///{db_file}"
    cmd = [sys.executable, "-m", "rdbridge.cli", "ingest", "--log-root", str(paths.log_root), "--workspace-root",
           str(paths.workspace_root), "--signing-key-file", str(key_file), "--db", url, "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    seen = 0
    while time.monotonic() < deadline and proc.poll() is None:
        seen = _count_loops(db_file)
        if seen >= 5:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"ingest ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    partial = _count_loops(db_file)
    assert 5 <= partial < LOOPS, partial
    # consistent after the kill: every stored loop has all its tasks and workspaces (one transaction per loop)
    for lp in query(url, select(Loop)):
        n_tasks = len(query(url, select(Task).where(Task.experiment_id == lp.experiment_id)))
        n_ws = len(query(url, select(Workspace).where(Workspace.experiment_id == lp.experiment_id)))
        assert n_tasks >= 1 and n_ws >= n_tasks + 1, (lp.experiment_id, n_tasks, n_ws)
    crashed = query(url, select(IngestRun))
    assert len(crashed) == 1 and crashed[0].finished_at_utc is None

    report = ingest(log_root=paths.log_root, workspace_root=paths.workspace_root, db_url=url, signing_key=KEY)
    assert report.ok
    assert report.counts.loops_new == LOOPS - partial
    assert report.counts.loops_unchanged == partial
    assert query(url, select(func.count()).select_from(Loop)) == [LOOPS]
    assert sum(lp.has_result for lp in query(url, select(Loop))) == LOOPS
    again = ingest(log_root=paths.log_root, workspace_root=paths.workspace_root, db_url=url, signing_key=KEY)
    assert again.changes == 0
