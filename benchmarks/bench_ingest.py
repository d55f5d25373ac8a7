"""Ingest benchmark: a synthetic RD-Agent trace of N loops (default 1,000), ingested cold and then again (no-op).

Run:  .venv/bin/python benchmarks/bench_ingest.py [--loops 1000] [--db URL] [--keep DIR]
Prints loops/second and peak RSS of each ingest, each measured in its own child process (so peak memory is the
ingest's own, not this script's). Not a test: numbers depend on the machine; the README quotes a run of it.
"""

from __future__ import annotations

import argparse
import json
import resource
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
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from rdbridge.ingest import ingest
r = ingest(log_root=Path(sys.argv[1]), workspace_root=Path(sys.argv[2]), db_url=sys.argv[3], signing_key=b"k" * 32)
print(json.dumps({"seconds": time.perf_counter() - t0, "ingest_seconds": r.elapsed_seconds,
                  "loops": r.counts.loops_seen, "new": r.counts.loops_new, "unchanged": r.counts.loops_unchanged,
                  "issues": len(r.issues), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(log_root: Path, ws_root: Path, url: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(log_root), str(ws_root), url], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loops", type=int, default=1000)
    ap.add_argument("--db", default=None, help="registry URL (default: a fresh SQLite file)")
    ap.add_argument("--keep", type=Path, default=None, help="write the trace here and keep it")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="rdbridge-bench-"))
    t0 = time.perf_counter()
    paths = tracegen.write_trace(work / "trace", loops=a.loops, key=KEY, fail_last=True)
    gen_s = time.perf_counter() - t0
    url = a.db or f"sqlite:///{work / 'registry.sqlite'}"
    n_pickles = sum(1 for _ in paths.run_dir.rglob("*.pkl"))
    print(f"trace: {a.loops} loops, {n_pickles} pickles, written in {gen_s:.1f}s at {paths.root}")
    print(f"registry: {url}")
    cold = run_child(paths.log_root, paths.workspace_root, url)
    warm = run_child(paths.log_root, paths.workspace_root, url)
    assert cold["new"] == a.loops and warm["unchanged"] == a.loops, (cold, warm)
    for name, r in (("cold ingest", cold), ("re-ingest (no change)", warm)):
        print(f"{name:24s} {r['ingest_seconds']:7.2f}s  {r['loops'] / r['ingest_seconds']:8.1f} loops/s  "
              f"peak RSS {r['peak_rss_mb']:6.0f} MB  (process incl. imports {r['seconds']:.2f}s)")


if __name__ == "__main__":
    main()
