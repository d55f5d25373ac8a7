"""Producer-side setup for the platform tests: a registry made by `rdbridge ingest` of the sample trace, its loops
moved through the real materialization state machine, two PNG charts registered per finished loop in the artifact
store (as the materializer will), and a factor renamed to a script tag (LLM text must render as text).

Tests may import the producer side (the import rules bind src/ only); the consumer code under test never does.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select, update

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample_trace"
SCRIPT_NAME = "<script>alert(1)</script>"


def ingest_sample(home: Path, db_url: str) -> None:
    env = dict(os.environ, RDBRIDGE_HOME=str(home))
    subprocess.run([sys.executable, "-m", "rdbridge.cli", "ingest", "--log-root", str(SAMPLE / "log"),
                    "--workspace-root", str(SAMPLE / "workspace"), "--signing-key-file",
                    str(SAMPLE / "artifact_signing.key"), "--db", db_url, "--json"],
                   env=env, check=True, capture_output=True, timeout=300)


def _chart(title: str, seed: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(5, 2.5), dpi=80)
    ax.plot(np.cumsum(rng.normal(0.001, 0.01, 120)))
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def materialize_stand_in(db_url: str, store_root: Path, *, fail_last: bool = True) -> list[str]:
    """Claim every pending loop, register two charts for each and mark it done; the last one fails (if asked).

    Returns the experiment ids that are done."""
    from rdbridge.registry import init_db
    from rdbridge.registry.db import session_scope
    from rdbridge.registry.models import Artifact, ArtifactFile, Loop
    from rdbridge.registry.state import claim_next, complete, fail

    engine = init_db(db_url)
    done: list[str] = []
    try:
        with session_scope(engine) as s:
            pending = s.scalars(select(Loop).where(Loop.materialization_status == "pending")
                                .order_by(Loop.id)).all()
            last = pending[-1].experiment_id if pending else None
        while True:
            with session_scope(engine) as s:
                loop = claim_next(s, "test-materializer")
                if loop is None:
                    break
                if fail_last and loop.experiment_id == last:
                    fail(s, loop, "test-materializer", "chart rendering failed: no backtest report in the workspace")
                    continue
                art = Artifact(task_run_id=loop.task_run_id, loop_id=loop.loop_id, experiment_id=loop.experiment_id,
                               workspace_id="", artifact_type="charts", name="charts", status="present",
                               root_kind="store")
                s.add(art)
                s.flush()
                for i, title in enumerate(("cumulative return", "IC by day")):
                    data = _chart(f"{loop.experiment_id} {title}", loop.loop_id * 10 + i)
                    rel = f"loops/{loop.task_run_id}/{loop.loop_id}/chart_{i}.png"
                    path = store_root / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                    s.add(ArtifactFile(artifact_id=art.artifact_id, path=rel, size_bytes=len(data),
                                       sha256=hashlib.sha256(data).hexdigest(), mime_type="image/png"))
                complete(s, loop, "test-materializer")
                done.append(loop.experiment_id)
    finally:
        engine.dispose()
    return done


def rename_a_factor(db_url: str, new_name: str = SCRIPT_NAME) -> str:
    """Give one RD-Agent factor (and its task) a hostile name; returns the old name."""
    from rdbridge.registry import init_db
    from rdbridge.registry.db import session_scope
    from rdbridge.registry.models import Factor, Task

    engine = init_db(db_url)
    try:
        with session_scope(engine) as s:
            f = s.scalars(select(Factor).order_by(Factor.experiment_id, Factor.factor_name)).first()
            assert f is not None, "the sample registry has factors"
            old = f.factor_name
            s.execute(update(Factor).where(Factor.factor_id == f.factor_id).values(factor_name=new_name))
            s.execute(update(Task).where(Task.name == old).values(name=new_name))
    finally:
        engine.dispose()
    return old
