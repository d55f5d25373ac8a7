"""rdbridge verify on the standard panel: a correct re-implementation passes, an off-by-one window fails at the
right first date, a different NaN rule fails on the mask, the reference is the bundle's code run in a child
process, and the verdict in the platform library turns stale when the reference gets a newer impl_version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl
import pytest

from rdbridge.consumer import verdicts
from rdbridge.consumer.db import init_platform_db, session_scope
from rdbridge.consumer.models import LibFactor
from rdbridge.contracts.verify import Tolerances, VerifyReport
from rdbridge.verify.run import Options, Target, verify_targets

from consumer.servers import start_ui

ROC5 = "Ref($close, 5)/$close"


def _opts(tmp_path: Path, **kw: object) -> Options:
    return Options(out_dir=tmp_path / "reports", db_url=f"sqlite:///{tmp_path / 'platform.sqlite'}", **kw)  # type: ignore[arg-type]


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RDBRIDGE_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "rdbridge.cli", "verify", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_correct_reimplementations_pass_and_are_recorded(tmp_path: Path) -> None:
    res = verify_targets([Target("ROC5", "impl", "verify.impls:roc5"),
                          Target("MA5", "expr", "Mean($close, 5) / $close")], _opts(tmp_path))
    assert [r.verified for r in res.reports] == [True, True], [r.reason for r in res.reports]
    for r in res.reports:
        c = r.comparison
        assert c is not None and c.mask_equal and c.failing_cells == 0 and c.share_within_tolerance == 1.0
        assert c.both_valid > 0.8 * c.cells and c.pearson_min is not None and c.pearson_min > 0.999999
        doc = VerifyReport.model_validate_json(Path(r.report_json).read_text())  # type: ignore[arg-type]
        assert doc.dataset.sha256 == res.dataset.sha256 and doc.tolerances == Tolerances()
        assert "verified" in Path(r.report_html).read_text()  # type: ignore[arg-type]
    engine = init_platform_db(f"sqlite:///{tmp_path / 'platform.sqlite'}")
    with session_scope(engine, write=False) as s:
        got = verdicts.latest(s)
    assert {n: d.status for n, d in got.items()} == {"ROC5": "verified", "MA5": "verified"}
    assert got["ROC5"].dataset_sha256 == res.dataset.sha256 and got["ROC5"].report_path


def _first_date_with_history(panel: pl.DataFrame, rows_before: int) -> str:
    """The earliest date on which some instrument has a valid close and at least ``rows_before`` earlier rows."""
    p = panel.with_columns(pl.int_range(pl.len()).over("instrument").alias("k"))
    hit = p.filter((pl.col("k") >= rows_before) & pl.col("close").is_not_nan())
    return str(hit["datetime"].min().date())  # type: ignore[union-attr]


def test_off_by_one_window_fails_at_the_first_differing_date(tmp_path: Path, std_panel: pl.DataFrame) -> None:
    res = verify_targets([Target("MA5", "expr", "Mean($close, 6) / $close")], _opts(tmp_path))
    r = res.reports[0]
    c = r.comparison
    assert not r.verified and c is not None
    assert c.mask_equal  # same NaN cells, different values
    # partial windows agree on an instrument's first five rows; the sixth row is the first that can differ
    expected = _first_date_with_history(std_panel, 5)
    assert c.first_differing_date == expected and expected in r.reason
    assert c.first_differing_date > str(std_panel["datetime"].min().date())  # type: ignore[union-attr]
    assert c.failing_cells > 0.5 * c.cells and c.worst_cells and c.max_abs_error and c.max_abs_error > 1e-3
    html = Path(r.report_html).read_text()  # type: ignore[arg-type]
    assert expected in html and "failed" in html
    png = Path(r.report_html).with_suffix(".png")  # type: ignore[arg-type]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _latest(tmp_path)["MA5"].status == "failed"


def test_different_nan_handling_fails_on_the_mask(tmp_path: Path, std_panel: pl.DataFrame) -> None:
    res = verify_targets([Target("KMID", "impl", "verify.impls:kmid_filled")], _opts(tmp_path))
    r = res.reports[0]
    c = r.comparison
    assert not r.verified and c is not None and r.reason.startswith("NaN masks differ")
    suspended = std_panel.filter(pl.col("close").is_nan() | pl.col("open").is_nan())
    assert c.nan_reference_only == suspended.height and c.nan_candidate_only == 0
    assert c.failing_cells == suspended.height  # every valid cell agrees
    assert c.first_differing_date == str(suspended["datetime"].min().date())  # type: ignore[union-attr]
    assert {w.kind for w in c.worst_cells} == {"mask"} and all(w.reference is None for w in c.worst_cells)


def test_reference_is_the_bundles_code(tmp_path: Path, make_bundle) -> None:  # type: ignore[no-untyped-def]
    """A bundle whose ROC5 reads 4 days back: the same correct candidate now fails, so the reference ran the
    bundle's code (in a child process), not the rd_factors_lib installed beside rdbridge."""
    bundle = make_bundle("9.0.0", edit=("return ref(p[\"$close\"], d) / p[\"$close\"]",
                                        "return ref(p[\"$close\"], d - 1) / p[\"$close\"]"))
    res = verify_targets([Target("ROC5", "expr", ROC5)], _opts(tmp_path, bundle=bundle))
    assert res.impl_version == "9.0.0" and not res.reports[0].verified
    ok = verify_targets([Target("ROC5", "expr", ROC5)], _opts(tmp_path, bundle=make_bundle("9.0.1", as_dir=True)))
    assert ok.impl_version == "9.0.1" and ok.reports[0].verified


