"""Run LLM-written factor code only in throw-away subprocesses: a temp dir holding a copy of the input, CPU and
address-space rlimits, a wall-clock timeout, an empty environment, ``python -I``. The parent never unpickles: the
child converts every HDF5 result to Parquet before the parent reads it."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CPU_SECONDS = 60
MEMORY_BYTES = 2 * 1024**3
WALL_SECONDS = 90
STORED_RTOL = 1e-12
"""The re-run script and the function must agree bit for bit; the stored result.h5 may differ in the last bits."""

_CHILD = r"""
import importlib.util, sys
import pandas as pd
spec = importlib.util.spec_from_file_location("candidate", "candidate.py")
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
df = pd.read_hdf("daily_pv.h5", key="data")
out = getattr(mod, sys.argv[1])(df)
out.to_frame("value").to_parquet("candidate.parquet")
for src, dst in (("result.h5", "original.parquet"), ("stored_result.h5", "stored.parquet")):
    try:
        res = pd.read_hdf(src)
    except FileNotFoundError:
        continue
    res = res.iloc[:, 0] if isinstance(res, pd.DataFrame) else res
    res.rename("value").to_frame().to_parquet(dst)
"""


@dataclass
class Verdict:
    """Whether the candidate function reproduced the script; ``reason`` says why not."""

    ok: bool
    reason: str = ""
    rows: int = 0
    stored: str = "absent"
    """How the function's output compares with the workspace's own result.h5: identical, equal within
    ``STORED_RTOL`` (that file came from another machine's numpy/pandas), or absent."""


def _limits(cpu: int, memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_NPROC, (256, 256))
    os.setsid()


def _run(args: list[str], cwd: Path, what: str, cpu: int, memory: int, wall: float) -> str:
    """Run one child; return '' on success or the reason it failed."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, "-I", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=wall,
            preexec_fn=lambda: _limits(cpu, memory),  # noqa: PLW1509 - no threads are running in this process
        )
    except subprocess.TimeoutExpired:
        return f"{what} timed out after {wall:g} s (wall clock)"
    if proc.returncode == 0:
        return ""
    tail = (proc.stderr or "").strip().splitlines()[-3:]
    if proc.returncode in (-9, -24) or "MemoryError" in proc.stderr:
        kind = "ran out of its memory limit" if "MemoryError" in proc.stderr else "hit its CPU limit"
        return f"{what} {kind} ({memory // 1024**2} MB, {cpu} s CPU): {' | '.join(tail)}"
    return f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}"


def check_equivalent(
    script: str, candidate_module: str, func_name: str, input_h5: Path, stored_result: Path | None,
    *, cpu: int = CPU_SECONDS, memory: int = MEMORY_BYTES, wall: float = WALL_SECONDS,
) -> Verdict:
    """Run the original ``script`` and ``func_name`` of ``candidate_module`` on a copy of ``input_h5``; equal only
    when index, NaN positions and every value are identical; the workspace's ``stored_result`` (when given) must
    match within ``STORED_RTOL``."""
    with tempfile.TemporaryDirectory(prefix="rdbridge-promote-") as tmp:
        work = Path(tmp)
        shutil.copyfile(input_h5, work / "daily_pv.h5")
        (work / "factor.py").write_text(script, encoding="utf-8")
        (work / "candidate.py").write_text(candidate_module, encoding="utf-8")
        if stored_result is not None and stored_result.is_file():
            shutil.copyfile(stored_result, work / "stored_result.h5")
        if why := _run(["factor.py"], work, "the original script", cpu, memory, wall):
            return Verdict(False, why)
        if not (work / "result.h5").is_file():
            return Verdict(False, "the original script wrote no result.h5")
        (work / "child.py").write_text(_CHILD, encoding="utf-8")
        if why := _run(["child.py", func_name], work, "the promoted function", cpu, memory, wall):
            return Verdict(False, why)
        got = pd.read_parquet(work / "candidate.parquet")["value"]
        want = pd.read_parquet(work / "original.parquet")["value"]
        stored = pd.read_parquet(work / "stored.parquet")["value"] if (work / "stored.parquet").is_file() else None
    if why := _differs(got, want, "the original script's result.h5"):
        return Verdict(False, why)
    stored_note = "absent"
    if stored is not None:
        if not _differs(got, stored, "", tolerance=0.0):
            stored_note = "identical"
        elif why := _differs(got, stored, "the workspace's stored result.h5", tolerance=STORED_RTOL):
            return Verdict(False, why)
        else:
            stored_note = f"equal within {STORED_RTOL:g} (written by another numpy/pandas build)"
    return Verdict(True, rows=len(got), stored=stored_note)


def _differs(got: pd.Series, want: pd.Series, what: str, tolerance: float = 0.0) -> str:
    if not want.index.isin(got.index).all():
        return f"{what} has rows that are not in the input frame"
    want = want.reindex(got.index)
    a, b = got.to_numpy(dtype="float64"), want.to_numpy(dtype="float64")
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return f"NaN positions differ from {what} at {int((np.isnan(a) != np.isnan(b)).sum())} rows"
    ok = ~np.isnan(a)
    if tolerance and np.allclose(a[ok], b[ok], rtol=tolerance, atol=tolerance):
        return ""
    if not np.array_equal(a[ok], b[ok]):
        return f"values differ from {what} at {int((a[ok] != b[ok]).sum())} rows (max |diff| {np.abs(a[ok] - b[ok]).max():.3g})"
    return ""
