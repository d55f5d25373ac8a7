"""The whole `engine compute` job: a panel in instrument partitions, streamed into Parquet, committed when complete.

Time-series operators read one instrument's history only, so an instrument partition (all its dates) needs no
extra history. Cross-sectional operators need every instrument of a date, so a request holding them runs in
stages (``cross_section.py``): per partition the inputs of the stage's cross-sectional nodes (phase A), a
date-wise pass per date bucket over all partitions (phase B: a shuffle by date through the scratch directory),
then per partition the rest of the request reading those results (phase C). The tasks are plain functions of
paths and strings, so the same job runs in this process (``LocalExecutor``) or as tasks on a Dask cluster
(``cluster.py``), which then owns retries, spilling and lost workers.

Commit protocol: everything is written under a scratch directory next to ``out``; the manifest
(``contracts.engine_job``) is written last, then the result is renamed into place (``os.replace``, atomic on one
file system). A killed run leaves only the scratch directory (``.<name>.tmp-*``), never a file or a directory at
``out`` that looks complete.
"""

from __future__ import annotations

import importlib
import itertools
import math
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

if TYPE_CHECKING:
    from rdbridge.contracts.engine_job import EngineJobManifest

MANIFEST_MODULE = "rdbridge.contracts.engine_job"
"""The manifest's pydantic contract, imported once the compute is done (on a thread beside the last write): pydantic
and the models cost ~50 ms of the whole job, and nothing before the commit needs them."""

BASE_BYTES = 400 * 2**20
"""What the process holds before any panel (interpreter, polars, numba and the kernels): taken off the limit."""

DEFAULT_MEMORY_FRACTION = 0.5
"""``--memory-limit`` by default: this fraction of the machine's RAM."""


def bytes_per_row(n_exprs: int) -> int:
    """Peak bytes one panel row costs: the compute (the float32 outputs, the live float64 intermediates of one
    expression group, the padded layout) plus the previous partition's float32 output, still held while it is
    written on the background thread, twice (the Arrow table and the writer's encoded pages of its row group).
    Calibrated on Alpha158: the compute is ~1.26 kB a row over the base process (300 x 2,500: 1.1 GB peak for
    675,816 rows), the held output 0.65 kB. 5,000 x 2,500 at ``--memory-limit 3GB`` peaked at 3.7 GB without the
    held output in the model, at 3.05 GB (99% of 3 GiB) with it counted once, at 2.6 GB (85%) counted twice."""
    return 8 * (n_exprs + 40) + 200 + 8 * n_exprs + 32


def total_memory() -> int:
    """Physical RAM in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_size(text: str) -> int:
    """``4GB``, ``512MB``, ``1.5G``, ``100000000`` -> bytes (binary units)."""
    s = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    try:
        if s and s[-1] in mult:
            return int(float(s[:-1]) * mult[s[-1]])
        return int(float(s))
    except ValueError:
        raise ValueError(f"--memory-limit {text!r}: write bytes or a size such as 4GB or 512MB") from None


@dataclass
class JobSpec:
    """Everything a task needs, as plain picklable values (tasks may run on other machines)."""

    data: str
    exprs: dict[str, str]
    fields: list[str]
    scratch: str
    start: str | None = None
    end: str | None = None
    history: float = 0.0
    factor_specs: list[str] = field(default_factory=list)  # module:function Python factors
    float64: bool = False
    compression: str = "none"  # random-looking float32 factors shrink ~17% under snappy for ~30% more write time

    def load(self, instruments: Sequence[str]) -> pl.DataFrame:
        from rdbridge.engine.data import open_data_service

        svc = open_data_service(self.data)
        if math.isinf(self.history) or self.start is None:
            return svc.load(self.fields, list(instruments), None, self.end)
        return svc.load(self.fields, list(instruments), self.start, self.end, history=int(self.history))


def load_factor(spec: str) -> tuple[str, Callable[..., object]]:
    """``module:function`` -> (name, function)."""
    import importlib

    if ":" not in spec:
        raise ValueError(f"--factor {spec!r}: write module:function, e.g. rd_factors_lib.momentum:factor_resi5")
    module, func = spec.split(":", 1)
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--factor {spec!r}: cannot import it ({exc})") from exc
    return func, fn


def _write(frame: pl.DataFrame | Any, path: Path, compression: str) -> None:
    """Write a frame (or an Arrow table) to a Parquet file under a temporary name, then rename: a retried task
    never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    _write_table(frame, tmp, compression)
    os.replace(tmp, path)


