"""Results API vs an MLflow tracking server: the same 10,000 factors, the same loopback client load.

    PYTHONPATH=src python benchmarks/bench_api.py --mlflow /tmp/mlflow-venv/bin/mlflow [--seconds 10]

rdbridge: a SQLite registry with 10,000 RD-Agent factors over 2,000 loops (5 factors per loop, metrics and a
decision per loop), served by `rdbridge serve --workers 2` exactly as a user runs it. MLflow (optional; install it
in a separate venv: `python -m venv /tmp/mlflow-venv && /tmp/mlflow-venv/bin/pip install mlflow`): `mlflow server
--workers 2` on a SQLite backend holding the same factors as 10,000 runs (metrics, params, tags), written once with
MLflow's own SqlAlchemyStore and kept in --workdir for later runs. A second rdbridge server with its response cache
off (RDBRIDGE_API_CACHE_MB=0) shows the cost of answers not cached yet (--no-uncached skips it). Each scenario: 4
client processes (keep-alive httpx), --seconds of closed-loop requests after a warm-up; prints requests/s, p50, p99,
errors, server CPU (user+sys of the server's process tree) per request, the ratios, and per row the target check
(p99 < 50 ms on /catalog/factors?limit=100; >= 10x MLflow's req/s on the list and search scenarios), then one
TARGETS line. Run on a quiet machine, and report `uptime` beside the figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

RUN = "2025-06-01_00-00-00-000000"
FAMILIES = ("Mom", "Rev", "Vol", "Liq", "Skew", "Range", "Gap", "Trend")
T0 = datetime(2025, 6, 1, tzinfo=timezone.utc)


def factor_names(n: int) -> list[str]:
    return [f"{FAMILIES[i % len(FAMILIES)]}_{(i % 60) + 1}D_{i:05d}" for i in range(n)]


def metrics_for(loop: int) -> dict[str, float]:
    r = random.Random(loop)
    return {"IC": r.uniform(-0.05, 0.08), "ICIR": r.uniform(-0.5, 0.8), "Rank IC": r.uniform(-0.05, 0.08),
            "Rank ICIR": r.uniform(-0.5, 0.8),
            "1day.excess_return_with_cost.annualized_return": r.uniform(-0.2, 0.3),
            "1day.excess_return_with_cost.information_ratio": r.uniform(-1, 2),
            "1day.excess_return_with_cost.max_drawdown": r.uniform(-0.3, 0)}


# ------------------------------------------------------------------------------------------------ rdbridge side


def build_registry(url: str, n_factors: int, n_loops: int) -> None:
    """One run, `n_loops` factor loops with metrics and decisions, `n_factors` factors (and their tasks)."""
    from sqlalchemy import insert

    from rdbridge.registry import Factor, Loop, Task, TaskRun, experiment_id_for, init_db

    engine = init_db(url)
    per = n_factors // n_loops
    names = factor_names(n_factors)
    with engine.begin() as conn:
        conn.execute(insert(TaskRun), [{"task_run_id": RUN, "run_folder": "/bench", "scenario": "fin_factor",
                                        "log_trace_path": "/bench", "workspace_root": "/bench/ws",
                                        "status": "completed", "loop_count": n_loops, "created_at_utc": T0,
                                        "updated_at_utc": T0}])
        conn.execute(insert(Loop), [
            {"task_run_id": RUN, "loop_id": i, "experiment_id": experiment_id_for(RUN, i), "action": "factor",
             "status": "completed", "hypothesis": f"hypothesis {i}: {FAMILIES[i % len(FAMILIES)]} adds signal",
             "has_result": 1, "metrics_json": metrics_for(i), "decision": i % 2 == 0,
             "materialization_status": "done", "materialization_attempts": 0,
             "created_at_utc": T0, "updated_at_utc": T0 + timedelta(minutes=i)} for i in range(n_loops)])
        frows, trows = [], []
        for k, name in enumerate(names):
            loop = k // per
            eid = experiment_id_for(RUN, loop)
            desc = f"{name}: {FAMILIES[k % len(FAMILIES)]} factor over {(k % 60) + 1} days"
            frows.append({"factor_id": f"{k:016x}", "factor_name": name, "experiment_id": eid, "task_run_id": RUN,
                          "loop_id": loop, "description": desc, "formulation": f"\\frac{{C_t}}{{C_{{t-{k % 60 + 1}}}}}",
                          "variables_json": {"C": "close"}, "code_sha256": f"{k:064x}",
                          "created_at_utc": T0 + timedelta(minutes=loop)})
            trows.append({"experiment_id": eid, "task_run_id": RUN, "loop_id": loop, "task_index": k % per,
                          "task_type": "factor", "name": name, "description": desc,
                          "formulation": frows[-1]["formulation"], "variables_json": {"C": "close"}})
        conn.execute(insert(Factor), frows)
        conn.execute(insert(Task), trows)
    engine.dispose()


# -------------------------------------------------------------------------------------------------- MLflow side

MLFLOW_FILL = r'''
# Runs in the MLflow venv. MLflow's store writes one run at a time (a few runs/s on SQLite here), so it writes one
# template run with every metric, param and tag, and its rows are cloned with plain SQL for the other runs: each
# MLflow table keyed by run_uuid gets the same rows the store itself wrote, with this run's id, name and values.
import json, sqlite3, sys, time, uuid
from mlflow.entities import Metric, Param, RunTag
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
db, art, spec = sys.argv[1], sys.argv[2], json.loads(open(sys.argv[3]).read())
store = SqlAlchemyStore(db, art)
exp = store.create_experiment("rdagent_factors")
now = int(time.time() * 1000)

def write(f):
    run = store.create_run(exp, "bench", now, [RunTag("factor_name", f["name"]), RunTag("source", "rdagent"),
                                               RunTag("decision", f["decision"])], f["name"])
    store.log_batch(run.info.run_id, [Metric(k, v, now, 0) for k, v in f["metrics"].items()],
                    [Param("formulation", f["formulation"]), Param("experiment_id", f["experiment_id"])],
                    [RunTag("description", f["description"])])
    return run.info.run_id

tpl = write(spec[0])
first = spec[0]
con = sqlite3.connect(db.removeprefix("sqlite:///"))
tables = [t for (t,) in con.execute("select name from sqlite_master where type='table'")
          if any(c[1] == "run_uuid" for c in con.execute(f"pragma table_info({t})"))]
tpl_rows = {}
for t in tables:
    cur = con.execute(f"select * from {t} where run_uuid = ?", (tpl,))
    cols = [d[0] for d in cur.description]
    tpl_rows[t] = (cols, cur.fetchall())

def values(f):
    out = {"factor_name": f["name"], "source": "rdagent", "decision": f["decision"], "description": f["description"],
           "formulation": f["formulation"], "experiment_id": f["experiment_id"], "mlflow.runName": f["name"]}
    out.update(f["metrics"])
    return out

with con:
    for f in spec[1:]:
        rid = uuid.uuid4().hex
        vals = values(f)
        for t, (cols, rows) in tpl_rows.items():
            batch = []
            for row in rows:
                r = dict(zip(cols, row))
                for c, v in r.items():
                    if isinstance(v, str) and tpl in v:
                        r[c] = v.replace(tpl, rid)
                    elif v == first["name"] and c in ("name",):
                        r[c] = f["name"]
                if "key" in r and "value" in r and r["key"] in vals:
                    r["value"] = vals[r["key"]]
                batch.append(tuple(r[c] for c in cols))
            con.executemany(f"insert into {t} ({', '.join(cols)}) values ({', '.join('?' * len(cols))})", batch)
con.close()
check = SqlAlchemyStore(db, art).search_runs([exp], "tags.decision = 'accepted'", 1, max_results=5)
assert len(check) == 5, check
print(exp)
'''


def build_mlflow(mlflow: Path, workdir: Path, n_factors: int, n_loops: int) -> tuple[str, str]:
    """The MLflow SQLite store with the same factors as runs (cached in workdir); returns (db uri, experiment id)."""
    db = workdir / f"mlflow_{n_factors}.sqlite"
    meta = workdir / f"mlflow_{n_factors}.json"
    if db.exists() and meta.exists():
        return f"sqlite:///{db}", json.loads(meta.read_text())["experiment_id"]
    db.unlink(missing_ok=True)
    per = n_factors // n_loops
    spec = [{"name": n, "decision": "accepted" if (k // per) % 2 == 0 else "rejected",
             "metrics": metrics_for(k // per), "formulation": f"C_t / C_(t-{k % 60 + 1})",
             "experiment_id": f"{RUN}/{k // per}",
             "description": f"{n}: {FAMILIES[k % len(FAMILIES)]} factor over {(k % 60) + 1} days"}
            for k, n in enumerate(factor_names(n_factors))]
    spec_file = workdir / "mlflow_spec.json"
    spec_file.write_text(json.dumps(spec))
    py = mlflow.parent / "python"
    t = time.perf_counter()
    out = subprocess.run([str(py), "-c", MLFLOW_FILL, f"sqlite:///{db}", str(workdir / "mlruns"), str(spec_file)],
                         capture_output=True, text=True, check=True)
    exp = out.stdout.strip().splitlines()[-1]
    meta.write_text(json.dumps({"experiment_id": exp}))
    print(f"  MLflow store filled with {n_factors} runs in {time.perf_counter() - t:.0f} s", flush=True)
    return f"sqlite:///{db}", exp


# ------------------------------------------------------------------------------------------------------- load


def tree_cpu(root: int) -> float:
    """User+system CPU seconds of process `root` and all its descendants (Linux /proc; 0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            raw = (d / "stat").read_text()
        except OSError:
            continue
        f = raw[raw.rindex(")") + 2:].split()
        parent[int(d.name)] = int(f[1])
        cpu[int(d.name)] = (int(f[11]) + int(f[12])) / tick
    total = 0.0
    for pid, c in cpu.items():
        p = pid
        while p > 1 and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += c
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def _client(base: str, reqs: list[dict[str, Any]], warmup: float, seconds: float, seed: int,
            out: Any) -> None:
    rnd = random.Random(seed)
    lat: list[float] = []
    errors = 0
    with httpx.Client(base_url=base, timeout=300) as c:
        end_warm = time.perf_counter() + warmup
        while time.perf_counter() < end_warm:
            c.request(**rnd.choice(reqs))
        stop = time.perf_counter() + seconds
        while True:
            t = time.perf_counter()
            if t >= stop:
                break
            r = c.request(**rnd.choice(reqs))
            lat.append(time.perf_counter() - t)
            if r.status_code != 200:
                errors += 1
    out.put((lat, errors))


def load(base: str, reqs: list[dict[str, Any]], clients: int, seconds: float, warmup: float) -> dict[str, float]:
    """`clients` processes, closed loop, each picking a random request of `reqs`; requests/s, p50, p99 (ms)."""
    q: Any = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=_client, args=(base, reqs, warmup, seconds, i, q))
             for i in range(clients)]
    for p in procs:
        p.start()
    res = [q.get() for _ in procs]
    for p in procs:
        p.join()
    lat = sorted(x for r, _ in res for x in r)
    errors = sum(e for _, e in res)
    qs = statistics.quantiles(lat, n=100, method="inclusive")
    return {"rps": len(lat) / seconds, "p50": qs[49] * 1000, "p99": qs[98] * 1000, "n": len(lat), "errors": errors}


