import json
import subprocess
import sys

import rdbridge


def test_version_json_is_one_document() -> None:
    out = subprocess.run([sys.executable, "-m", "rdbridge.cli", "version", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"version": rdbridge.__version__}
