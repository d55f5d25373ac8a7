"""The whole job: partitioned runs equal the in-memory compute (all 158 Alpha158 plus cross-sectional
expressions), a local Dask cluster equals the single process, and a killed run leaves nothing marked complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from rdbridge.contracts.alpha158 import alpha158_expressions
from rdbridge.contracts.engine_job import MANIFEST_NAME, EngineJobManifest
from rdbridge.engine import compute
from rdbridge.engine.data import open_data_service, write_qlib_dir
from rdbridge.engine.job import plan_partitions, read_dataset, run_job
from rdbridge.engine.synthetic import make_panel

FIELDS = ["open", "high", "low", "close", "volume", "vwap", "factor"]
CS = {
    "CS_RANK_RET": "CSRank($close / Ref($close, 1) - 1)",
    "CS_Z_STD20": "CSZScore(Std($close, 20) / $close)",
    "CS_DEMEAN_VOL": "CSDemean(Log($volume + 1))",
    "TS_OF_CS": "Mean(CSRank($volume), 10) - CSRank(Corr($close, $volume, 10))",
    "CS_OF_TS_OF_CS": "CSZScore(Sum(CSDemean($close / $open), 5))",
}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def qlib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("q") / "qlib"
    write_qlib_dir(make_panel(24, 260, seed=11, late_listing_frac=0.3, suspension_frac=0.03), d)
    return d


@pytest.fixture(scope="module")
def in_memory(qlib_dir: Path) -> pl.DataFrame:
    panel = open_data_service(qlib_dir).load(FIELDS)
    return compute(panel, {**alpha158_expressions(), **CS})


def _spec(qlib_dir: Path, exprs: dict[str, str], **kw: object) -> dict:
    return {"data": str(qlib_dir), "exprs": exprs, "fields": FIELDS, **kw}


def test_partitioned_dataset_equals_in_memory(qlib_dir: Path, in_memory: pl.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "factors"
    res = run_job(_spec(qlib_dir, {**alpha158_expressions(), **CS}), out, partitions=5, buckets=7)
    assert res.partitions == 5 and res.stages == 2
    got = read_dataset(out)
    assert got.columns == in_memory.columns and got.height == in_memory.height
    assert got.equals(in_memory), [c for c in got.columns if not got[c].equals(in_memory[c])]
    man = EngineJobManifest.model_validate_json((out / MANIFEST_NAME).read_text())
    # 5 partitions, the last one written as two files on two threads (cut between instruments)
    assert man.complete and man.rows == got.height and len(man.partitions) == 6
    assert [p.file for p in man.partitions] == [f"part-{k:05d}.parquet" for k in range(6)]
    for p in man.partitions:  # each entry says what its file holds
        part = pl.read_parquet(out / p.file)
        assert (part.height, part["instrument"].n_unique()) == (p.rows, p.instruments)
    assert sum(p.instruments for p in man.partitions) == got["instrument"].n_unique()
    assert [p.name for p in out.iterdir() if not p.name.startswith("part-")] == [MANIFEST_NAME]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # scratch removed


def test_partitioned_single_file_equals_in_memory(qlib_dir: Path, in_memory: pl.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    run_job(_spec(qlib_dir, {**alpha158_expressions(), **CS}), out, partitions=3)
    assert pl.read_parquet(out).equals(in_memory)


def test_start_end_float64(qlib_dir: Path, tmp_path: Path) -> None:
    exprs = {"MA5": "Mean($close, 5) / $close", "R": "CSRank(Mean($close, 20))"}
    panel = open_data_service(qlib_dir).load(FIELDS)
    days = panel["datetime"].unique().sort()
    lo, hi = str(days[100].date()), str(days[200].date())
    ref = compute(panel, exprs, start=lo, end=hi)
    out = tmp_path / "f"
    run_job(_spec(qlib_dir, exprs, start=lo, end=hi, history=19, float64=True), out, partitions=4)
    got = read_dataset(out)
    assert got.schema["MA5"] == pl.Float64
    assert got.equals(ref.with_columns(pl.col("MA5", "R").cast(pl.Float64)))


def test_memory_limit_sets_the_partitions() -> None:
    assert plan_partitions(300, 2500, 166, 16 * 2**30) == 1
    many = plan_partitions(5000, 5000, 166, 2 * 2**30)
    assert many > 20
    assert plan_partitions(5000, 5000, 166, 4 * 2**30) < many


def test_local_cluster_equals_single_process(qlib_dir: Path, in_memory: pl.DataFrame, tmp_path: Path) -> None:
    from rdbridge.engine.cluster import DaskExecutor  # distributed: the cluster extra, part of the test extra

    exprs = {**alpha158_expressions(), **CS}
    with DaskExecutor(workers=2, memory_limit=2 * 2**30) as ex:
        res = run_job(_spec(qlib_dir, exprs), tmp_path / "c", executor=ex)
    assert res.partitions >= 4  # two tasks per worker at least
    got = read_dataset(tmp_path / "c")
    assert got.equals(in_memory)
    man = json.loads((tmp_path / "c" / MANIFEST_NAME).read_text())
    assert man["executor"].startswith("dask:")


def test_failed_run_leaves_no_output(qlib_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nope"):
        run_job(_spec(qlib_dir, {"x": "Mean($close, 5)"}, factor_specs=["nope"]), tmp_path / "o", partitions=2)
    assert list(tmp_path.iterdir()) == []


def test_killed_run_leaves_nothing_marked_complete(qlib_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "factors"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "rdbridge.cli", "engine", "compute", "--data", str(qlib_dir), "--out", str(out),
           "--alpha158", "--partitions", "24", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    parts: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        parts = list(tmp_path.glob(".factors.tmp-*/out/part-*.parquet"))
        if len(parts) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None and len(parts) >= 2, "the run ended before it could be killed mid-way"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert not list(tmp_path.rglob(MANIFEST_NAME))
    with pytest.raises(ValueError, match="not a complete engine output"):
        read_dataset(next(tmp_path.glob(".factors.tmp-*/out")))
    # the next run commits a complete output beside the dead scratch directory
    done = subprocess.run(cmd[:-3] + ["--partitions", "3", "--json"], env=env, capture_output=True, text=True)
    assert json.loads(done.stdout)["ok"], done.stderr
    assert read_dataset(out).height > 0


def test_progress_reports_every_partition(qlib_dir: Path, tmp_path: Path) -> None:
    from rdbridge.engine.job import LocalExecutor

    seen: list[tuple[str, int, int]] = []
    run_job(_spec(qlib_dir, {"r": "CSRank($close)"}), tmp_path / "o.parquet", partitions=3,
            executor=LocalExecutor(lambda label, done, total: seen.append((label, done, total))))
    assert ("partitions", 3, 3) in seen and ("stage 1 inputs", 3, 3) in seen
    assert any(label == "stage 1 date-wise pass" for label, _, _ in seen)


def test_progress_reports_factor_groups_inside_a_partition(qlib_dir: Path, tmp_path: Path) -> None:
    """One partition of Alpha158 is three groups of expressions: the bar moves per group, not only at the end."""
    from rdbridge.engine.job import LocalExecutor
    from rdbridge.engine.runner import CHUNK_ROOTS

    seen: list[tuple[str, int, int]] = []
    run_job(_spec(qlib_dir, alpha158_expressions()), tmp_path / "o.parquet", partitions=1,
            executor=LocalExecutor(lambda label, done, total: seen.append((label, done, total))))
    groups = -(-158 // CHUNK_ROOTS)
    assert groups > 1
    assert [x for x in seen if x[0] == "factor groups"] == [("factor groups", k, groups) for k in range(1, groups + 1)]
    assert seen.index(("factor groups", groups, groups)) < seen.index(("partitions", 1, 1))


def test_lazy_cli_imports_nothing_heavy() -> None:
    """`rdbridge version` and `rdbridge engine --help` must not import the engine's numba kernels, pandas,
    SQLAlchemy or the API server."""
    code = ("import sys, runpy; sys.argv = ['rdbridge', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('rdbridge.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('numba', 'pandas', 'sqlalchemy', 'fastapi', 'rdbridge.engine.kernels', 'scipy') "
            "if m in sys.modules]\nprint('HEAVY', heavy)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    for args in (["version"], ["engine", "--help"], ["--help"]):
        out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
        assert "HEAVY []" in out.stdout, (args, out.stdout[-500:], out.stderr[-500:])


def test_killed_worker_still_gives_the_whole_output(qlib_dir: Path, in_memory: pl.DataFrame, tmp_path: Path) -> None:
    """SIGKILL one Dask worker process mid-run: Dask reruns its tasks on the restarted worker, and the committed
    output is complete and equal to the in-memory compute."""
    import distributed  # noqa: F401 - the cluster extra, part of the test extra
    import psutil

    out = tmp_path / "factors"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    exprs = [f"--expr={k}={v}" for k, v in CS.items()]
    cmd = [sys.executable, "-m", "rdbridge.cli", "engine", "compute", "--data", str(qlib_dir), "--out", str(out),
           "--alpha158", *exprs, "--workers", "2", "--partitions", "12", "--memory-limit", "2GB", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    killed = None
    while time.monotonic() < deadline and proc.poll() is None and killed is None:
        if list(tmp_path.glob(".factors.tmp-*/stage0/in-*.parquet")):
            me = psutil.Process(proc.pid)
            workers = [c for c in me.children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
            if workers:
                killed = workers[0].pid
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    stdout, stderr = proc.communicate(timeout=300)
    assert killed is not None, f"the run ended before a worker could be killed: {stdout[-500:]} {stderr[-1500:]}"
    assert json.loads(stdout.strip().splitlines()[-1])["ok"], stderr[-2000:]
    assert read_dataset(out).equals(in_memory)


def test_compute_command_writes_required_columns_without_optional_imports(
        qlib_dir: Path, in_memory: pl.DataFrame, tmp_path: Path) -> None:
    """The whole `engine compute --json` process: the Parquet columns are REQUIRED (no definition levels to encode),
    the values equal the in-memory compute, and the process never imported what its job does not need (rich,
    scipy.linalg for numba's BLAS probe)."""
    import pyarrow.parquet as pq

    out = tmp_path / "cmd.parquet"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    args = [sys.executable, "-X", "importtime", "-m", "rdbridge.cli", "engine", "compute", "--data", str(qlib_dir),
            "--out", str(out), "--alpha158", "--json"]
    for name, text in CS.items():
        args += ["--expr", f"{name}={text}"]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["ok"]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "polars" in imported and "numba" in imported  # the importtime listing is really there
    assert not {"rich", "rich.console"} & imported
    # the hidden probe leaves one refused `scipy.linalg` line; a real import loads its submodules
    assert not [m for m in imported if m.startswith("scipy.linalg.") and m != "scipy.linalg.cython_blas"]
    schema = pq.ParquetFile(out).schema
    assert {schema.column(i).max_definition_level for i in range(len(schema))} == {0}
    assert pl.read_parquet(out).equals(in_memory)


def test_output_table_fills_stray_nulls_and_refuses_null_keys() -> None:
    from rdbridge.engine.job import output_table

    frame = pl.DataFrame({"instrument": ["A", "B"], "datetime": [1, 2], "F": [1.5, None]},
                         schema_overrides={"F": pl.Float32})
    table = output_table(frame)
    assert not any(f.nullable for f in table.schema)
    assert table.column("F").null_count == 0 and str(table.column("F").to_pylist()[1]) == "nan"
    with pytest.raises(ValueError, match="'instrument'"):
        output_table(frame.with_columns(pl.Series("instrument", ["A", None])))
