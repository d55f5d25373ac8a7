"""``warm_up`` loads every kernel signature an Alpha158 request (and each operator) meets, so the first real
compute of a process dispatches straight to machine code. Checked in a fresh interpreter: in the test process
other tests have loaded the kernels already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = """
import json, sys
from numba.core.dispatcher import Dispatcher
from rdbridge.contracts.alpha158 import alpha158_expressions
from rdbridge.engine import compute
from rdbridge.engine.synthetic import make_panel
from rdbridge.engine.warmup import EXTRA, warm_up

seconds = warm_up()
loaded = []
original = Dispatcher._compile_for_args

def spy(self, *args, **kwargs):
    loaded.append(self.py_func.__name__)
    return original(self, *args, **kwargs)

Dispatcher._compile_for_args = spy
panel = make_panel(25, 400, seed=11)  # another shape and other values than the warm-up's panel
compute(panel, {**alpha158_expressions(), **EXTRA})
print(json.dumps({"seconds": seconds, "loaded_after_warm_up": sorted(set(loaded))}))
"""


def test_after_warm_up_a_compute_loads_no_kernel() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["seconds"] > 0
    assert got["loaded_after_warm_up"] == [], "kernels first loaded inside the compute instead of by warm_up"
