"""Promoting the sample trace's accepted factors: generated.py imports, each function reproduces its loop's
result.h5 bit for bit, VERSION goes up once, the registry rows point at the function, and a second promote
changes nothing (same bytes, same version, no new snapshot). The after-promotion hook gets the loops touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from rdbridge.factorlib import package as pkg
from rdbridge.factorlib.promote import promote
from rdbridge.registry import make_engine, session_scope
from rdbridge.registry.models import Factor, FactorPackageVersion, Loop, Workspace

from .promotion_support import SAMPLE, check_functions, ingested


@pytest.fixture(scope="module")
def promoted(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch) -> dict:
    tmp = tmp_path_factory.mktemp("promote_sample")
    monkeypatch_module.setenv("RDBRIDGE_HOME", str(tmp / "home"))
    trace, url = ingested(SAMPLE, tmp)
    package = pkg.init_package(tmp / "package")
    generated_before = (package / "rd_factors_lib" / "generated.py").read_bytes()
    hooked: list[list[str]] = []
    first = promote(url, package, after_promotion=hooked.append)
    return {"url": url, "package": package, "first": first, "hooked": hooked, "generated_before": generated_before}


@pytest.fixture(scope="module")
def monkeypatch_module() -> pytest.MonkeyPatch:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_accepted_factors_are_promoted_and_reproduce_result_h5(promoted: dict) -> None:
    report, url, package = promoted["first"], promoted["url"], promoted["package"]
    engine = make_engine(url)
    with session_scope(engine, write=False) as s:
        accepted = set(s.scalars(select(Loop.experiment_id).where(Loop.decision.is_(True), Loop.action == "factor")))
        rows = {f.factor_name: f for f in s.scalars(select(Factor).where(Factor.promotion_status == "promoted"))}
        ws = {f.factor_name: Path(s.get(Workspace, f.workspace_id).workspace_path) for f in rows.values()}
    engine.dispose()
    assert accepted and report.version_before == "0.1.0" and report.version_after == "0.1.1"
    added = [o for o in report.factors if o.status == "added"]
    assert added and {o.experiment_id for o in added} <= accepted
    assert all(o.stored_result == "identical" for o in added), [o.stored_result for o in added]
    assert set(rows) == {o.factor_name for o in added}
    for o in added:
        row = rows[o.factor_name]
        assert (row.impl_module, row.impl_func, row.impl_version) == ("rd_factors_lib.generated", o.impl_func, "0.1.1")
    checked = check_functions(package, ws)
    assert checked["version"] == "0.1.1"
    for name in rows:
        assert checked[name]["group"] == "generated" and checked[name]["series_name"] == name
        assert checked[name]["identical"] and checked[name]["values"] > 1000, checked[name]
    assert promoted["hooked"] == [sorted({o.experiment_id for o in added})]


def test_second_promote_changes_nothing(promoted: dict) -> None:
    url, package = promoted["url"], promoted["package"]
    gen = package / "rd_factors_lib" / "generated.py"
    before = gen.read_bytes()
    assert before != promoted["generated_before"]
    again = promote(url, package)
    assert again.version_before == again.version_after == "0.1.1"
    assert {o.status for o in again.factors} == {"unchanged"}
    assert gen.read_bytes() == before and pkg.read_version(package) == "0.1.1"
    engine = make_engine(url)
    with session_scope(engine, write=False) as s:
        versions = s.scalars(select(FactorPackageVersion.version).order_by(FactorPackageVersion.id)).all()
    engine.dispose()
    assert versions == ["0.1.0", "0.1.1"]


def test_snapshot_is_content_addressed_and_reproducible(promoted: dict) -> None:
    url, package = promoted["url"], promoted["package"]
    engine = make_engine(url)
    with session_scope(engine, write=False) as s:
        row = s.scalars(select(FactorPackageVersion).where(FactorPackageVersion.version == "0.1.1")).one()
        rel, sha = row.archive_path, row.sha256
    engine.dispose()
    data = pkg.read_snapshot(rel, sha)
    assert sha in rel and pkg.snapshot_bytes(package) == data
    assert "factor_momentum_vol_adj_10d" in pkg.snapshot_member(data, "rd_factors_lib/generated.py")
    assert pkg.snapshot_member(data, "rd_factors_lib/VERSION").strip() == "0.1.1"


def test_hand_edited_package_is_refused(promoted: dict) -> None:
    url, package = promoted["url"], promoted["package"]
    gen = package / "rd_factors_lib" / "generated.py"
    before = gen.read_bytes()
    gen.write_bytes(before + b"\n# edited by hand\n")
    try:
        with pytest.raises(pkg.PackageError, match="differs from the recorded snapshot of version 0.1.1"):
            promote(url, package)
    finally:
        gen.write_bytes(before)


def test_template_generated_py_is_the_scaffold_header() -> None:
    from .promotion_support import REPO

    assert (REPO / "factors-lib" / "rd_factors_lib" / "generated.py").read_text(encoding="utf-8") == pkg.GENERATED_HEADER
