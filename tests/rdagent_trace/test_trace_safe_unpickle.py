"""The allow-listed unpickler: genuine trace pickles load; code-running pickles are refused before they run."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
from pathlib import Path, PurePosixPath, PureWindowsPath

import pandas as pd
import pytest

from rdbridge.rdagent_trace import (
    CorruptPickleError,
    ForbiddenClassError,
    RdagentRecord,
    TruncatedPickleError,
    read_trace_pickle,
    safe_loads,
)
from rdbridge.rdagent_trace.signed import split_envelope
from rdtrace_helpers import HARD, LEGACY, QUANT, SAMPLE


class _Reduce:
    """Pickles as `func(*args)`: what a malicious trace file would contain."""

    def __init__(self, func: object, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def _attacks(marker: Path) -> dict[str, bytes]:
    m = str(marker)
    return {
        "os.system": pickle.dumps(_Reduce(os.system, (f"touch {m}",))),
        "subprocess.Popen": pickle.dumps(_Reduce(subprocess.Popen, (["touch", m],))),
        "builtins.eval": pickle.dumps(_Reduce(builtins.eval, (f"open({m!r}, 'w')",))),
        "builtins.exec": pickle.dumps(_Reduce(builtins.exec, (f"open({m!r}, 'w')",))),
        # getattr(os, 'system')('touch ...') spelled in protocol 0
        "builtins.getattr": (b"cbuiltins\ngetattr\n(cos\nsystem\nS'x'\ntR(S'touch " + m.encode() + b"'\ntR."),
        "copyreg._reconstructor": b"ccopy_reg\n_reconstructor\n(cos\n_wrap_close\nc__builtin__\nobject\nNtR.",
        "nested in a list": pickle.dumps([1, {"a": _Reduce(os.system, (f"touch {m}",))}]),
        "pandas.read_pickle": pickle.dumps(_Reduce(pd.read_pickle, (m,))),
        "rdagent function": b"crdagent.utils.env\nrun_cmd\n(S'touch " + m.encode() + b"'\ntR.",
    }


@pytest.mark.parametrize("name", list(_attacks(Path("x"))))
def test_code_running_pickles_are_refused_and_never_run(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    payload = _attacks(marker)[name]
    with pytest.raises(ForbiddenClassError) as info:
        safe_loads(payload, source=tmp_path / "evil.pkl")
    assert info.value.kind == "forbidden_class"
    assert str(tmp_path / "evil.pkl") in str(info.value)
    assert not marker.exists()


def test_the_os_system_payload_is_real(tmp_path: Path) -> None:
    """Control for the test above: the plain unpickler does run the payload (so 'marker absent' means refused)."""
    marker = tmp_path / "pwned"
    pickle.loads(_attacks(marker)["os.system"])  # our own crafted bytes, never a trace file
    assert marker.exists()


def test_forbidden_error_names_the_global(tmp_path: Path) -> None:
    with pytest.raises(ForbiddenClassError) as info:
        safe_loads(_attacks(tmp_path / "m")["subprocess.Popen"], source="f.pkl")
    assert info.value.global_name == "subprocess.Popen"


def test_build_on_an_allowed_class_is_refused() -> None:
    """BUILD with slot state on a class would setattr on it: a pickle could monkeypatch pandas in our process."""
    payload = b"cpandas\nIndex\n(N(dS'__repr__'\ncbuiltins\nslice\nstb."
    before = pd.Index.__repr__
    with pytest.raises(ForbiddenClassError, match="BUILD"):
        safe_loads(payload)
    assert pd.Index.__repr__ is before


def test_ext_opcode_is_refused() -> None:
    with pytest.raises(ForbiddenClassError):
        safe_loads(b"\x80\x02\x82\x01.")  # EXT1 code 1


def _all_trace_files() -> list[Path]:
    return sorted(p for root in (SAMPLE, QUANT, LEGACY, HARD) for p in (root / "log").rglob("*.pkl"))


def test_every_genuine_trace_pickle_loads() -> None:
    files = _all_trace_files()
    assert len(files) > 100
    kinds = set()
    for f in files:
        obj, _status = read_trace_pickle(f, None)
        kinds.add(type(obj).__name__ if not isinstance(obj, list) else "list")
    # hypotheses, feedback, experiments, workspace lists, execute logs (str) and backtest charts (DataFrame)
    assert {"Hypothesis", "HypothesisFeedback", "QlibFactorExperiment", "list", "str", "DataFrame",
            "QlibQuantHypothesis", "QlibModelExperiment"} <= kinds


def test_records_hold_the_pickled_state_and_pure_paths() -> None:
    f = next((SAMPLE / "log").rglob("runner result/*/*.pkl"))
    exp, _ = read_trace_pickle(f, None)
    assert isinstance(exp, RdagentRecord)
    assert exp.class_path == "rdagent.scenarios.qlib.experiment.factor_experiment.QlibFactorExperiment"
    ws = exp.get("experiment_workspace")
    assert isinstance(ws.get("workspace_path"), PurePosixPath)
    assert isinstance(exp.get("running_info").get("result"), pd.Series)
    assert exp.get("sub_tasks")[0].get("factor_name")


def test_windows_path_becomes_a_pure_windows_path() -> None:
    import pathlib

    payload = pickle.dumps(_Reduce(pathlib.WindowsPath, ("C:\\", "Users", "q", "workspace", "abc")))
    obj = safe_loads(payload)
    assert isinstance(obj, PureWindowsPath)
    assert obj.name == "abc"


def test_record_accepts_dict_and_slots_state(fake_rdagent: dict[str, type]) -> None:
    class Slotted:
        __slots__ = ("a", "b")

    Slotted.__module__, Slotted.__qualname__ = "rdagent.core.experiment", "RunningInfo"
    import sys

    setattr(sys.modules["rdagent.core.experiment"], "RunningInfo", Slotted)
    s = Slotted()
    s.a, s.b = 1, "two"
    obj = safe_loads(pickle.dumps(s, protocol=2))
    assert isinstance(obj, RdagentRecord) and obj.attrs == {"a": 1, "b": "two"}


def test_truncated_pickles_are_reported_as_truncated(tmp_path: Path) -> None:
    f = next((SAMPLE / "log").rglob("runner result/*/*.pkl"))
    _digest, payload = split_envelope(f.read_bytes())
    for cut in (1, 10, len(payload) // 3, len(payload) // 2, len(payload) - 1):
        with pytest.raises(TruncatedPickleError) as info:
            safe_loads(payload[:cut], source=f)
        assert info.value.kind == "truncated" and str(f) in str(info.value)
    legacy = pickle.dumps({"a": list(range(50)), "b": "x" * 100}, protocol=2)  # unframed protocol
    for cut in range(1, len(legacy) - 1, 7):
        with pytest.raises(TruncatedPickleError):
            safe_loads(legacy[:cut])
    with pytest.raises(TruncatedPickleError):
        safe_loads(b"")


def test_garbage_is_corrupt() -> None:
    for junk in (b"this is not a pickle\n" * 5, b"\x80\x05\x95garbage that is not a frame" * 3, b"<html></html>"):
        with pytest.raises(CorruptPickleError) as info:
            safe_loads(junk, source="junk.pkl")
        assert info.value.kind == "corrupt" and "junk.pkl" in str(info.value)


def test_known_rdagent_class_list_covers_the_genuine_traces() -> None:
    """KNOWN_RDAGENT_CLASSES documents what rdagent 1.0 writes; keep it in step with the genuine fixtures."""
    import io

    from rdbridge.rdagent_trace.safe_unpickle import KNOWN_RDAGENT_CLASSES, SafeUnpickler

    seen: set[str] = set()

    class Recording(SafeUnpickler):
        def find_class(self, module: str, name: str):
            if module.startswith("rdagent."):
                seen.add(f"{module}.{name}")
            return super().find_class(module, name)

    for f in _all_trace_files():
        Recording(io.BytesIO(split_envelope(f.read_bytes())[1]), source=f).load()
    assert len(seen) >= 11 and seen <= KNOWN_RDAGENT_CLASSES
