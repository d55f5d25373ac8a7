"""Helpers for the rdagent_trace tests: genuine traces (copied when a test modifies them) and a tiny trace writer.

The writer pickles stand-in classes registered under RD-Agent's real module paths, so the pickles name exactly the
globals rdagent writes (NEWOBJ + BUILD with the attribute dict) without importing rdagent.
"""

from __future__ import annotations

import shutil
import sys
import types
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from rdbridge.rdagent_trace.signed import sign_payload

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "sample_trace"
QUANT = REPO / "tests" / "fixtures" / "rdagent_fin_quant_trace"
LEGACY = REPO / "tests" / "fixtures" / "rdagent_legacy_fin_factor_trace"
HARD = REPO / "tests" / "fixtures" / "rdagent_fin_factor_hard_trace"

FAKE_CLASSES = {
    "rdagent.components.coder.factor_coder.factor": ["FactorTask", "FactorFBWorkspace"],
    "rdagent.components.coder.model_coder.model": ["ModelTask", "ModelFBWorkspace"],
    "rdagent.scenarios.qlib.experiment.workspace": ["QlibFBWorkspace"],
    "rdagent.scenarios.qlib.experiment.factor_experiment": ["QlibFactorExperiment"],
    "rdagent.core.proposal": ["Hypothesis", "HypothesisFeedback"],
    "rdagent.scenarios.qlib.proposal.quant_proposal": ["QlibQuantHypothesis"],
    "rdagent.core.experiment": ["RunningInfo"],
}


class _Fake:
    def __init__(self, **attrs: object) -> None:
        self.__dict__.update(attrs)


@pytest.fixture()
def fake_rdagent() -> Iterator[dict[str, type]]:
    """Stand-in classes whose pickles name RD-Agent's globals; sys.modules is restored afterwards."""
    saved = {k: v for k, v in sys.modules.items() if k == "rdagent" or k.startswith("rdagent.")}
    classes: dict[str, type] = {}
    for mod_name, names in FAKE_CLASSES.items():
        parts = mod_name.split(".")
        for i in range(1, len(parts) + 1):
            sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        mod = sys.modules[mod_name]
        for n in names:
            cls = type(n, (_Fake,), {"__module__": mod_name, "__qualname__": n})
            setattr(mod, n, cls)
            classes[n] = cls
    yield classes
    for k in [k for k in sys.modules if k == "rdagent" or k.startswith("rdagent.")]:
        del sys.modules[k]
    sys.modules.update(saved)


class TraceWriter:
    """Writes `<run>/Loop_i/<step>/<tag>/<pid>/<ts>.pkl` files like RD-Agent's FileStorage (signed when key given)."""

    def __init__(self, run_dir: Path, key: bytes | None) -> None:
        self.run_dir = run_dir
        self.key = key
        self.t = datetime(2026, 1, 5, 8, 0, 0, tzinfo=timezone.utc)

    def write(self, loop: int, step: str, tag: str, obj: object = None, *, payload: bytes | None = None) -> Path:
        import pickle

        self.t += timedelta(seconds=1)
        d = self.run_dir / f"Loop_{loop}" / step / tag / "4242"
        d.mkdir(parents=True, exist_ok=True)
        p = d / (self.t.strftime("%Y-%m-%d_%H-%M-%S-%f") + ".pkl")
        body = payload if payload is not None else pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        p.write_bytes(sign_payload(body, self.key) if self.key else body)
        return p


@pytest.fixture()
def tmp_trace(tmp_path: Path) -> tuple[TraceWriter, Path]:
    """(writer for a fresh run folder, workspace root) under tmp_path, signed with a known key."""
    run = tmp_path / "log" / "2026-01-05_08-00-00-000000"
    run.mkdir(parents=True)
    ws_root = tmp_path / "workspace"
    ws_root.mkdir()
    return TraceWriter(run, b"k" * 32), ws_root


def copy_trace(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def only_run(root: Path) -> Path:
    runs = [p for p in (root / "log").iterdir() if p.is_dir()]
    assert len(runs) == 1
    return runs[0]