def _set_impl_version(db_url: str, name: str, version: str) -> None:
    """What a sync writes when the producer's package gives the factor a new impl_version."""
    engine = init_platform_db(db_url)
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        row = s.get(LibFactor, f"package:{name}")
        if row is None:
            row = LibFactor(id=f"package:{name}", name=name, source="package", content_hash="x" * 64,
                            synced_at_utc=now, in_library=True, impl_module="rd_factors_lib.alpha158",
                            impl_func=f"factor_{name.lower()}", expression=ROC5)
            s.add(row)
        row.impl_version = version
        row.content_hash = f"{version:0<64}"[:64]
    engine.dispose()


def _latest(tmp_path: Path) -> dict:
    engine = init_platform_db(f"sqlite:///{tmp_path / 'platform.sqlite'}")
    try:
        with session_scope(engine, write=False) as s:
            return verdicts.latest(s)
    finally:
        engine.dispose()


def _verdicts(home: Path, db_url: str) -> dict[str, dict]:
    p = _cli("verdicts", "--db", db_url, "--json", home=home)
    assert p.returncode == 0, p.stderr
    return {d["factor"]: d for d in json.loads(p.stdout)}


def test_verdict_turns_stale_after_a_version_bump_cli_and_ui(tmp_path: Path, make_bundle) -> None:  # type: ignore[no-untyped-def]
    db_url = f"sqlite:///{tmp_path / 'platform.sqlite'}"
    _set_impl_version(db_url, "ROC5", "0.1.0")
    b010, b020 = make_bundle("0.1.0"), make_bundle("0.2.0")
    p = _cli("factor", "ROC5", "--expr", ROC5, "--bundle", str(b010), "--version", "0.1.0", "--db", db_url,
             "--out-dir", str(tmp_path / "r1"), "--json", home=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["reports"][0]["impl_version"] == "0.1.0"
    assert _latest(tmp_path)["ROC5"].status == "verified"

    _set_impl_version(db_url, "ROC5", "0.2.0")
    stale = _verdicts(tmp_path, db_url)["ROC5"]
    assert stale["status"] == "stale" and stale["impl_version"] == "0.1.0" and stale["current_impl_version"] == "0.2.0"

    ui = start_ui(tmp_path, db_url)
    try:
        page = httpx.get(f"{ui.url}/factors/ROC5", timeout=30).text
        assert "verdict-stale" in page and "0.2.0" in page and "verify again" in page
        assert "/factors/ROC5" in httpx.get(f"{ui.url}/factors?verdict=stale", timeout=30).text
        assert "/factors/ROC5" not in httpx.get(f"{ui.url}/factors?verdict=verified", timeout=30).text
        assert httpx.get(f"{ui.url}/factors?verdict=bogus", timeout=30).status_code == 400

        # the wrong bundle for a stated version is refused; the right one verifies again
        bad = _cli("factor", "ROC5", "--expr", ROC5, "--bundle", str(b010), "--version", "0.2.0", "--db", db_url,
                   home=tmp_path)
        assert bad.returncode == 2 and "0.1.0" in bad.stderr and "0.2.0" in bad.stderr
        p = _cli("factor", "ROC5", "--expr", ROC5, "--bundle", str(b020), "--db", db_url,
                 "--out-dir", str(tmp_path / "r2"), home=tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
        assert _latest(tmp_path)["ROC5"].status == "verified"
        assert "/factors/ROC5" in httpx.get(f"{ui.url}/factors?verdict=verified", timeout=30).text
        page = httpx.get(f"{ui.url}/factors/ROC5", timeout=30).text
        assert "verdict-verified" in page and "verify again" not in page
    finally:
        ui.stop()
