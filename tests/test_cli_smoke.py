import json
import subprocess
import sys

import rdbridge


def test_version_json_is_one_document() -> None:
    out = subprocess.run([sys.executable, "-m", "rdbridge.cli", "version", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"version": rdbridge.__version__}


def test_entry_point_pauses_the_cycle_collector_only_for_imports_and_the_engine(monkeypatch, tmp_path) -> None:
    """`run()` (the console script) pauses gc while modules import; every command but the engine's runs with it."""
    import gc

    import pytest

    import rdbridge.cli as cli
    import rdbridge.engine.job as job

    seen: dict[str, bool] = {}
    monkeypatch.setattr(cli, "_emit_json", lambda doc: seen.setdefault("version", gc.isenabled()))

    def fake_run_job(*args: object, **kwargs: object) -> None:
        seen["engine"] = gc.isenabled()
        raise ValueError("stop here")

    monkeypatch.setattr(job, "run_job", fake_run_job)
    assert gc.isenabled()
    for argv in (["rdbridge", "version", "--json"],
                 ["rdbridge", "engine", "compute", "--data", str(tmp_path), "--out", str(tmp_path / "o.parquet"),
                  "--expr", "A=$close", "--json"]):
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit):
            cli.run()
        assert gc.isenabled()  # restored when run() returns
    assert seen == {"version": True, "engine": False}
