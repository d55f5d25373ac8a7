"""Benchmark: all 158 Alpha158 factors with pyqlib and with rdbridge's engine on the same synthetic panel.

Run by hand (not a test):

    .venv/bin/python benchmarks/bench_engine.py                      # 300 x 2,500 plus 3 scaling sizes
    .venv/bin/python benchmarks/bench_engine.py --sizes 300x2500     # one size only
    .venv/bin/python benchmarks/bench_engine.py --check              # also compare the big results value by value

The optional peer, expr_codegen + polars_ta, is not a project dependency; install it beside the project to time it:

    .venv/bin/pip install --target /tmp/peer expr_codegen==0.17.0 polars_ta==0.5.18 numba ...  # see docs/engine.md
    .venv/bin/python benchmarks/bench_engine.py --peer --peer-path /tmp/peer

Each tool runs in its own subprocess, so peak memory is per tool: ``ru_maxrss`` of that subprocess tree (from
``os.wait4``) and the peak of the summed RSS of the process and its children, sampled every 20 ms with psutil
(pyqlib's kernels are separate processes; their memory adds up). Times exclude interpreter start and imports:
pyqlib's is ``D.features`` after ``qlib.init`` (kernels=2, expression and dataset caches off); the engine's is
reading the same Qlib ``.bin`` dir with our data service plus ``compute``, after ``engine.warmup.warm_up`` has
loaded the compiled kernels from numba's cache (as a service does once at start-up). The warm-up time is printed,
and a second ratio counts it as part of the engine's time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

FIELDS = ["open", "high", "low", "close", "volume", "vwap", "factor"]


# --- worker side (runs in a fresh subprocess) ------------------------------------------------------------------------


class _TreePeak:
    """Peak of the summed RSS of this process and its descendants, sampled in a background thread."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        for p in [self._proc, *self._proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except Exception:  # noqa: BLE001 - a child may exit between listing and reading
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self._interval)

    def __enter__(self) -> _TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def _alpha158() -> dict[str, str]:
    from rdbridge.contracts.alpha158 import alpha158_expressions

    return alpha158_expressions()


def _worker_qlib(qlib_dir: Path, kernels: int, out: Path | None) -> dict:
    import logging

    import qlib
    from qlib.data import D

    exprs = _alpha158()
    t0 = time.perf_counter()
    qlib.init(provider_uri=str(qlib_dir), region="cn", kernels=kernels, expression_cache=None,
              dataset_cache=None, logging_level=logging.ERROR)
    t1 = time.perf_counter()
    df = D.features(D.instruments("all"), list(exprs.values()), freq="day")
    t2 = time.perf_counter()
    df.columns = list(exprs)
    if out is not None:
        import polars as pl

        pl.from_pandas(df.reset_index()).write_parquet(out)
    return {"init_s": t1 - t0, "seconds": t2 - t1, "rows": len(df), "factors": df.shape[1]}


def _worker_engine(qlib_dir: Path, out: Path | None) -> dict:
    from rdbridge.engine import compute  # type: ignore[attr-defined]
    from rdbridge.engine.data import open_data_service
    from rdbridge.engine.warmup import warm_up

    exprs = _alpha158()
    warm_s = warm_up()  # loads the kernels from numba's cache, as a service does at start-up (not counted)
    t0 = time.perf_counter()
    panel = open_data_service(qlib_dir).load(FIELDS)
    t1 = time.perf_counter()
    res = compute(panel, exprs)
    t2 = time.perf_counter()
    if out is not None:
        res.write_parquet(out)
    return {"load_s": t1 - t0, "compute_s": t2 - t1, "seconds": t2 - t0, "rows": res.height,
            "factors": res.width - 2, "warm_s": warm_s}


_PEER_FUNCS = {"Ref": "ts_delay", "Mean": "ts_mean", "Std": "ts_std_dev", "Max": "ts_max", "Min": "ts_min",
               "Quantile": "ts_percentage", "Rank": "ts_rank", "IdxMax": "ts_arg_max", "IdxMin": "ts_arg_min",
               "Corr": "ts_corr", "Sum": "ts_sum", "Greater": "max_", "Less": "min_", "Abs": "abs_", "Log": "log"}


