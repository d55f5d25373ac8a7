"""Put this checkout's ``factors-lib`` first on the path, so the tests exercise the package in this tree even when
another copy is installed in the venv."""

from __future__ import annotations

import sys
from pathlib import Path

FACTORS_LIB = Path(__file__).resolve().parents[2] / "factors-lib"
if str(FACTORS_LIB) not in sys.path:
    sys.path.insert(0, str(FACTORS_LIB))
