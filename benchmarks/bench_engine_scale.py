"""Benchmark: the whole `rdbridge engine compute --alpha158` process at scale, single process and on Dask.

Run by hand (not a test), under the benchmark lock on a shared machine:

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_engine_scale.py                    # 300 / 1,000 / 5,000 x 2,500
    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_engine_scale.py --sizes 300x2500 --qlib   # + pyqlib

Each row is one fresh `python -m rdbridge.cli engine compute` process (what a user runs), timed from process start
to exit (output closed and committed) by this parent: wall time, CPU time (user + sys of the whole process tree,
from ``os.wait4``) and peak memory (the largest sampled sum of RSS over the process and its children: a Dask
cluster's workers are children). Beside it, the inner figures the command reports with ``--json``: its own
seconds after imports (``job``) and the time spent loading and computing the partitions (``compute``), so
``whole / compute`` is the ratio issue 24 asks to keep within 2x. ``--workers N`` rows run the same job on a local
Dask cluster of N worker processes. ``--qlib`` adds pyqlib's ``D.features`` for the same 158 factors as a whole
process too, at the sizes of ``--qlib-sizes`` (300 x 2,500 by default). The last lines estimate a 64-core
cluster from the measured CPU seconds per partition (a paper estimate, said how).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class _TreeSampler:
    """Peak of the summed RSS of a process and its descendants, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            total = 0
            try:
                for p in [self.proc, *self.proc.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except Exception:  # noqa: BLE001 - a child may exit between listing and reading
                        pass
            except Exception:  # noqa: BLE001 - the process ended
                return
            self.peak = max(self.peak, total)
            time.sleep(0.05)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))


def run_process(cmd: list[str], cwd: Path) -> dict:
    """One fresh process: wall, CPU (tree), peak RSS (tree sum), and its JSON document if it printed one."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=cwd)
    sampler = _TreeSampler(proc.pid)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.stop.set()
    usage = _children_usage()
    res: dict = {"wall_s": wall, "cpu_s": usage, "peak_mb": sampler.peak / 2**20, "rc": proc.returncode}
    doc = next((ln for ln in out.splitlines()[::-1] if ln.startswith("{")), None)
    if doc:
        res["doc"] = json.loads(doc)
    if proc.returncode != 0:
        res["error"] = (err.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:300]
    return res


_LAST_CPU = [0.0]


def _children_usage() -> float:
    """CPU seconds of the children reaped since the last call (RUSAGE_CHILDREN is cumulative)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = ru.ru_utime + ru.ru_stime
    delta = total - _LAST_CPU[0]
    _LAST_CPU[0] = total
    return delta


def build(size: str, data_root: Path) -> Path:
    """The synthetic panel as a Qlib dir (cached under ``data_root``): bench_engine.py's panel and seed."""
    d = data_root / f"qlib_{size}"
    if (d / "calendars").is_dir():
        return d
    code = ("import sys; from pathlib import Path; from rdbridge.engine.data import write_qlib_dir; "
            "from rdbridge.engine.synthetic import make_panel; n, m = map(int, sys.argv[1].split('x')); "
            "write_qlib_dir(make_panel(n, m, seed=2024, late_listing_frac=0.2, suspension_frac=0.01), Path(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", code, size, str(d)], check=True, env=_env())
    _children_usage()
    return d


def engine_cmd(data: Path, out: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "rdbridge.cli", "engine", "compute", "--data", str(data), "--out", str(out),
            "--alpha158", "--json", *extra]


def qlib_cmd(data: Path) -> list[str]:
    return [sys.executable, str(ROOT / "benchmarks" / "bench_engine.py"), "--worker", "qlib", "--qlib-dir", str(data),
            "--kernels", "2"]


def _load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def fmt_row(label: str, r: dict, base: dict | None) -> str:
    if "error" in r:
        return f"| {label} | failed: {r['error']} |"
    doc = r.get("doc", {})
    phases = doc.get("phases", {})
    compute = phases.get("compute_s")
    inner = doc.get("job_seconds")
    ratio = f"{r['wall_s'] / compute:.2f}x" if compute else "-"
    vs = f"{base['wall_s'] / r['wall_s']:.2f}x" if base and "error" not in base else "-"
    return (f"| {label} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['peak_mb']:,.0f} | "
            f"{inner if inner is not None else '-'} | {compute if compute is not None else '-'} | {ratio} | "
            f"{doc.get('partitions', '-')} | {vs} | {_load_at(r)} |")