def to_peer_syntax(expr: str) -> str | None:
    """A Qlib expression in expr_codegen/polars_ta (WorldQuant-style) names; None when the peer lacks an operator.

    Only for timing: the peer's own semantics differ from Qlib's in places (e.g. Std's ddof), so its numbers are
    not compared. Slope, Rsquare and Resi (BETA, RSQR, RESI) have no direct peer function and are skipped.
    """
    import ast

    tree = ast.parse(expr.replace("$", ""), mode="eval")

    class _Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return ast.Name(node.id.upper() if node.id.islower() else node.id, ast.Load())

        def visit_Call(self, node: ast.Call) -> ast.AST:
            self.generic_visit(node)
            if not isinstance(node.func, ast.Name) or node.func.id not in _PEER_FUNCS:
                raise KeyError(getattr(node.func, "id", "?"))
            node.func = ast.Name(_PEER_FUNCS[node.func.id], ast.Load())
            return node

        def visit_Compare(self, node: ast.Compare) -> ast.AST:
            self.generic_visit(node)
            return ast.Call(ast.Name("if_else", ast.Load()), [node, ast.Constant(1), ast.Constant(0)], [])

    try:
        return ast.unparse(_Rename().visit(tree))
    except KeyError:
        return None


def _worker_peer(qlib_dir: Path) -> dict:
    """expr_codegen + polars_ta: generate polars code for the Alpha158 factors it can express, then run it."""
    import polars as pl
    from expr_codegen import codegen_exec
    from loguru import logger

    from rdbridge.engine.data import open_data_service

    logger.remove()
    lines = [f"{n} = {c}" for n, e in _alpha158().items() if (c := to_peer_syntax(e)) is not None]
    code_file = qlib_dir.parent / "peer_alpha158.py"
    t0 = time.perf_counter()
    codegen_exec(None, "\n".join(lines), over_null=None, output_file=str(code_file))
    t1 = time.perf_counter()
    panel = open_data_service(qlib_dir).load(FIELDS)
    fields = [f for f in FIELDS if f != "factor"]
    df = panel.rename({"instrument": "asset", "datetime": "date", **{f: f.upper() for f in fields}}).with_columns(
        pl.col(pl.Float32).fill_nan(None))
    t2 = time.perf_counter()
    out = codegen_exec(df, "\n".join(lines), over_null=None, output_file=str(code_file), run_file=True)
    t3 = time.perf_counter()
    del out
    # polars_ta JIT-compiles some functions with numba on first use: time a second, warm run as well.
    out = codegen_exec(df, "\n".join(lines), over_null=None, output_file=str(code_file), run_file=True)
    t4 = time.perf_counter()
    return {"codegen_s": t1 - t0, "load_s": t2 - t1, "compute_s": t3 - t2, "seconds": t3 - t1,
            "warm_compute_s": t4 - t3, "factors": out.width - df.width, "rows": out.height}


def worker_main(args: argparse.Namespace) -> None:
    out = Path(args.out) if args.out else None
    if args.worker == "build":
        n_inst, n_days = (int(x) for x in args.size.split("x"))
        print("RESULT " + json.dumps({"rows": build_data(n_inst, n_days, Path(args.qlib_dir))}), flush=True)
        return
    if args.worker == "warm":
        from rdbridge.engine.warmup import warm_up

        print("RESULT " + json.dumps({"seconds": warm_up()}), flush=True)
        return
    if args.worker == "check":
        print("RESULT " + json.dumps({"summary": check_results(out, Path(args.ref))}), flush=True)
        return
    with _TreePeak() as peak:
        if args.worker == "qlib":
            res = _worker_qlib(Path(args.qlib_dir), args.kernels, out)
        elif args.worker == "engine":
            res = _worker_engine(Path(args.qlib_dir), out)
        else:
            res = _worker_peer(Path(args.qlib_dir))
    res["tree_peak_mb"] = peak.peak / 2**20
    print("RESULT " + json.dumps(res), flush=True)


