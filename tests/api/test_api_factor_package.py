"""The factor package routes on a real registry: the sample trace ingested, materialized and promoted by the CLI,
then `rdbridge serve` on loopback. Versions match the registry, the bundle is the registered snapshot byte for
byte, a factor's source comes out of the snapshot, unknown things are 404 and an altered snapshot is refused."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select, text

from rdbridge.registry import make_engine, session_scope
from rdbridge.registry.models import FactorPackageVersion

from .conftest import Server, launch, stop, wait_ready

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "sample_trace"
FACTOR = "Momentum_Vol_Adj_10D"


def _cli(*args: str, home: Path) -> None:
    env = dict(os.environ, RDBRIDGE_HOME=str(home), PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("RDBRIDGE_DB", None)
    proc = subprocess.run([sys.executable, "-m", "rdbridge.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, f"rdbridge {' '.join(args)}: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"


@pytest.fixture(scope="module")
def pkg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """(server, RDBRIDGE_HOME) over a registry where the sample trace was ingested, materialized and promoted."""
    tmp = tmp_path_factory.mktemp("api_factor_package")
    trace, home = tmp / "trace", tmp / "home"
    shutil.copytree(SAMPLE, trace, symlinks=True)
    db = f"sqlite:///{tmp / 'registry.sqlite'}"
    _cli("ingest", "--log-root", str(trace / "log"), "--workspace-root", str(trace / "workspace"),
         "--signing-key-file", str(trace / "artifact_signing.key"), "--db", db, home=home)
    _cli("materialize", "--db", db, home=home)
    _cli("factorlib", "promote", "--db", db, home=home)  # scaffolds $RDBRIDGE_HOME/factor_package
    server = wait_ready(launch(db, home, None, None))  # type: ignore[arg-type]
    try:
        yield server, home
    finally:
        stop(server)


def _registered(server: Server) -> list[FactorPackageVersion]:
    engine = make_engine(server.db_url)
    try:
        with session_scope(engine, write=False) as s:
            rows = list(s.scalars(select(FactorPackageVersion).order_by(FactorPackageVersion.id)))
            for r in rows:
                s.expunge(r)
            return rows
    finally:
        engine.dispose()


def test_versions_list_every_registered_version(pkg_server: tuple[Server, Path]) -> None:
    server, _ = pkg_server
    rows = _registered(server)
    assert len(rows) >= 2, "promotion should have registered the scaffold and the promoted version"
    with server.client() as c:
        r = c.get("/factor_package/versions")
        assert r.status_code == 200
        got = r.json()["versions"]
        assert c.get("/factor_package/versions", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    assert [v["version"] for v in got] == [row.version for row in rows]
    for v, row in zip(got, rows, strict=True):
        assert (v["sha256"], v["size"], v["added"], v["changed"]) == (
            row.sha256, row.size_bytes, list(row.added_json or []), list(row.changed_json or []))
        assert "archive_path" not in v and "package_path" not in v
    assert FACTOR in got[-1]["added"]


def test_bundle_is_the_registered_snapshot(pkg_server: tuple[Server, Path]) -> None:
    server, _ = pkg_server
    last = _registered(server)[-1]
    with server.client() as c:
        r = c.get("/factor_package/bundle", params={"version": last.version})
        assert r.status_code == 200 and r.headers["content-type"] == "application/gzip"
        assert hashlib.sha256(r.content).hexdigest() == last.sha256 and len(r.content) == last.size_bytes
        assert c.get("/factor_package/bundle", params={"version": last.version},
                     headers={"If-None-Match": r.headers["etag"]}).status_code == 304
        z1 = c.get("/factor_package/bundle", params={"version": last.version, "format": "zip"})
        z2 = c.get("/factor_package/bundle", params={"version": last.version, "format": "zip"})
        bad = c.get("/factor_package/bundle", params={"version": last.version, "format": "rar"})
        unknown = c.get("/factor_package/bundle", params={"version": "9.9.9"})
    assert z1.status_code == 200 and z1.content == z2.content and z1.headers["etag"] != r.headers["etag"]
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        want = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    with zipfile.ZipFile(io.BytesIO(z1.content)) as z:
        assert {n: z.read(n) for n in z.namelist()} == want
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_source_of_a_promoted_factor(pkg_server: tuple[Server, Path]) -> None:
    server, _ = pkg_server
    rows = _registered(server)
    last = rows[-1]
    with tarfile.open(fileobj=io.BytesIO(_bundle(server, last.version)), mode="r:gz") as tar:
        generated = tar.extractfile("rd_factors_lib/generated.py").read().decode()  # type: ignore[union-attr]
    with server.client() as c:
        r = c.get(f"/factor_package/source/{quote(FACTOR, safe='')}", params={"version": last.version})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert c.get(r.url, headers={"If-None-Match": r.headers["etag"]}).status_code == 304
        before = c.get(f"/factor_package/source/{quote(FACTOR, safe='')}", params={"version": rows[0].version})
        odd = c.get(f"/factor_package/source/{quote('Momentüm/..%2F新', safe='')}", params={"version": last.version})
        no_version = c.get("/factor_package/source/KMID", params={"version": "0.0.0-nope"})
        kmid = c.get("/factor_package/source/KMID", params={"version": last.version})
    assert doc["name"] == FACTOR and doc["version"] == last.version and doc["module"] == "rd_factors_lib/generated.py"
    assert f"def {doc['function']}(" in doc["source"] and f"@factor({FACTOR!r})" in doc["source"]
    assert doc["source"].strip() in generated  # the exact text of the snapshot, decorator included
    assert before.status_code == 404 and before.json()["error"]["code"] == "not_found"  # not yet promoted then
    assert odd.status_code == 404 and set(odd.json()) == {"error"}
    assert no_version.status_code == 404
    assert kmid.status_code == 200 and "def factor_kmid(" in kmid.json()["source"]


def test_factor_catalog_lists_the_registered_package(pkg_server: tuple[Server, Path]) -> None:
    """After a promotion the catalog's package factors are those of the latest registered snapshot (read as text),
    and the promoted RD-Agent factor points into generated.py at that version."""
    server, _ = pkg_server
    last = _registered(server)[-1]
    with tarfile.open(fileobj=io.BytesIO(_bundle(server, last.version)), mode="r:gz") as tar:
        curated = {m.name.removeprefix("rd_factors_lib/").removesuffix(".py"): tar.extractfile(m).read().decode()  # type: ignore[union-attr]
                   for m in tar.getmembers() if m.name.endswith(".py")}
    with server.client() as c:
        package = c.get("/catalog/factors", params={"source": "package", "limit": 1000}).json()["items"]
        promoted = [x for x in c.get("/catalog/factors", params={"source": "rdagent", "limit": 1000}).json()["items"]
                    if x["name"] == FACTOR and x["impl_func"]]
    assert package and {x["impl_version"] for x in package} == {last.version}
    for x in package:
        module = x["impl_module"].removeprefix("rd_factors_lib.")
        assert module in ("momentum", "volume", "cross_section")
        assert f"@factor({x['name']!r})" in curated[module] or f'@factor("{x["name"]}")' in curated[module]
        assert f"def {x['impl_func']}(" in curated[module]
    n_curated = sum(curated[m].count("\n@factor(") for m in ("momentum", "volume", "cross_section"))
    assert len(package) == n_curated
    assert promoted and promoted[0]["impl_module"] == "rd_factors_lib.generated"


def _bundle(server: Server, version: str) -> bytes:
    with server.client() as c:
        r = c.get("/factor_package/bundle", params={"version": version})
    assert r.status_code == 200
    return r.content


def test_platform_sync_stores_the_promoted_source(pkg_server: tuple[Server, Path], tmp_path: Path) -> None:
    """`rdbridge sync` (the platform side, over HTTP only) pulls the promoted factor's source from these routes."""
    server, home = pkg_server
    platform = f"sqlite:///{tmp_path / 'platform.sqlite'}"
    env = dict(os.environ, RDBRIDGE_HOME=str(tmp_path / "platform_home"), PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("RDBRIDGE_API_TOKEN", None)
    proc = subprocess.run([sys.executable, "-m", "rdbridge.cli", "sync", "--api", server.base, "--db", platform,
                           "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    engine = make_engine(platform)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT source_code, source_origin, impl_version FROM lib_factors "
                                     "WHERE name = :n AND impl_version IS NOT NULL"), {"n": FACTOR}).all()
    finally:
        engine.dispose()
    assert rows, "the promoted factor should reach the platform library with its impl_version"
    last = _registered(server)[-1].version
    for source, origin, version in rows:
        assert version == last and origin == "package"
        assert f"@factor({FACTOR!r})" in source and "def factor_momentum_vol_adj_10d(" in source


def test_snapshot_symlinked_out_of_the_store_is_refused(pkg_server: tuple[Server, Path], tmp_path: Path) -> None:
    """The same bytes, but reached through a symlink leaving the artifact store: 403, then served again once back."""
    server, home = pkg_server
    last = _registered(server)[-1]
    path = home / "artifacts" / last.archive_path
    outside = tmp_path / "elsewhere.tar.gz"
    shutil.move(path, outside)
    path.symlink_to(outside)
    try:
        with server.client() as c:
            r = c.get("/factor_package/bundle", params={"version": last.version})
            s = c.get(f"/factor_package/source/{FACTOR}", params={"version": last.version})
    finally:
        path.unlink()
        shutil.move(outside, path)
    assert r.status_code == 403 and s.status_code == 403 and str(tmp_path) not in r.text
    assert hashlib.sha256(_bundle(server, last.version)).hexdigest() == last.sha256


def test_tampered_snapshot_is_refused(pkg_server: tuple[Server, Path]) -> None:
    """Last test of the module: it alters the store (same size, other bytes) and then removes the file."""
    server, home = pkg_server
    last = _registered(server)[-1]
    path = home / "artifacts" / last.archive_path
    assert path.is_file(), "the snapshot should be in the artifact store under its registered path"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with server.client() as c:
        for url, params in (("/factor_package/bundle", {"version": last.version}),
                            ("/factor_package/bundle", {"version": last.version, "format": "zip"}),
                            (f"/factor_package/source/{FACTOR}", {"version": last.version})):
            r = c.get(url, params=params)
            assert r.status_code == 409, (url, r.status_code)
            assert r.json()["error"]["code"] == "file_changed" and str(home) not in r.text
        path.unlink()
        gone = c.get("/factor_package/bundle", params={"version": last.version})
    assert gone.status_code == 404 and str(home) not in gone.text
