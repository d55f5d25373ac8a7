"""``rdbridge engine compute`` writes the factors of a parquet panel, and reports bad input as a message."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from rdbridge.engine import compute
from rdbridge.engine.cli import engine_app
from rdbridge.engine.synthetic import make_panel


def test_compute_writes_parquet_equal_to_the_library(tmp_path: Path) -> None:
    panel = make_panel(5, 80, seed=2)
    src = tmp_path / "panel.parquet"
    panel.write_parquet(src)
    out = tmp_path / "f.parquet"
    res = CliRunner().invoke(
        engine_app, ["compute", "--data", str(src), "--out", str(out), "--expr", "MA5=Mean($close, 5)/$close", "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    got = pl.read_parquet(out)
    assert doc["rows"] == got.height == panel.height and doc["factors"] == 1
    want = compute(panel, {"MA5": "Mean($close, 5)/$close"})
    assert got["MA5"].equals(want["MA5"])


def test_bad_expression_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    src = tmp_path / "panel.parquet"
    make_panel(3, 40, seed=2).write_parquet(src)
    res = CliRunner().invoke(
        engine_app, ["compute", "--data", str(src), "--out", str(tmp_path / "o.parquet"), "--expr", "X=Mean($close,5", "--json"]
    )
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and "factor 'X'" in doc["error"] and "column 14" in doc["error"]
    assert not (tmp_path / "o.parquet").exists()


def test_sample_data_writes_a_qlib_dir_the_engine_reads(tmp_path: Path) -> None:
    from rdbridge.engine.data import open_data_service

    runner = CliRunner()
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        res = runner.invoke(engine_app, ["sample-data", "--out", str(d), "--instruments", "7", "--days", "60",
                                         "--seed", "3"])
        assert res.exit_code == 0, res.output
    svc = open_data_service(a)
    assert len(svc.instruments()) == 7 and len(svc.calendar()) == 60
    assert svc.load(["close"]).equals(open_data_service(b).load(["close"]))  # same seed, same panel
    out = tmp_path / "f.parquet"
    res = runner.invoke(engine_app, ["compute", "--data", str(a), "--out", str(out), "--expr", "R=$close/$open",
                                     "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["rows"] == pl.read_parquet(out).height > 0
    again = runner.invoke(engine_app, ["sample-data", "--out", str(a)])  # never writes into a used directory
    assert again.exit_code == 2 and "not an empty directory" in again.output
