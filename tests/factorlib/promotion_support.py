"""Shared steps of the promotion tests: a private copy of a trace, ingested into a fresh SQLite registry, and a
subprocess that checks a package's promoted functions against the workspaces' result.h5 (HDF5 is read only there,
never in the test process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rdbridge.ingest.service import ingest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "sample_trace"
HARD = REPO / "tests" / "fixtures" / "rdagent_fin_factor_hard_trace"


def ingested(trace: Path, tmp: Path) -> tuple[Path, str]:
    """(the trace copy, registry URL) after ingesting a copy of ``trace`` under ``tmp``."""
    copy = tmp / "trace"
    shutil.copytree(trace, copy, symlinks=True)
    url = f"sqlite:///{tmp / 'registry.sqlite'}"
    report = ingest(log_root=copy / "log", workspace_root=copy / "workspace", db_url=url,
                    signing_key=(copy / "artifact_signing.key").read_bytes())
    assert report.ok, report
    return copy, url


_CHECK = r"""
import importlib, json, sys
import numpy as np, pandas as pd
sys.path.insert(0, sys.argv[1])
lib = importlib.import_module("rd_factors_lib")
out = {"version": lib.__version__}
for name, ws in json.loads(sys.argv[2]).items():
    df = pd.read_hdf(ws + "/daily_pv.h5", key="data")
    got = lib.REGISTRY[name].func(df)
    want = pd.read_hdf(ws + "/result.h5").iloc[:, 0].reindex(got.index)
    a, b = got.to_numpy("float64"), want.to_numpy("float64")
    out[name] = {"group": lib.REGISTRY[name].group, "series_name": got.name,
                 "same_nan": bool((np.isnan(a) == np.isnan(b)).all()),
                 "identical": bool(np.array_equal(a, b, equal_nan=True)), "values": int((~np.isnan(a)).sum())}
print(json.dumps(out))
"""


def check_functions(package: Path, workspaces: dict[str, Path]) -> dict:
    """Import the package at ``package`` in a fresh interpreter and compare each factor with its result.h5."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", _CHECK, str(package), json.dumps({k: str(v) for k, v in workspaces.items()})],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RDBRIDGE_HOME": str(home)}
    env.pop("RDBRIDGE_DB", None)
    return subprocess.run([sys.executable, "-m", "rdbridge.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)
