"""The factor catalog lists the factor package's curated factors, read from its registered snapshot (or the shipped
package before any registration) as text: names, functions, formulas and fields equal what the package itself
registers when imported (here, in the test process: the catalog never imports it)."""

from __future__ import annotations

import hashlib
import inspect
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert

from rdbridge.catalog import Filters, PageRequest, factor_page
from rdbridge.catalog.export import walk
from rdbridge.catalog.factors import factor_sources
from rdbridge.catalog.package_factors import PackageSnapshotError, _parsed
from rdbridge.factorlib.package import snapshot_bytes
from rdbridge.registry import init_db
from rdbridge.registry.models import FactorPackageVersion

REPO = Path(__file__).resolve().parents[2]
OTHER_SOURCES = {"alpha158", "generated"}
"""Modules whose factors the catalog lists under other sources."""
NEW = '''

@factor("MOM_5_TEST")
def factor_mom_5_test(df: pd.DataFrame) -> pd.Series:
    """MOM_5_TEST = close / close[t-5] - 1 (added for the catalog test)."""
    return _out(ret(_panel(df)["$close"], 5), df, "MOM_5_TEST")
'''


def _curated() -> dict[str, tuple[str, str, str]]:
    """name -> (module, function, docstring) from the imported package's own REGISTRY."""
    import rd_factors_lib

    return {n: (i.group, i.func.__name__, inspect.cleandoc(i.func.__doc__ or ""))
            for n, i in rd_factors_lib.REGISTRY.items() if i.group not in OTHER_SOURCES}


def _package(engine, store: Path, f: Filters | None = None) -> list:  # noqa: ANN001
    with engine.connect() as conn:
        return walk(conn, lambda c, flt, p: factor_page(c, flt, p, sources=factor_sources(store)),
                    f or Filters(source="package"))


def _register(engine, store: Path, pkg: Path, version: str, when: datetime) -> str:  # noqa: ANN001
    data = snapshot_bytes(pkg)
    sha = hashlib.sha256(data).hexdigest()
    rel = f"factor_package/sha256/{sha[:2]}/{sha}.tar.gz"
    (store / rel).parent.mkdir(parents=True, exist_ok=True)
    (store / rel).write_bytes(data)
    with engine.begin() as conn:
        conn.execute(insert(FactorPackageVersion).values(version=version, sha256=sha, archive_path=rel,
                                                         size_bytes=len(data), package_path=str(pkg),
                                                         added_json=[], changed_json=[], created_at_utc=when))
    return rel


@pytest.fixture
def registry(tmp_path: Path):  # noqa: ANN201
    engine = init_db(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    yield engine
    engine.dispose()


def test_shipped_package_before_any_registration(registry, tmp_path: Path) -> None:  # noqa: ANN001
    want = _curated()
    got = _package(registry, tmp_path / "store")
    assert {e.name for e in got} == set(want) and len(got) == len(want)
    assert {want[n][0] for n in want} >= {"momentum", "volume", "cross_section"}
    for e in got:
        module, func, doc = want[e.name]
        assert e.id == f"package:{e.name}" and e.source == "package" and e.tags == ["package", module]
        assert (e.impl_module, e.impl_func) == (f"rd_factors_lib.{module}", func)
        assert e.description == doc and e.formula_hint and e.formula_hint.startswith(f"{e.name} =")
        assert e.impl_version is None, "no registered version holds the shipped package: no source to serve"
        assert e.variables and set(e.variables) <= {"$open", "$close", "$high", "$low", "$volume", "$vwap", "$factor"}
    vol = next(e for e in got if e.name == "AMIHUD_20")
    assert set(vol.variables or {}) == {"$close", "$volume"}
    # one list with Alpha158 before and RD-Agent after; updated_since leaves out the (unregistered) shipped package
    every = _package(registry, tmp_path / "store", Filters())
    assert [e.source for e in every] == ["alpha158"] * 158 + ["package"] * len(want)
    later = Filters(source="package", updated_since=datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert _package(registry, tmp_path / "store", later) == []


def test_latest_registered_version_wins(registry, tmp_path: Path) -> None:  # noqa: ANN001
    store = tmp_path / "store"
    pkg = tmp_path / "pkg"
    shutil.copytree(REPO / "factors-lib", pkg, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    t1 = datetime(2025, 5, 1, tzinfo=timezone.utc)
    _register(registry, store, pkg, "0.1.0", t1)
    with (pkg / "rd_factors_lib" / "momentum.py").open("a") as fh:
        fh.write(NEW)
    rel = _register(registry, store, pkg, "0.1.1", t1 + timedelta(days=1))
    got = {e.name: e for e in _package(registry, store)}
    assert set(got) == set(_curated()) | {"MOM_5_TEST"}
    assert {e.impl_version for e in got.values()} == {"0.1.1"}
    new = got["MOM_5_TEST"]
    assert (new.impl_module, new.impl_func, new.tags) == ("rd_factors_lib.momentum", "factor_mom_5_test",
                                                          ["package", "momentum"])
    assert new.created_at_utc is not None and new.created_at_utc.replace(tzinfo=timezone.utc) == t1 + timedelta(days=1)
    assert [e.name for e in _package(registry, store, Filters(source="package", q="added for the catalog"))] == \
        ["MOM_5_TEST"]
    assert {e.tags[1] for e in _package(registry, store, Filters(tag="momentum"))} == {"momentum"}
    # paging two at a time gives the same list (the cursor spans the package / RD-Agent boundary)
    with registry.connect() as conn:
        full = [e.id for e in _package(registry, store, Filters())]
        paged, after = [], None
        while True:
            items, after = factor_page(conn, Filters(), PageRequest(limit=7, after=after),
                                       sources=factor_sources(store))
            paged += [e.id for e in items]
            if after is None:
                break
    assert paged == full and len(set(full)) == len(full)
    # an altered snapshot is an error naming the version, not a silently shorter catalog
    _parsed.clear()
    (store / rel).write_bytes((store / rel).read_bytes() + b"x")
    with pytest.raises(PackageSnapshotError, match="0.1.1"):
        _package(registry, store)
