"""Materialize benchmark: a synthetic RD-Agent trace of N loops (default 1,000), ingested and materialized with 1 and
2 worker processes, then materialized again (no-op).

Run:  .venv/bin/python benchmarks/bench_materialize.py [--loops 1000] [--workers 1,2] [--keep DIR]
Each configuration runs in its own child process on a fresh SQLite registry and artifact store. Prints seconds,
loops/second, CPU time (user + system of every process involved: robust under load, unlike wall time) and peak RSS
(the largest single process: the child, or for ingest its reader processes; worker processes of a 2-worker run are
not its children, so their peak is not in it). Not a test: numbers depend on the machine and its load (the script
prints the load average); docs/materialize.md quotes a run of it. Wrap it in `flock /tmp/bench.lock` on a shared
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support import tracegen  # noqa: E402

KEY = b"k" * 32

CHILD = """
import json, os, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from rdbridge.ingest import ingest
from rdbridge.materialize import materialize
log_root, ws_root, url, store, workers, mode = sys.argv[1:7]
def cpu():
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
def fork_server_cpu():
    # the workers' fork server imports pandas / Polars / matplotlib once; it is not our child once we exit
    try:
        from multiprocessing import forkserver
        pid = forkserver._forkserver._forkserver_pid
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except Exception:
        return 0.0
out = {}
c0 = cpu()
if mode == "full":
    t = time.perf_counter()
    r = ingest(log_root=Path(log_root), workspace_root=Path(ws_root), db_url=url, signing_key=b"k" * 32)
    out["ingest_seconds"] = time.perf_counter() - t
    out["loops"] = r.counts.loops_seen
    out["ingest_cpu"] = cpu() - c0
t = time.perf_counter()
m = materialize(db_url=url, root=Path(store), workers=int(workers))
out["materialize_seconds"] = time.perf_counter() - t
out["fork_server_cpu"] = fork_server_cpu()
out["materialize_cpu"] = m.cpu_seconds + out["fork_server_cpu"]
out.update(done=m.counts.done, failed=m.counts.failed, skipped=m.counts.skipped,
           process_seconds=time.perf_counter() - t0,
           peak_rss_mb=max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                           resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024)
print(json.dumps(out))
"""


def run_child(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loops", type=int, default=1000)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--keep", type=Path, default=None, help="write the trace and stores here and keep them")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="rdbridge-bench-mat-"))
    t0 = time.perf_counter()
    paths = tracegen.write_trace(work / "trace", loops=a.loops, key=KEY, fail_last=True)
    print(f"trace: {a.loops} loops written in {time.perf_counter() - t0:.1f}s at {paths.root}")
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} CPUs")
    for w in (int(x) for x in a.workers.split(",")):
        url = f"sqlite:///{work / f'registry-w{w}.sqlite'}"
        store = work / f"store-w{w}"
        full = run_child(str(paths.log_root), str(paths.workspace_root), url, str(store), str(w), "full")
        noop = run_child(str(paths.log_root), str(paths.workspace_root), url, str(store), str(w), "noop")
        assert full["done"] + full["failed"] == a.loops and full["failed"] == 0, full
        assert noop["done"] == 0 and noop["skipped"] == a.loops, noop
        total = full["ingest_seconds"] + full["materialize_seconds"]
        print(f"workers={w}: ingest {full['ingest_seconds']:6.1f}s + materialize {full['materialize_seconds']:6.1f}s"
              f" = {total:6.1f}s  ({a.loops / full['materialize_seconds']:5.1f} loops/s materialize, "
              f"{a.loops / total:5.1f} loops/s both)  peak RSS {full['peak_rss_mb']:5.0f} MB"
              + (" (ingest / parent; a worker process is about the workers=1 figure)" if w > 1 else ""))
        print(f"workers={w}: CPU time ingest {full['ingest_cpu']:6.1f}s, materialize {full['materialize_cpu']:6.1f}s "
              f"(all processes, fork server's imports {full['fork_server_cpu']:.1f}s included; "
              f"{1000 * full['materialize_cpu'] / a.loops:.0f} ms of CPU per loop)")
        print(f"workers={w}: no-op rerun {noop['materialize_seconds']:5.2f}s  (process incl. imports "
              f"{noop['process_seconds']:.2f}s)  peak RSS {noop['peak_rss_mb']:5.0f} MB")
        print(f"load average now: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