def _load_at(r: dict) -> str:
    return r.get("load", "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="300x2500,1000x2500,5000x2500", help="INSTRUMENTSxDAYS, comma-separated")
    ap.add_argument("--workers", default="1,2", help="local Dask cluster sizes to run (empty: none)")
    ap.add_argument("--memory-limit", default="3GB", help="--memory-limit of every engine run")
    ap.add_argument("--qlib", action="store_true", help="also time pyqlib's D.features as a whole process")
    ap.add_argument("--qlib-sizes", default="300x2500",
                    help="comma-separated sizes pyqlib runs at with --qlib (it holds the panel and every factor "
                         "in pandas in one process: its peak RSS is in the row)")
    ap.add_argument("--repeat", type=int, default=1, help="fresh processes per row; the median wall is kept")
    ap.add_argument("--data-root", default=None, help="where to keep the generated Qlib dirs (default: a temp dir)")
    ap.add_argument("--out-root", default=None, help="where outputs go (default: a temp dir, removed)")
    args = ap.parse_args()

    data_root = Path(args.data_root) if args.data_root else Path(tempfile.mkdtemp(prefix="bench_scale_data_"))
    out_root = Path(args.out_root) if args.out_root else Path(tempfile.mkdtemp(prefix="bench_scale_out_"))
    data_root.mkdir(parents=True, exist_ok=True)
    out_root.mkdir(parents=True, exist_ok=True)
    workers = [int(w) for w in args.workers.split(",") if w]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, --memory-limit {args.memory_limit}; {_load()}")
    print("whole = process start to exit, measured here; cpu = user+sys of the process tree; peak = largest sum "
          "of RSS over the tree; job / compute = the command's own --json figures (job: after its imports; "
          "compute: loading + computing the partitions); whole/compute: issue 24's ratio (target <= 2x); "
          "speed-up = the first row of the size (single process) / this row, or pyqlib / engine")
    print()
    print("| run | whole s | cpu s | peak MB | job s | compute s | whole/compute | partitions | speed-up | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    estimates = []
    for size in [s for s in args.sizes.split(",") if s]:
        data = build(size, data_root)

        def best(cmd: list[str], tag: str) -> dict:
            runs = []
            for _ in range(max(args.repeat, 1)):
                out = out_root / f"{size}_{tag}"
                shutil.rmtree(out, ignore_errors=True)
                if out.with_suffix(".parquet").exists():
                    out.with_suffix(".parquet").unlink()
                load = _load()
                r = run_process(cmd, data.parent)
                r["load"] = load
                runs.append(r)
                shutil.rmtree(out, ignore_errors=True)
                for p in out_root.glob(f"{size}_{tag}*"):
                    p.unlink() if p.is_file() else shutil.rmtree(p, ignore_errors=True)
            runs.sort(key=lambda x: x["wall_s"])
            return runs[len(runs) // 2]

        lim = ["--memory-limit", args.memory_limit]
        single = best(engine_cmd(data, out_root / f"{size}_single.parquet", lim), "single")
        print(fmt_row(f"{size} engine, 1 process, one .parquet file", single, None), flush=True)
        ds = best(engine_cmd(data, out_root / f"{size}_dataset", lim), "dataset")
        print(fmt_row(f"{size} engine, 1 process, dataset dir", ds, single), flush=True)
        for w in workers:
            r = best(engine_cmd(data, out_root / f"{size}_w{w}", [*lim, "--workers", str(w)]), f"w{w}")
            print(fmt_row(f"{size} engine, Dask local cluster, {w} worker(s)", r, single), flush=True)
        if args.qlib and size in args.qlib_sizes.split(","):
            q = best(qlib_cmd(data), "qlib")
            if "error" not in q:
                print(f"| {size} pyqlib 0.9.7 D.features (2 kernels), whole process | {q['wall_s']:.2f} | "
                      f"{q['cpu_s']:.2f} | {q['peak_mb']:,.0f} | - | - | - | - | engine single is "
                      f"{q['wall_s'] / single['wall_s']:.1f}x faster | {q['load']} |", flush=True)
            else:
                print(f"| {size} pyqlib | failed: {q['error']} |")
        if "error" not in ds and ds.get("doc"):
            estimates.append((size, ds))
    # numba's cache loading: the first warm_up of a process loads every kernel signature from the on-disk cache,
    # the second finds them loaded; the difference is what a one-shot process pays for it
    print()
    code = ("import time; t = time.perf_counter(); import rdbridge.engine.runner; i = time.perf_counter() - t; "
            "from rdbridge.engine.warmup import warm_up; a = warm_up(); b = warm_up(); "
            "print('{\"import_s\": %.3f, \"first\": %.3f, \"second\": %.3f}' % (i, a, b))")
    w = run_process([sys.executable, "-c", code], out_root)
    if "doc" in w:
        d = w["doc"]
        print(f"numba cache loading (first warm_up - second, 3 x 80 panel, Alpha158 + EXTRA): "
              f"{d['first'] - d['second']:.2f} s (first {d['first']:.2f} s, second {d['second']:.2f} s); "
              f"importing the engine (numpy, polars, pyarrow, numba and its CPU target): {d['import_s']:.2f} s")
    # paper estimate: CPU seconds per partition from the dataset runs, spread over 64 cores
    tiny = run_process(engine_cmd(build("300x2500", data_root), out_root / "tiny.parquet",
                                  ["--instruments", "SH600000"]), out_root)
    fixed = tiny["cpu_s"]
    print(f"fixed cost of one process (imports, numba cache, one instrument): {tiny['wall_s']:.2f} s wall, "
          f"{fixed:.2f} CPU-s")
    for size, ds in estimates:
        parts = ds["doc"]["partitions"]
        per_part = max(ds["cpu_s"] - fixed, 0.0) / parts
        n_inst, n_days = (int(x) for x in size.split("x"))
        rows = ds["doc"]["rows"]
        # on 64 single-core workers: one fixed start-up per worker (in parallel), then the partitions in waves of
        # 64; a 64-core run would use about 64 x 2 partitions of ~rows/128 each, so scale the per-row CPU cost
        cpu_per_row = per_part * parts / rows
        est = tiny["wall_s"] + cpu_per_row * rows / 64
        print(f"64-core estimate {size}: {per_part:.2f} CPU-s per partition x {parts} partitions "
              f"({cpu_per_row * 1e6:.2f} CPU-us per row, {rows:,} rows) -> {est:.1f} s "
              f"(= start-up {tiny['wall_s']:.1f} s + CPU / 64, perfect packing, output bandwidth not counted); "
              f"5,000 x 5,000 would be {tiny['wall_s'] + cpu_per_row * 5000 * 5000 * 0.9 / 64:.1f} s")
    if not args.out_root:
        shutil.rmtree(out_root, ignore_errors=True)
    print(f"done; {_load()}")


if __name__ == "__main__":
    main()
