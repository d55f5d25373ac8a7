"""The engine's start-up hides scipy.linalg from numba's BLAS probe, and nothing numba can do is lost by it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rdbridge.engine.import_guard import hidden_modules

ROOT = Path(__file__).resolve().parents[2]


def test_a_hidden_module_fails_on_this_thread_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rdb_guard_probe.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "rdb_guard_probe", raising=False)
    seen: dict[str, object] = {}
    with hidden_modules(["rdb_guard_probe"]) as hidden:
        assert hidden == {"rdb_guard_probe"}
        with pytest.raises(ModuleNotFoundError, match="rdb_guard_probe"):
            importlib.import_module("rdb_guard_probe")
        other = threading.Thread(target=lambda: seen.setdefault("mod", importlib.import_module("rdb_guard_probe")))
        other.start()
        other.join()
    assert getattr(seen["mod"], "X") == 1
    assert not [f for f in sys.meta_path if type(f).__name__ == "_Hide"]  # the finder is gone after the block


def test_an_imported_module_is_never_hidden() -> None:
    with hidden_modules(["json", "os"]) as hidden:
        assert hidden == frozenset()
        assert importlib.import_module("json").dumps([1]) == "[1]"


def test_engine_start_skips_the_blas_probe_and_jitted_blas_still_works() -> None:
    """In a fresh process with scipy installed: importing the engine sets numba up without importing scipy.linalg;
    afterwards np.dot (BLAS, numba imports scipy for it) and np.correlate (numba's own loop) compile and agree
    with numpy."""
    import scipy  # noqa: F401 - the probe is only worth hiding where scipy is installed: the test venv has it

    code = (
        "import sys\n"
        "import rdbridge.engine.runner\n"
        "print('LINALG_AFTER_ENGINE', 'scipy.linalg' in sys.modules)\n"
        "import numba, numpy as np\n"
        "dot = numba.njit(lambda a, b: np.dot(a, b))\n"
        "corr = numba.njit(lambda a, b: np.correlate(a, b))\n"
        "a = np.arange(7.0); b = np.array([1.0, -2.0, 0.5])\n"
        "print('DOT', bool(dot(a, a) == np.dot(a, a)), 'CORR', bool(np.array_equal(corr(a, b), np.correlate(a, b))))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LINALG_AFTER_ENGINE False" in out.stdout, out.stdout
    assert "DOT True CORR True" in out.stdout, out.stdout
