"""The API lists the factor package's curated factors without importing the package: a decoy rd_factors_lib whose
every module writes a marker file when imported is first on the server's path; its factors are listed, and the
marker never appears."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .conftest import launch, stop, wait_ready
from .world import World

DECOY = '''
import pathlib
pathlib.Path({marker!r}).write_text("imported {module}")
from ._registry import factor


@factor("DECOY_{upper}")
def factor_decoy_{module}(df):
    """DECOY_{upper} = close / close[t-1] - 1 (a factor whose module must never run in the API)."""
    return df["$close"]
'''


def test_package_factors_are_listed_without_importing_the_package(backend: tuple[str, World], tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url, world = backend
    marker = tmp_path / "IMPORTED"
    pkg = tmp_path / "decoy" / "rd_factors_lib"
    pkg.mkdir(parents=True)
    (pkg / "VERSION").write_text("9.9.9\n")
    for module in ("__init__", "_registry", "momentum", "volume"):
        (pkg / f"{module}.py").write_text(DECOY.format(marker=str(marker), module=module.strip("_"),
                                                       upper=module.strip("_").upper()))
    monkeypatch.setattr(sys, "path", [str(tmp_path / "decoy"), *sys.path])  # what `launch` passes as PYTHONPATH
    server = wait_ready(launch(url, world.root / "home", None, world))
    try:
        with server.client() as c:
            r = c.get("/catalog/factors", params={"source": "package", "limit": 1000})
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            # one fresh answer per process start, whatever the test order (the server is new)
            assert [(x["name"], x["impl_module"], x["impl_func"], x["impl_version"]) for x in items] == [
                ("DECOY_MOMENTUM", "rd_factors_lib.momentum", "factor_decoy_momentum", None),
                ("DECOY_VOLUME", "rd_factors_lib.volume", "factor_decoy_volume", None)]
            assert items[0]["formula_hint"] == "DECOY_MOMENTUM = close / close[t-1] - 1 (a factor whose module " \
                                               "must never run in the API)."
            assert c.get("/factors/KMID").status_code == 200
            assert c.get("/catalog/models").status_code == 200
    finally:
        stop(server)
    assert not marker.exists(), marker.read_text()