def check_same_answers(rd: str, ml: str | None, exp: str | None) -> None:
    """A sanity check that each side answers the scenario with the expected number of items (first requests of a
    cold server on a busy machine may be dropped: retried)."""
    for attempt in range(5):
        try:
            _check(rd, ml, exp)
            return
        except httpx.TransportError:
            if attempt == 4:
                raise
            time.sleep(5)


def _check(rd: str, ml: str | None, exp: str | None) -> None:
    r = httpx.get(rd + "/catalog/factors", params={"limit": 100, "source": "rdagent"}, timeout=300).json()
    assert len(r["items"]) == 100, r
    if ml:
        m = httpx.post(ml + "/api/2.0/mlflow/runs/search", json={"experiment_ids": [exp], "max_results": 100}, timeout=300).json()
        assert len(m["runs"]) == 100, m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlflow", type=Path, help="Path to the `mlflow` executable of a separate venv (omit: rdbridge only).")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/rdbridge_bench_api"))
    ap.add_argument("--factors", type=int, default=10_000)
    ap.add_argument("--loops", type=int, default=2_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--no-uncached", action="store_true",
                    help="Skip the extra rdbridge server started with its response cache off (RDBRIDGE_API_CACHE_MB=0).")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"uptime: {os.popen('uptime').read().strip()}", flush=True)

    reg = args.workdir / f"registry_{args.factors}.sqlite"
    for p in args.workdir.glob(f"registry_{args.factors}.sqlite*"):
        p.unlink()
    t = time.perf_counter()
    build_registry(f"sqlite:///{reg}", args.factors, args.loops)
    print(f"  rdbridge registry: {args.factors} factors, {args.loops} loops in {time.perf_counter() - t:.1f} s",
          flush=True)
    ml_db = exp = None
    if args.mlflow:
        ml_db, exp = build_mlflow(args.mlflow, args.workdir, args.factors, args.loops)

    procs: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ, RDBRIDGE_HOME=str(args.workdir / "home"))
    env.pop("RDBRIDGE_API_TOKEN", None)
    rd_port = free_port()
    rd = f"http://127.0.0.1:{rd_port}"
    procs.append(subprocess.Popen([sys.executable, "-m", "rdbridge.cli", "serve", "--port", str(rd_port),
                                   "--workers", str(args.workers), "--db", f"sqlite:///{reg}"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    nc = None
    if not args.no_uncached:
        nc_port = free_port()
        nc = f"http://127.0.0.1:{nc_port}"
        procs.append(subprocess.Popen([sys.executable, "-m", "rdbridge.cli", "serve", "--port", str(nc_port),
                                       "--workers", str(args.workers), "--db", f"sqlite:///{reg}"],
                                      env=dict(env, RDBRIDGE_API_CACHE_MB="0"),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    ml_proc = None
    ml = None
    if args.mlflow:
        ml_port = free_port()
        ml = f"http://127.0.0.1:{ml_port}"
        art = args.workdir / "mlartifacts"
        procs.append(subprocess.Popen([str(args.mlflow), "server", "--backend-store-uri", ml_db,
                                       "--default-artifact-root", str(art), "--host", "127.0.0.1", "--port",
                                       str(ml_port), "--workers", str(args.workers),
                                       # the same worker heartbeat allowance rdbridge serve gives its workers
                                       "--uvicorn-opts", "--timeout-worker-healthcheck 60"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=args.workdir))
        ml_proc = procs[-1]
    try:
        wait_http(rd + "/health", procs[0])
        if nc:
            wait_http(nc + "/health", procs[1])
        if ml and ml_proc:
            wait_http(ml + "/health", ml_proc)
        check_same_answers(rd, ml, exp)
        names = factor_names(args.factors)
        rnd = random.Random(7)
        picks = rnd.sample(names, 200)
        rd_get = [{"method": "GET", "url": "/factors/" + n} for n in picks]
        scenarios: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]] | None]] = [
            ("list 100 (rdbridge /catalog/factors?limit=100&source=rdagent | MLflow runs/search max_results=100)",
             [{"method": "GET", "url": "/catalog/factors", "params": {"limit": 100, "source": "rdagent"}}],
             [{"method": "POST", "url": "/api/2.0/mlflow/runs/search",
               "json": {"experiment_ids": [exp], "max_results": 100}}]),
            ("filtered list 100 (tag=accepted | filter tags.decision = 'accepted')",
             [{"method": "GET", "url": "/catalog/factors", "params": {"limit": 100, "source": "rdagent",
                                                                      "tag": "accepted"}}],
             [{"method": "POST", "url": "/api/2.0/mlflow/runs/search",
               "json": {"experiment_ids": [exp], "max_results": 100,
                        "filter": "tags.decision = 'accepted'"}}]),
            ("text search (q=Mom_1 | filter tags.factor_name LIKE '%Mom_1%')",
             [{"method": "GET", "url": "/catalog/factors", "params": {"limit": 100, "q": "Mom_1",
                                                                      "source": "rdagent"}}],
             [{"method": "POST", "url": "/api/2.0/mlflow/runs/search",
               "json": {"experiment_ids": [exp], "max_results": 100,
                        "filter": "tags.factor_name LIKE '%Mom_1%'"}}]),
            ("single get (/factors/{name} | runs/get)", rd_get, None),
            ("alpha158 page (/catalog/factors?limit=100, no DB) | -", [{"method": "GET", "url": "/catalog/factors",
                                                                       "params": {"limit": 100}}], None),
        ]
        ml_get: list[dict[str, Any]] = []
        if ml:
            by_name = {}
            token = None
            while True:
                body: dict[str, Any] = {"experiment_ids": [exp], "max_results": 1000}
                if token:
                    body["page_token"] = token
                page = httpx.post(ml + "/api/2.0/mlflow/runs/search", json=body, timeout=300).json()
                for run in page.get("runs", []):
                    by_name[run["info"]["run_name"]] = run["info"]["run_id"]
                token = page.get("next_page_token")
                if not token or len(by_name) >= args.factors:
                    break
            ml_get = [{"method": "GET", "url": "/api/2.0/mlflow/runs/get", "params": {"run_id": by_name[n]}}
                      for n in picks]
        print(f"\n{args.clients} loopback clients, {args.seconds:.0f} s per scenario, {args.workers} server workers "
              "each. rdbridge = `rdbridge serve` (response cache on, the default); rdb-nocache = the same with "
              "RDBRIDGE_API_CACHE_MB=0 (every request runs its query); server CPU = user+sys seconds of the server's "
              "processes per request.\n", flush=True)
        hdr = (f"{'scenario':<52} {'side':<11} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} "
               f"{'srv cpu ms/req':>14}  target")
        print(hdr)
        print("-" * len(hdr))
        sides: list[tuple[str, str, subprocess.Popen[bytes]]] = [("rdbridge", rd, procs[0])]
        if nc:
            sides.append(("rdb-nocache", nc, procs[1]))
        verdicts: list[bool] = []
        for i, (title, rd_reqs, ml_reqs) in enumerate(scenarios):
            if title.startswith("single get"):
                ml_reqs = ml_get or None
            results: dict[str, dict[str, float]] = {}
            runs = [(name, base, proc, rd_reqs) for name, base, proc in sides]
            if ml and ml_reqs and ml_proc:
                runs.append(("MLflow", ml, ml_proc, ml_reqs))
            for name, base, proc, reqs in runs:
                c0 = tree_cpu(proc.pid)
                r = load(base, reqs, args.clients, args.seconds, args.warmup)
                # the warm-up's requests are not counted in n: their CPU share is small beside --seconds
                r["cpu"] = (tree_cpu(proc.pid) - c0) * 1000 / max(1, r["n"]) * args.seconds / (args.seconds + args.warmup)
                results[name] = r
            list_route = i < 3
            for name, r in results.items():
                target = ""
                if name == "rdbridge":
                    checks = []
                    if i == 0 or list_route:
                        ok = r["p99"] < 50
                        checks.append(f"p99<50ms {'OK' if ok else 'MISS'}")
                        if i == 0:
                            verdicts.append(ok)
                    if "MLflow" in results:
                        ratio = r["rps"] / results["MLflow"]["rps"]
                        ok = ratio >= 10
                        checks.append(f"{ratio:.1f}x MLflow req/s " + (("OK" if ok else "MISS") if list_route
                                                                      else "(no target)"))
                        if list_route:
                            verdicts.append(ok)
                    target = "; ".join(checks)
                elif name == "rdb-nocache" and "MLflow" in results:
                    target = f"{r['rps'] / results['MLflow']['rps']:.1f}x MLflow req/s (info)"
                print(f"{(title if name == 'rdbridge' else '')[:52]:<52} {name:<11} {r['rps']:>7.1f} "
                      f"{r['p50']:>7.1f} {r['p99']:>7.1f} {int(r['errors']):>4} {r['cpu']:>14.2f}  {target}",
                      flush=True)
            if "MLflow" in results:
                a, b = results["rdbridge"], results["MLflow"]
                print(f"{'':<52} {'ratio':<11} {a['rps'] / b['rps']:>6.1f}x {b['p50'] / a['p50']:>6.1f}x "
                      f"{b['p99'] / a['p99']:>6.1f}x {'':>4} {b['cpu'] / a['cpu']:>13.1f}x  (MLflow / rdbridge "
                      "for latency and CPU)", flush=True)
        if verdicts:
            print(f"\nTARGETS: {'ALL MET' if all(verdicts) else 'NOT MET'} (p99 < 50 ms on /catalog/factors?limit=100; "
                  ">= 10x MLflow req/s on the three list/search scenarios" + ("" if ml else "; no MLflow: ratios not checked") + ")")
        print(f"\nuptime: {os.popen('uptime').read().strip()}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