def _write_table(frame: pl.DataFrame | Any, path: Path, compression: str) -> None:
    """pyarrow's writer without dictionary encoding or statistics for the factor columns (random floats: neither
    pays; ~2x faster than Polars' default writer here), statistics on the keys so readers can prune."""
    import pyarrow.parquet as pq

    table = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
    pq.write_table(table, path, compression=compression, use_dictionary=["instrument"],
                   write_statistics=["instrument", "datetime"], row_group_size=1 << 20)


def output_table(frame: pl.DataFrame) -> Any:
    """The output as an Arrow table whose columns are all non-nullable, so Parquet stores them REQUIRED: no
    definition levels to encode, which took ~0.1 s of the 0.3 s write of 300 x 2,500 Alpha158 (430 MB of float32).
    Missing factor values are NaN, as in Qlib: the engine makes no nulls (2,162 generated, Alpha158 and
    cross-sectional expressions checked) and Python factors' nulls are filled; a stray null in a factor column
    becomes NaN here. Every partition and every executor gets the same schema."""
    import pyarrow as pa

    table = frame.to_arrow()
    cols = []
    for name, col in zip(table.column_names, table.columns):
        if col.null_count:
            if name in ("instrument", "datetime") or not pa.types.is_floating(col.type):
                raise ValueError(f"output column {name!r}: {col.null_count} null values")
            import pyarrow.compute as pc  # only here: ~20 ms of imports

            col = pc.fill_null(col, pa.scalar(float("nan"), col.type))
        cols.append(col)
    schema = pa.schema([f.with_nullable(False) for f in table.schema])
    return pa.Table.from_arrays(cols, schema=schema)


def _stage_plan(spec: JobSpec) -> Any:
    from rdbridge.engine.cross_section import staged_roots
    from rdbridge.engine.runner import parse_all

    return staged_roots(parse_all(spec.exprs))


def _with_cross_sections(spec: JobSpec, panel: pl.DataFrame, n_stages: int, instruments: Sequence[str]) -> pl.DataFrame:
    """The partition's panel with the results of the first ``n_stages`` date-wise passes joined on."""
    scratch = Path(spec.scratch)
    for s in range(n_stages):
        files = sorted(str(p) for p in (scratch / f"stage{s}").glob("cs-*.parquet"))
        cs = pl.scan_parquet(files).filter(pl.col("instrument").is_in(list(instruments))).collect()
        panel = panel.join(cs, on=["instrument", "datetime"], how="left", maintain_order="left")
    return panel


def task_inputs(spec: JobSpec, part: int, instruments: Sequence[str], stage: int) -> int:
    """Phase A: the stage's cross-sectional inputs on one partition, to ``stage<s>/in-<part>.parquet``."""
    from rdbridge.engine.runner import _compute, _no_cyclic_gc

    plan = _stage_plan(spec)
    inputs = plan.stages[stage].inputs()
    panel = _with_cross_sections(spec, spec.load(instruments), stage, instruments)
    with _no_cyclic_gc():
        got = _compute(panel, inputs, start=None, end=None, pyfactors=None, progress=False)
    out = Path(spec.scratch) / f"stage{stage}"
    out.mkdir(parents=True, exist_ok=True)
    _write(got, out / f"in-{part:05d}.parquet", "lz4")
    return got.height


def task_cross_section(spec: JobSpec, bucket: int, lo: Any, hi: Any, stage: int) -> int:
    """Phase B: the date-wise pass of one stage over the dates ``lo <= datetime <= hi``, every partition."""
    from rdbridge.engine.cross_section import cross_section_pass

    plan = _stage_plan(spec)
    st = plan.stages[stage]
    folder = Path(spec.scratch) / f"stage{stage}"
    files = sorted(str(p) for p in folder.glob("in-*.parquet"))
    frame = pl.scan_parquet(files).filter(pl.col("datetime").is_between(lo, hi)).collect()
    cs = cross_section_pass(frame, st)
    _write(pl.concat([frame.select("instrument", "datetime"), cs], how="horizontal"),
           folder / f"cs-{bucket:05d}.parquet", "lz4")
    return frame.height


