"""Downloads serve registered files only, from inside their root, checked against size and sha256; every
traversal, symlink, encoded or odd-name attempt fails in the error shape without naming a server path."""

from __future__ import annotations

import hashlib

import pytest

from .conftest import Server
from .test_api_routes import assert_error
from .world import RUN_A


def _listed(server: Server) -> dict[int, dict]:
    with server.client() as c:
        doc = c.get(f"/loops/{RUN_A}/0/artifacts").json()
    return {f["file_id"]: f for a in doc["artifacts"] for f in a["files"]}


def test_artifact_listing_gives_size_sha_and_an_id_url(server: Server) -> None:
    files = _listed(server)
    w = server.world
    good = files[w.files["good"]]
    assert good["download_url"] == f"/files/{w.files['good']}" and good["path"] == "factor.py"
    assert good["size_bytes"] == len(w.contents["good"]) and good["sha256"] == hashlib.sha256(w.contents["good"]).hexdigest()
    assert files[w.files["absolute"]]["path"] == "secret.txt"  # an unclean registered path is not echoed
    assert {w.files[k] for k in ("good", "unicode", "store", "big", "leak")} <= set(files)


@pytest.mark.parametrize("label", ["good", "unicode", "store", "big"])
def test_registered_files_download_byte_for_byte(server: Server, label: str) -> None:
    fid = server.world.files[label]
    data = server.world.contents[label]
    with server.client() as c:
        r = c.get(f"/files/{fid}")
        assert r.status_code == 200, r.text
        assert r.content == data and r.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        assert r.headers["content-disposition"].startswith("attachment; filename*=UTF-8''")
        assert c.get(f"/files/{fid}", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
        h = c.head(f"/files/{fid}")
        assert h.status_code == 200 and h.content == b""


@pytest.mark.parametrize(("label", "status", "code"), [
    ("leak", 403, "forbidden"),          # workspace symlink to a file outside the workspace
    ("store_link", 403, "forbidden"),    # store folder symlinked out of the store
    ("dotdot", 403, "forbidden"),        # registered path with ..
    ("absolute", 403, "forbidden"),      # registered absolute path
    ("evil_ws", 403, "forbidden"),       # workspace folder outside the run's registered workspace root
    ("dir", 403, "forbidden"),           # a folder, not a file
    ("changed", 409, "file_changed"),    # same size, different bytes than registered
    ("missing", 404, "not_found"),       # registered, gone from disk
])
def test_unsafe_or_stale_files_are_refused(server: Server, label: str, status: int, code: str) -> None:
    with server.client() as c:
        r = c.get(f"/files/{server.world.files[label]}")
    body = assert_error(r, status, code)
    assert str(server.world.root) not in r.text and server.world.secret.decode() not in r.text
    assert "secret" not in body["error"]["message"]


@pytest.mark.parametrize("path", [
    "/files/..%2f..%2fetc%2fpasswd", "/files/%2e%2e/%2e%2e/etc/passwd", "/files/../../etc/passwd",
    "/files/1%00", "/files/-1", "/files/0", "/files/1.0", "/files/0x1", "/files/%EF%BC%91",
    "/files//etc/passwd", "/files/1/../../../etc/passwd", "/files/~root",
])
def test_client_chosen_paths_never_reach_the_disk(server: Server, path: str) -> None:
    with server.client() as c:
        r = c.get(path)
    assert r.status_code in (400, 404), (path, r.status_code, r.text)
    assert_error(r, r.status_code)
    assert "root:" not in r.text and server.world.secret.decode() not in r.text
