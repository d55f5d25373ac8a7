"""Full and incremental `rdbridge sync` of a large registry: seconds and rows per second.

Builds a registry (SQLite) with N factors and M loops, all materialized, each loop with one small chart file in
the artifact store; serves it with a real `rdbridge serve` subprocess on loopback; then times, in this process:
  1. a full sync into an empty platform database (SQLite, or PostgreSQL with --platform-db),
  2. an incremental sync with nothing changed,
  3. an incremental sync after 1% of the loops changed (new metrics).
Run: `PYTHONPATH=src .venv/bin/python benchmarks/bench_sync.py [--factors 10000 --loops 2000]`
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def build_registry(url: str, store: Path, n_factors: int, n_loops: int, runs: int = 20) -> None:
    from rdbridge.registry import init_db
    from rdbridge.registry.db import session_scope
    from rdbridge.registry.models import Artifact, ArtifactFile, Factor, Loop, Task, TaskRun

    engine = init_db(url)
    now = datetime.now(UTC) - timedelta(hours=1)
    per_loop = max(1, n_factors // n_loops)
    loops, tasks, factors, arts, files, trs = [], [], [], [], [], []
    for r in range(runs):
        trs.append(dict(task_run_id=f"2026-01-{r + 1:02d}_08-00-00-000000", run_folder=f"run{r}", scenario="fin_factor",
                        log_trace_path="x", workspace_root="x", status="completed", loop_count=n_loops // runs,
                        created_at_utc=now, updated_at_utc=now))
    fid = 0
    for i in range(n_loops):
        run = trs[i % runs]["task_run_id"]
        loop_id = i // runs
        exp = f"{run}/{loop_id}"
        metrics = {"IC": 0.01 + (i % 97) / 1000, "1day.excess_return_with_cost.annualized_return": (i % 31) / 100}
        at = now + timedelta(seconds=3600 * i / n_loops)  # loops finish one after another over the hour
        loops.append(dict(task_run_id=run, loop_id=loop_id, experiment_id=exp, action="factor", status="completed",
                          hypothesis=f"hypothesis {i}: momentum after volume shocks", has_result=1,
                          metrics_json=metrics, feedback_json={"decision": i % 3 == 0, "reason": f"reason {i}"},
                          decision=i % 3 == 0, materialization_status="done", materialization_attempts=1,
                          created_at_utc=at, updated_at_utc=at))
        for k in range(per_loop):
            name = f"F{fid:05d}_mom_{k}"
            code = f"def calculate_{name}(df):\n    return df['$close'].pct_change({k + 1})\n"
            tasks.append(dict(experiment_id=exp, task_run_id=run, loop_id=loop_id, task_index=k, task_type="factor",
                              name=name, description=f"momentum variant {fid}", formulation="r_t / r_{t-k}",
                              variables_json={"k": k + 1}))
            factors.append(dict(factor_id=hashlib.sha256(f"{name}{code}".encode()).hexdigest()[:16], factor_name=name,
                                experiment_id=exp, task_run_id=run, loop_id=loop_id, description=f"momentum {fid}",
                                formulation="r_t / r_{t-k}", variables_json={"k": k + 1},
                                code_sha256=hashlib.sha256(code.encode()).hexdigest(), created_at_utc=at))
            fid += 1
        data = hashlib.sha256(exp.encode()).digest() * 128  # 4 KiB per file
        rel = f"bench/{i}/chart.png"
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_bytes(data)
        arts.append(dict(task_run_id=run, loop_id=loop_id, experiment_id=exp, workspace_id="", artifact_type="charts",
                         name="charts", status="present", root_kind="store", created_at_utc=at, updated_at_utc=at))
        files.append(dict(path=rel, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                          mime_type="image/png", is_symlink=False, created_at_utc=now))
    with session_scope(engine) as s:
        s.execute(insert(TaskRun), trs)
        s.execute(insert(Loop), loops)
        s.execute(insert(Task), tasks)
        s.execute(insert(Factor), factors)
        s.execute(insert(Artifact), arts)
        ids = dict(s.execute(select(Artifact.experiment_id, Artifact.artifact_id)).all())
        for a, f in zip(arts, files, strict=True):
            f["artifact_id"] = ids[a["experiment_id"]]
        s.execute(insert(ArtifactFile), files)
    engine.dispose()


def touch_loops(url: str, fraction: float) -> int:
    from rdbridge.registry import init_db
    from rdbridge.registry.db import session_scope
    from rdbridge.registry.models import Loop

    engine = init_db(url)
    with session_scope(engine) as s:
        ids = s.scalars(select(Loop.id).order_by(Loop.id)).all()
        pick = ids[:: max(1, int(1 / fraction))]
        s.execute(update(Loop).where(Loop.id.in_(pick)).values(
            metrics_json={"IC": 0.5, "1day.excess_return_with_cost.annualized_return": 0.2},
            updated_at_utc=datetime.now(UTC)))
    engine.dispose()
    return len(pick)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--factors", type=int, default=10_000)
    ap.add_argument("--loops", type=int, default=2_000)
    ap.add_argument("--platform-db", default=None, help="platform DB URL (default: a SQLite file in the work dir)")
    ap.add_argument("--api-workers", type=int, default=1, help="rdbridge serve --workers (its default: 1)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()

    from consumer.servers import start_serve
    from rdbridge.consumer.sync import sync

    work = Path(tempfile.mkdtemp(prefix="bench_sync_"))
    try:
        home = work / "producer"
        registry = f"sqlite:///{home / 'registry.sqlite'}"
        t = time.perf_counter()
        build_registry(registry, home / "artifacts", args.factors, args.loops)
        print(f"registry built: {args.factors} factors, {args.loops} loops in {time.perf_counter() - t:.1f} s")
        os.environ.pop("RDBRIDGE_API_TOKEN", None)
        api = start_serve(home, registry, None, workers=args.api_workers)
        platform = args.platform_db or f"sqlite:///{work / 'platform' / 'platform.sqlite'}"
        try:
            print("| sync | seconds (pull / loops+files / apply) | rows written | rows/s | files downloaded |")
            print("|---|---|---|---|---|")
            for label in ("full", "incremental, nothing changed", "incremental, 1% of loops changed"):
                if label.endswith("changed") and "1%" in label:
                    touch_loops(registry, 0.01)
                r = sync(api.url, platform, store_dir=work / "platform" / "files")
                assert r.ok, r.issues[:3]
                rows = sum(k.created + k.updated for n, k in r.kinds.items() if n not in ("artifacts", "sources"))
                seen = rows + sum(k.unchanged for n, k in r.kinds.items() if n not in ("artifacts", "sources"))
                phases = f"{r.seconds_pull:.1f} / {r.seconds_fetch:.1f} / {r.seconds_apply:.1f}"
                print(f"| {label} | {r.seconds:.2f} ({phases}) | {rows} (of {seen}) | "
                      f"{(rows / r.seconds) if rows else 0:,.0f} | {r.files_downloaded} |", flush=True)
        finally:
            api.stop()
        print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