def compute_partition(spec: JobSpec, instruments: Sequence[str], n_stages: int,
                      progress: Progress | None = None) -> pl.DataFrame:
    """Phase C: the request's outputs for one partition (start/end applied, Python factors included);
    ``progress`` gets ``("factor groups", done, total)`` as its groups of expressions finish."""
    from rdbridge.engine.runner import _compute, _no_cyclic_gc, compute

    pyf = dict(load_factor(s) for s in spec.factor_specs)
    panel = spec.load(instruments)
    if n_stages:
        plan = _stage_plan(spec)
        panel = _with_cross_sections(spec, panel, n_stages, instruments)
        with _no_cyclic_gc():
            got = _compute(panel, plan.roots, start=spec.start, end=spec.end, pyfactors=pyf,
                           progress=progress or False)
    else:
        got = compute(panel, spec.exprs, start=spec.start, end=spec.end, pyfactors=pyf, progress=progress or False)
    if spec.float64:
        got = got.with_columns(pl.exclude("instrument", "datetime").cast(pl.Float64))
    return got


def task_final(spec: JobSpec, part: int, instruments: Sequence[str], n_stages: int) -> tuple[str, int, int, float]:
    """Phase C as a task writing its part file: returns (file name, instruments, rows, compute seconds)."""
    t = time.perf_counter()
    got = compute_partition(spec, instruments, n_stages)
    seconds = time.perf_counter() - t
    name = f"part-{part:05d}.parquet"
    _write(output_table(got), Path(spec.scratch) / "out" / name, spec.compression)
    return name, len(instruments), got.height, seconds


class Executor(Protocol):
    """Runs a list of independent calls and returns their results in order (a barrier between phases)."""

    name: str

    def map(self, fn: Callable[..., Any], calls: list[tuple], label: str) -> list[Any]: ...


Progress = Callable[[str, int, int], None]


class LocalExecutor:
    """The calls one after the other in this process (each compute already uses every core)."""

    name = "local"

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress

    def map(self, fn: Callable[..., Any], calls: list[tuple], label: str) -> list[Any]:
        out = []
        for i, args in enumerate(calls):
            out.append(fn(*args))
            if self.progress:
                self.progress(label, i + 1, len(calls))
        return out


def partition_instruments(instruments: Sequence[str], n_parts: int) -> list[list[str]]:
    """Contiguous, nearly equal groups in the sorted order (the output files then follow the panel's order)."""
    insts = sorted(instruments)
    n_parts = max(1, min(n_parts, len(insts)))
    size = math.ceil(len(insts) / n_parts)
    return [insts[i : i + size] for i in range(0, len(insts), size)]


def date_buckets(calendar: Sequence[Any], n: int) -> list[tuple[Any, Any]]:
    """``n`` contiguous (first, last) date ranges covering the calendar."""
    n = max(1, min(n, len(calendar)))
    size = math.ceil(len(calendar) / n)
    return [(calendar[i], calendar[min(i + size, len(calendar)) - 1]) for i in range(0, len(calendar), size)]


@dataclass
class JobResult:
    out: Path
    rows: int
    factors: list[str]
    partitions: int
    stages: int
    seconds: float
    phases: dict[str, float]


def plan_partitions(n_instruments: int, n_days: int, n_exprs: int, memory_limit: int) -> int:
    """Partitions so that one partition's compute stays within ``memory_limit``."""
    budget = max(memory_limit - BASE_BYTES, 64 * 2**20)
    rows = n_instruments * max(n_days, 1)
    return max(1, math.ceil(rows * bytes_per_row(n_exprs) / budget))


