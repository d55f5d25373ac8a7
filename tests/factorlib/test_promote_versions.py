"""The hard fixture reuses `Intraday_Range_Pos` in loop 5 with new code: promoting loop 1 then loop 5 gives two
versions; the old version's bundle still holds the old code, `show` at each version prints each, and the unicode
name `动量_5日` gets a stable sanitized function name."""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from rdbridge.factorlib import package as pkg
from rdbridge.factorlib.names import function_name, short_hash
from rdbridge.factorlib.versions import bundle

from .promotion_support import HARD, ingested, run_cli

RUN = "2026-01-05_08-00-11-000000"
OLD_LINE = "out = (df['$close'] - df['$low']) / (df['$high'] - df['$low'] + 1e-12)"
NEW_LINE = "out = x.groupby(level='instrument').transform(lambda s: s.rolling(3).mean())"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("promote_hard")
    home = tmp / "home"
    home.mkdir()
    _, url = ingested(HARD, tmp)
    package = pkg.init_package(tmp / "package")
    common = ("--db", url, "--package", str(package), "--json")
    first = run_cli("factorlib", "promote", "--loop", f"{RUN}/1", "--factor", "Intraday_Range_Pos", *common, home=home)
    assert first.returncode == 0, first.stderr
    second = run_cli("factorlib", "promote", "--loop", f"{RUN}/5", *common, home=home)
    assert second.returncode == 0, second.stderr
    return {"home": home, "url": url, "package": package, "first": json.loads(first.stdout),
            "second": json.loads(second.stdout)}


def test_reused_name_with_new_code_is_a_new_version(history: dict) -> None:
    first, second = history["first"], history["second"]
    assert (first["version_before"], first["version_after"]) == ("0.1.0", "0.1.1")
    assert [(f["factor_name"], f["status"]) for f in first["factors"]] == [("Intraday_Range_Pos", "added")]
    assert second["version_after"] == "0.1.2"
    status = {f["factor_name"]: f["status"] for f in second["factors"]}
    assert status == {"Intraday_Range_Pos": "changed", "动量_5日": "added"}
    versions = run_cli("factorlib", "versions", "--db", history["url"], "--json", home=history["home"])
    rows = {v["version"]: v for v in json.loads(versions.stdout)["versions"]}
    assert rows["0.1.1"]["added"] == ["Intraday_Range_Pos"]
    assert rows["0.1.2"]["changed"] == ["Intraday_Range_Pos"] and rows["0.1.2"]["added"] == ["动量_5日"]
    assert len({r["sha256"] for r in rows.values()}) == 3


def test_old_bundle_keeps_old_code_and_show_prints_each_version(
    history: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, url = history["home"], history["url"]
    monkeypatch.setenv("RDBRIDGE_HOME", str(home))  # the artifact store the CLI runs wrote to
    old = tmp_path / "rd_factors_lib-0.1.1.tar.gz"
    res = run_cli("factorlib", "bundle", "--version", "0.1.1", "--format", "tar.gz", "--out", str(old), "--db", url,
                  home=home)
    assert res.returncode == 0, res.stderr
    new = tmp_path / "rd_factors_lib-0.1.2.tar.gz"
    bundle(url, "0.1.2", "tar.gz", new)
    for version, archive, present, absent in (("0.1.1", old, OLD_LINE, NEW_LINE), ("0.1.2", new, NEW_LINE, OLD_LINE)):
        with tarfile.open(archive, "r:gz") as tar:
            generated = tar.extractfile("rd_factors_lib/generated.py").read().decode()  # type: ignore[union-attr]
            assert tar.extractfile("rd_factors_lib/VERSION").read().decode().strip() == version  # type: ignore[union-attr]
        assert present in generated and absent not in generated
        shown = run_cli("factorlib", "show", "Intraday_Range_Pos", "--version", version, "--db", url, home=home)
        assert shown.returncode == 0, shown.stderr
        assert f"rd_factors_lib {version}" in shown.stdout and present in shown.stdout and absent not in shown.stdout
    zipped = tmp_path / "old.zip"
    bundle(url, "0.1.1", "zip", zipped)
    with zipfile.ZipFile(zipped) as z:
        assert OLD_LINE in z.read("rd_factors_lib/generated.py").decode()
    with pytest.raises(pkg.PackageError, match=r"no package version '9\.9\.9'.*0\.1\.1"):
        bundle(url, "9.9.9", "tar.gz", tmp_path / "x")


def test_unicode_name_maps_to_a_stable_function(history: dict) -> None:
    func = {f["factor_name"]: f["impl_func"] for f in history["second"]["factors"]}["动量_5日"]
    assert func == f"factor_5_{short_hash('动量_5日')}"
    source = (history["package"] / "rd_factors_lib" / "generated.py").read_text(encoding="utf-8")
    assert f"def {func}(df: pd.DataFrame) -> pd.Series:" in source


def test_names_are_sanitized_deterministically() -> None:
    assert function_name("Vol-Adj Momentum (10D)", {}) == "factor_vol_adj_momentum_10d"
    taken = {"factor_vol_adj_momentum_10d": "Vol-Adj Momentum (10D)"}
    clash = function_name("Vol_Adj_Momentum_10D", taken)
    assert clash == f"factor_vol_adj_momentum_10d_{short_hash('Vol_Adj_Momentum_10D')}"
    assert function_name("Vol-Adj Momentum (10D)", taken) == "factor_vol_adj_momentum_10d"
    assert function_name("", {}) == f"factor_{short_hash('')}"
    assert function_name("Café", {}) == "factor_cafe"
    assert function_name("???", {}).startswith("factor_") and function_name("???", {}).isidentifier()