# --- parent side ---------------------------------------------------------------------------------------------------


def run_worker(kind: str, qlib_dir: Path, kernels: int, out: Path | None = None, extra_path: str = "",
               extra: tuple[str, ...] = ()) -> dict:
    """Run one tool in a fresh interpreter; its ``ru_maxrss`` comes from ``os.wait4`` on exactly that child.

    Linux carries a process's pre-exec peak into ``ru_maxrss``, so the parent must stay small: it builds no data
    and compares no results itself (both run as workers too).
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--qlib-dir", str(qlib_dir),
           "--kernels", str(kernels), *extra]
    if out is not None:
        cmd += ["--out", str(out)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), extra_path) if p))
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=qlib_dir.parent)
        stdout = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            log.seek(0)
            tail = log.read().strip().splitlines()[-3:]
            return {"error": " | ".join(tail) or f"exit code {proc.returncode}"}
    res = json.loads(line[len("RESULT "):])
    res["maxrss_mb"] = usage.ru_maxrss / 1024  # Linux: KiB
    return res


def run_repeated(kind: str, qlib_dir: Path, kernels: int, repeat: int, out: Path | None = None) -> dict:
    """``repeat`` fresh-process runs of one tool; the run with the median time, plus every run's time. The output
    file (for ``--check``) is written by the first run only."""
    runs = [run_worker(kind, qlib_dir, kernels, out if k == 0 else None) for k in range(max(repeat, 1))]
    bad = [r for r in runs if "error" in r]
    if bad:
        return bad[0]
    runs.sort(key=lambda r: r["seconds"])
    med = dict(runs[len(runs) // 2])
    med["all_s"] = [r["seconds"] for r in runs]
    med["maxrss_mb"] = max(r["maxrss_mb"] for r in runs)
    med["tree_peak_mb"] = max(r["tree_peak_mb"] for r in runs)
    return med


def build_data(n_inst: int, n_days: int, qlib_dir: Path) -> int:
    """Write the synthetic panel as a Qlib dir (runs in a subprocess so the parent stays small, see run_worker)."""
    from rdbridge.engine.data import write_qlib_dir
    from rdbridge.engine.synthetic import make_panel

    panel = make_panel(n_inst, n_days, seed=2024, late_listing_frac=0.2, suspension_frac=0.01)
    write_qlib_dir(panel, qlib_dir)
    return panel.height


def check_results(engine_out: Path, qlib_out: Path) -> str:
    """Value-by-value comparison of the two big outputs, with the tests' tolerance."""
    import polars as pl

    sys.path.insert(0, str(ROOT))
    from tests.engine.qlib_ref import compare_one

    exprs = _alpha158()
    ours = pl.read_parquet(engine_out).sort(["instrument", "datetime"])
    ref = pl.read_parquet(qlib_out).with_columns(pl.col("datetime").cast(pl.Datetime("us"))).sort(
        ["instrument", "datetime"])
    bad = [m for n, e in exprs.items() if (m := compare_one(n, e, ours, ref))]
    if not bad:
        return f"check: all {len(exprs)} factors equal to pyqlib on {ref.height:,} rows"
    return f"check: {len(exprs) - len(bad)} of {len(exprs)} factors equal; mismatches:\n    " + "\n    ".join(
        m.summary() for m in bad)