def run_job(
    spec_args: dict[str, Any],
    out: Path,
    *,
    instruments: Sequence[str] | None = None,
    memory_limit: int | None = None,
    partitions: int | None = None,
    executor: Executor | None = None,
    overlap_write: bool = True,
    buckets: int | None = None,
) -> JobResult:
    """Compute the request into ``out``: a ``.parquet`` file (local executor) or a dataset directory of part files
    with ``_manifest.json``; either appears at ``out`` only when complete. ``buckets`` fixes the date buckets of
    the date-wise passes (default: as few as the memory limit allows)."""
    from rdbridge.engine.data import open_data_service

    t0 = time.perf_counter()
    phases: dict[str, float] = {}
    executor = executor or LocalExecutor()
    out = Path(out)
    single_file = out.suffix == ".parquet"
    if single_file and executor.name != "local":
        raise ValueError(f"--out {out}: a cluster writes a dataset directory; give a path without .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    scratch.mkdir()
    spec = JobSpec(scratch=str(scratch.resolve()), **spec_args)
    try:
        svc = open_data_service(spec.data)
        insts = list(instruments) if instruments else svc.instruments()
        calendar = _calendar(svc, spec)
        limit = memory_limit or int(total_memory() * DEFAULT_MEMORY_FRACTION)
        per_task = getattr(executor, "memory_per_task", None) or limit  # a cluster's workers share the limit
        n_parts = partitions or max(plan_partitions(len(insts), len(calendar), len(spec.exprs) + 8, per_task),
                                    getattr(executor, "min_partitions", 1))
        parts = partition_instruments(insts, n_parts)
        plan = _stage_plan(spec)
        n_stages = len(plan.stages)
        for s, stage in enumerate(plan.stages):
            t = time.perf_counter()
            executor.map(task_inputs, [(spec, p, ps, s) for p, ps in enumerate(parts)], f"stage {s + 1} inputs")
            width = 24 + 12 * len(stage.jobs)
            n_buckets = max(1, math.ceil(len(insts) * len(calendar) * width * 4 / max(per_task - BASE_BYTES, 2**26)))
            ranges = date_buckets(calendar, buckets or n_buckets)
            executor.map(task_cross_section, [(spec, b, lo, hi, s) for b, (lo, hi) in enumerate(ranges)],
                         f"stage {s + 1} date-wise pass")
            phases[f"stage{s}_s"] = time.perf_counter() - t
        t = time.perf_counter()
        if isinstance(executor, LocalExecutor):
            rows, factors, written = _final_streamed(spec, parts, n_stages, executor, scratch, overlap_write, phases,
                                                     single_file)
        else:
            (scratch / "out").mkdir()
            done = executor.map(task_final, [(spec, p, ps, n_stages) for p, ps in enumerate(parts)], "partitions")
            written = [(n, k, r) for n, k, r, _ in done]
            phases["compute_s"] = sum(x[3] for x in done)  # summed over tasks (parallel on a cluster)
            rows = sum(r for _, _, r in written)
            factors = _factor_names(spec)
        phases["final_s"] = time.perf_counter() - t
        from rdbridge.contracts.engine_job import EngineJobManifest, PartitionFile

        manifest = EngineJobManifest(
            complete=True, rows=rows, factors=factors, dtype="float64" if spec.float64 else "float32",
            partitions=[PartitionFile(file=n, instruments=k, rows=r) for n, k, r in written],
            cross_section_stages=n_stages, executor=executor.name, seconds=round(time.perf_counter() - t0, 3))
        _commit(scratch, out, single_file, manifest)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return JobResult(out, rows, factors, len(parts), n_stages, time.perf_counter() - t0, phases)


def _factor_names(spec: JobSpec) -> list[str]:
    return [*spec.exprs, *(s.split(":", 1)[-1] for s in spec.factor_specs)]


def _calendar(svc: Any, spec: JobSpec) -> list[Any]:
    import numpy as np

    cal = np.asarray(svc.calendar())
    if spec.end is not None:
        cal = cal[cal <= np.datetime64(spec.end)]
    return [x for x in cal.astype("datetime64[us]").tolist()]


def _final_streamed(spec: JobSpec, parts: list[list[str]], n_stages: int, executor: Executor, scratch: Path,
                    overlap: bool, timings: dict[str, float],
                    single_file: bool) -> tuple[int, list[str], list[tuple[str, int, int]]]:
    """Phase C in this process, each partition streamed out as it is done: into one Parquet file (a row group per
    partition) or a part file each. Partition k is written on a background thread while partition k + 1 computes
    (pyarrow releases the GIL while it encodes and writes). Nothing computes beside the last partition's write,
    so a dataset writes it as two part files on two threads (split between instruments); the manifest's contract
    is imported beside that write. Returns the rows, the factor names and (file, instruments, rows) per file."""
    import pyarrow.parquet as pq

    path = scratch / "out.parquet"
    (scratch / "out").mkdir(exist_ok=True)
    writer: pq.ParquetWriter | None = None
    pending: threading.Thread | None = None
    error: list[BaseException] = []
    rows = 0
    files: list[tuple[str, int, int]] = []
    factors: list[str] = []

    def write(table: Any, name: str) -> None:
        try:
            if single_file:
                assert writer is not None
                writer.write_table(table, row_group_size=1 << 20)
            else:
                tmp = scratch / "out" / f".{name}.tmp"
                pq.write_table(table, tmp, compression=spec.compression, use_dictionary=["instrument"],
                               write_statistics=["instrument", "datetime"], row_group_size=1 << 20)
                os.replace(tmp, scratch / "out" / name)
        except BaseException as exc:  # noqa: BLE001 - raised again on the main thread
            error.append(exc)

    def wait() -> None:
        t = time.perf_counter()
        if pending is not None:
            pending.join()
        timings["write_wait_s"] = timings.get("write_wait_s", 0.0) + time.perf_counter() - t
        if error:
            raise error[0]

    try:
        for i, ps in enumerate(parts):
            t = time.perf_counter()
            hook = executor.progress if isinstance(executor, LocalExecutor) else None
            got = compute_partition(spec, ps, n_stages, hook)
            timings["compute_s"] = timings.get("compute_s", 0.0) + time.perf_counter() - t
            table = output_table(got)
            name = "out.parquet" if single_file else f"part-{len(files):05d}.parquet"
            if writer is None and single_file:
                writer = pq.ParquetWriter(path, table.schema, compression=spec.compression,
                                          use_dictionary=["instrument"], write_statistics=["instrument", "datetime"])
            factors = [c for c in got.columns if c not in ("instrument", "datetime")]
            last = not (overlap and i + 1 < len(parts))
            halves = _split_between_instruments(got) if last and not single_file else None
            wait()
            rows += got.height
            del got
            if not last:
                files.append((name, len(ps), table.num_rows))
                pending = threading.Thread(target=write, args=(table, name), daemon=True)
                pending.start()
            else:
                threading.Thread(target=importlib.import_module, args=(MANIFEST_MODULE,), daemon=True).start()
                if halves is None:
                    files.append((name, len(ps), table.num_rows))
                    write(table, name)
                else:
                    cut, n_first = halves
                    second = f"part-{len(files) + 1:05d}.parquet"
                    files += [(name, n_first, cut), (second, len(ps) - n_first, table.num_rows - cut)]
                    pending = threading.Thread(target=write, args=(table.slice(cut), second), daemon=True)
                    pending.start()
                    write(table.slice(0, cut), name)
            if isinstance(executor, LocalExecutor) and executor.progress:
                executor.progress("partitions", i + 1, len(parts))
        wait()
    finally:
        if pending is not None:
            pending.join()
        if writer is not None:
            writer.close()
    return rows, factors, files


def _split_between_instruments(frame: pl.DataFrame) -> tuple[int, int] | None:
    """(row, instruments before it) of the instrument boundary nearest the middle of ``frame`` (sorted by
    instrument), or None for a single instrument: where a part file can be cut in two."""
    counts = frame["instrument"].rle().struct.field("len").to_list()  # runs: the rows are grouped by instrument
    if len(counts) < 2:
        return None
    ends = list(itertools.accumulate(counts))[:-1]
    k = min(range(len(ends)), key=lambda j: abs(2 * ends[j] - frame.height))
    return ends[k], k + 1


def _commit(scratch: Path, out: Path, single_file: bool, manifest: EngineJobManifest) -> None:
    """Manifest last, then one rename into place; a previous output at ``out`` is replaced only now."""
    from rdbridge.contracts.engine_job import MANIFEST_NAME

    if single_file:
        src = scratch / "out.parquet"
        os.replace(src, out)
        shutil.rmtree(scratch, ignore_errors=True)
        return
    final = scratch / "out"
    (final / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    for d in scratch.iterdir():
        if d != final:
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink()
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
        os.replace(final, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(final, out)
    shutil.rmtree(scratch, ignore_errors=True)


def read_dataset(path: Path) -> pl.DataFrame:
    """A complete output directory as one frame (refuses one without its manifest)."""
    path = Path(path)
    from rdbridge.contracts.engine_job import MANIFEST_NAME, EngineJobManifest

    man = path / MANIFEST_NAME
    if not man.is_file():
        raise ValueError(f"{path}: no {MANIFEST_NAME}: not a complete engine output")
    m = EngineJobManifest.model_validate_json(man.read_text(encoding="utf-8"))
    return pl.concat([pl.read_parquet(path / f.file) for f in m.partitions])
