"""Bad input to rdbridge verify is named (file, factor, member) and exits 2; the user's own data goes through the
engine's DataService protocol; the standard set regenerates to its recorded sha256."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import polars as pl
import pytest

from rdbridge.verify import dataset
from rdbridge.verify.mapping import MappingError, load_mapping_file
from rdbridge.verify.reference import ReferenceError_, open_reference
from rdbridge.verify.run import Options, Target, verify_targets


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RDBRIDGE_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "rdbridge.cli", "verify", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_standard_set_is_realistic_and_hashes_to_its_record(std_panel: pl.DataFrame) -> None:
    spec = dataset.STANDARD_SETS["std-v1"]
    assert dataset.panel_sha256(std_panel) == spec.sha256
    spans = std_panel.group_by("instrument").agg(pl.col("datetime").min().alias("a"), pl.col("datetime").max().alias("b"))
    first, last = std_panel["datetime"].min(), std_panel["datetime"].max()
    assert (spans["a"] > first).sum() >= 5 and (spans["b"] < last).sum() >= 2  # late listings, delistings
    assert std_panel["close"].is_nan().sum() > 100  # suspended rows kept as NaN
    one_price = std_panel.filter((pl.col("high") == pl.col("low")) & pl.col("close").is_not_nan())
    assert one_price.height > 50  # limit-up / limit-down days
    assert std_panel["factor"].drop_nans().n_unique() > spec.instruments  # adjustment factors move


def test_mapping_file_errors_name_file_and_factor(tmp_path: Path) -> None:
    bad = tmp_path / "map.yaml"
    bad.write_text("factors:\n  ROC5: {expr: 'Ref($close, 5)/$close', impl: 'x:y'}\n")
    with pytest.raises(MappingError, match=r"map\.yaml.*ROC5.*exactly one"):
        load_mapping_file(bad)
    bad.write_text("factors:\n  ROC5: {expr: 'Ref($close, 5)/$close', rtol: -1}\n")
    with pytest.raises(MappingError, match="ROC5.*tolerances"):
        load_mapping_file(bad)
    p = _cli("all", "--mapping", str(bad), "--no-record", home=tmp_path)
    assert p.returncode == 2 and "map.yaml" in p.stderr


def test_verify_all_with_a_mapping_exits_1_on_any_failure(tmp_path: Path) -> None:
    m = tmp_path / "platform.yaml"
    m.write_text("defaults: {rtol: 1.0e-6, atol: 1.0e-6}\nfactors:\n"
                 "  ROC5: 'Ref($close, 5)/$close'\n"
                 "  KLEN: {expr: '($high-$low)/$open', rtol: 1.0e-5}\n"
                 "  STD5: {expr: 'Std($close, 5)/$close'}\n"  # Alpha158's STD5 is Std(.., 5): this one is right
                 "  MAX5: {expr: 'Max($high, 4)/$close'}\n")  # off by one
    p = _cli("all", "--mapping", str(m), "--no-record", "--out-dir", str(tmp_path / "r"), "--json", home=tmp_path)
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    got = {r["factor"]: r["verified"] for r in doc["reports"]}
    assert got == {"ROC5": True, "KLEN": True, "STD5": True, "MAX5": False}
    assert [r["tolerances"]["rtol"] for r in doc["reports"] if r["factor"] == "KLEN"] == [1e-5]


def test_bad_expression_and_unknown_factor_fail_only_themselves(tmp_path: Path) -> None:
    res = verify_targets([Target("ROC5", "expr", "Ref($close, 5)/$close"), Target("KMID", "expr", "Mean($close,"),
                          Target("NO_SUCH_FACTOR", "expr", "$close")], Options(out_dir=tmp_path))
    by = {r.factor: r for r in res.reports}
    assert by["ROC5"].verified and not by["KMID"].verified and not by["NO_SUCH_FACTOR"].verified
    assert "Mean($close," in (by["KMID"].error or "") and "NO_SUCH_FACTOR" in (by["NO_SUCH_FACTOR"].error or "")


def test_bundle_escaping_its_folder_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        data = b"x"
        info = tarfile.TarInfo("../escaped.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ReferenceError_, match="escapes"), open_reference(evil, None):
        pass
    assert not (tmp_path.parent / "escaped.py").exists()
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    with pytest.raises(ReferenceError_, match="junk.tar.gz"), open_reference(junk, None):
        pass


def test_user_data_through_the_data_service(tmp_path: Path, std_panel: pl.DataFrame) -> None:
    mine = std_panel.filter(pl.col("instrument").is_in(std_panel["instrument"].unique().sort()[:6].to_list()))
    path = tmp_path / "mine.parquet"
    mine.write_parquet(path)
    res = verify_targets([Target("ROC5", "expr", "Ref($close, 5)/$close")], Options(data=str(path), out_dir=tmp_path))
    assert res.reports[0].verified and res.dataset.source == f"data:{path}"
    assert res.dataset.rows == mine.height and res.dataset.sha256 == dataset.panel_sha256(mine)