def _fmt(res: dict) -> str:
    if "error" in res:
        return f"failed: {res['error'][:300]}"
    extra = ""
    if "load_s" in res:
        extra = f" (load {res['load_s']:.2f} s + compute {res['compute_s']:.2f} s)"
    if "warm_s" in res:
        extra += f"; kernel loading (warm_up) {res['warm_s']:.2f} s before, not counted"
    if "codegen_s" in res:
        extra += (f"; warm second run {res['warm_compute_s']:.2f} s; code generation {res['codegen_s']:.1f} s "
                  "not counted")
    if "init_s" in res:
        extra = f" (qlib.init {res['init_s']:.2f} s not counted)"
    if len(res.get("all_s", [])) > 1:
        extra += f"; median of {len(res['all_s'])} runs: " + " / ".join(f"{t:.2f}" for t in res["all_s"]) + " s"
    return (f"{res['seconds']:8.2f} s{extra}, {res['factors']} factors, peak RSS {res['maxrss_mb']:,.0f} MB "
            f"(tree sum {res['tree_peak_mb']:,.0f} MB; largest of the runs)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="300x2500,150x2500,600x2500,300x5000",
                    help="comma-separated INSTRUMENTSxDAYS; the first is the headline size")
    ap.add_argument("--kernels", type=int, default=2, help="pyqlib kernels (worker processes)")
    ap.add_argument("--peer", action="store_true", help="also time expr_codegen + polars_ta (installed separately)")
    ap.add_argument("--peer-path", default="", help="extra sys.path dir holding expr_codegen/polars_ta (pip --target)")
    ap.add_argument("--check", action="store_true", help="compare the headline results value by value")
    ap.add_argument("--no-qlib", action="store_true", help="skip pyqlib (engine only)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="fresh-process runs per tool and size; the median run is reported (this VM's page-fault "
                         "cost varies a lot from run to run)")
    ap.add_argument("--worker", choices=["qlib", "engine", "peer", "build", "check", "warm"], help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    ap.add_argument("--ref", help=argparse.SUPPRESS)
    ap.add_argument("--qlib-dir", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main(args)
        return

    sizes = [tuple(int(x) for x in s.lower().split("x")) for s in args.sizes.split(",") if s]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; pyqlib kernels={args.kernels}")
    with tempfile.TemporaryDirectory(prefix="bench_engine_") as tmp:
        root = Path(tmp)
        primed = run_worker("warm", root / "warm", args.kernels)  # compiles the kernels into numba's cache if needed
        print(f"numba cache primed in {primed.get('seconds', float('nan')):.1f} s (compiles only on a fresh install)")
        for k, (n_inst, n_days) in enumerate(sizes):
            qlib_dir = root / f"qlib_{n_inst}x{n_days}"
            built = run_worker("build", qlib_dir, args.kernels, extra=("--size", f"{n_inst}x{n_days}"))
            if "error" in built:
                sys.exit(f"building the {n_inst}x{n_days} panel failed: {built['error']}")
            rows = built["rows"]
            headline = k == 0
            print(f"\n== {n_inst} instruments x {n_days} days ({rows:,} rows), 158 Alpha158 factors ==")
            eng_out = root / "engine.parquet" if (headline and args.check) else None
            q_out = root / "qlib.parquet" if (headline and args.check) else None
            eng = run_repeated("engine", qlib_dir, args.kernels, args.repeat, eng_out)
            print(f"  rdbridge engine : {_fmt(eng)}")
            q = {"error": "skipped"} if args.no_qlib else run_repeated("qlib", qlib_dir, args.kernels, args.repeat,
                                                                        q_out)
            print(f"  pyqlib 0.9.7    : {_fmt(q)}")
            if "error" not in eng and "error" not in q:
                print(f"  speed-up        : {q['seconds'] / eng['seconds']:.1f}x faster than pyqlib, "
                      f"peak memory {eng['tree_peak_mb'] / q['tree_peak_mb']:.2f}x of pyqlib's (tree sum); "
                      f"counting the kernel loading too: {q['seconds'] / (eng['seconds'] + eng['warm_s']):.1f}x")
            if headline and args.peer:
                peer = run_worker("peer", qlib_dir, args.kernels, extra_path=args.peer_path)
                print(f"  expr_codegen+polars_ta: {_fmt(peer)}")
            if eng_out is not None and q_out is not None and eng_out.exists() and q_out.exists():
                checked = run_worker("check", qlib_dir, args.kernels, eng_out, extra=("--ref", str(q_out)))
                print("  " + checked.get("summary", f"check failed: {checked.get('error')}"))
            for p in (eng_out, q_out):
                if p is not None:
                    p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
