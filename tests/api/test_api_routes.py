"""Every route of a real `rdbridge serve` on loopback, on SQLite and PostgreSQL: bodies, filters, pagination,
ETags, the error shape, the token and the read-only rule."""

from __future__ import annotations

import gzip
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from .conftest import Server
from .world import ODD_NAMES, RUN_A, RUN_B, T0

LISTS = ["/task_runs", "/loops", "/workspaces", "/catalog/factors", "/catalog/loops", "/catalog/strategies",
         "/catalog/models"]
RECORDS = ["/health", "/openapi.json", "/alpha158/meta", f"/loops/{RUN_A}/0", f"/loops/{RUN_A}/0/artifacts",
           "/factors/KMID"]


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape: {"error": {"code", "message"}} and nothing else."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body


def walk(c: httpx.Client, path: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        r = c.get(path, params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def key(path: str, item: dict[str, Any]) -> str:
    for k in ("id", "strategy_id", "workspace_id"):
        if k in item:
            return str(item[k])
    if path == "/catalog/models":
        return f"{item['experiment_id']}#{item['task_index']}"
    return str(item.get("experiment_id") or item["task_run_id"])


def test_health_and_openapi_list_every_route(server: Server) -> None:
    with server.client() as c:
        h = c.get("/health").json()
        assert h["ok"] is True and h["database"] in ("sqlite", "postgresql") and h["schema_revision"]
        paths = set(c.get("/openapi.json").json()["paths"])
    assert {"/task_runs", "/loops", "/workspaces", "/loops/{task_run_id}/{loop_id}",
            "/loops/{task_run_id}/{loop_id}/artifacts", "/files/{file_id}", "/factors/{name}", "/alpha158/meta",
            "/catalog/factors", "/catalog/loops", "/catalog/strategies", "/catalog/models", "/health"} <= paths


def test_records_hold_the_registry_data_and_no_server_paths(server: Server) -> None:
    root = str(server.world.root)
    with server.client() as c:
        runs = c.get("/task_runs").json()["items"]
        assert [r["task_run_id"] for r in runs] == [RUN_A, RUN_B]
        assert runs[0]["loop_count"] == 5 and runs[1]["status"] == "running"
        loops = c.get("/loops").json()["items"]
        assert [(x["task_run_id"], x["loop_id"]) for x in loops] == server.world.loops
        d = c.get(f"/loops/{RUN_A}/2").json()
        assert d["action"] == "model" and d["tasks"][0]["name"] == "GRU_20D" and d["metrics"]["IC"] == pytest.approx(0.03)
        assert c.get(f"/loops/{RUN_A}/0").json()["factor_ids"] == ["f000000000000000", "f000000000000001"]
        ws = c.get("/workspaces").json()["items"]
        assert {w["workspace_id"] for w in ws} == {"ws_good", "ws_evil", "ws_exp0", "ws_exp1", "ws_exp2"}
        meta = c.get("/alpha158/meta").json()
        assert len(meta) == 158 and meta[0]["name"] == "KMID" and meta[0]["group"] == "kbar"
        assert {m["group"] for m in meta} == {"kbar", "price", "volume", "rolling"}
        assert all(m["description"] and m["expression"] for m in meta)
        assert next(m for m in meta if m["name"] == "ROC60")["window"] == 60
        for path in LISTS + RECORDS:
            if path == "/openapi.json":
                continue
            text = c.get(path).text
            assert root not in text and "/home/quant" not in text, path


def test_unknown_resources_are_404_in_the_error_shape(server: Server) -> None:
    with server.client() as c:
        assert_error(c.get("/nope"), 404, "not_found")
        assert_error(c.get(f"/loops/{RUN_A}/99"), 404, "not_found")
        assert_error(c.get(f"/loops/no-such-run/0/artifacts"), 404, "not_found")
        assert_error(c.get("/factors/" + quote("no such factor ü", safe="")), 404, "not_found")
        assert_error(c.get("/files/999999"), 404, "not_found")
        assert_error(c.get(f"/loops/{RUN_A}/x"), 400, "bad_request")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_write_methods_are_405(server: Server, method: str) -> None:
    with server.client() as c:
        for path in ["/loops", f"/loops/{RUN_A}/0", "/catalog/factors", "/files/1", "/nope"]:
            r = c.request(method, path, json={"x": 1})
            assert_error(r, 405, "method_not_allowed")
            assert r.headers["allow"] == "GET, HEAD"


def test_head_answers_like_get_without_a_body(server: Server) -> None:
    with server.client() as c:
        g, h = c.get("/loops"), c.head("/loops")
        assert h.status_code == 200 and h.content == b"" and h.headers["etag"] == g.headers["etag"]


def test_factor_names_are_url_encoded_unicode(server: Server) -> None:
    with server.client() as c:
        for name in ODD_NAMES:
            r = c.get("/factors/" + quote(name, safe=""))
            assert r.status_code == 200, (name, r.text)
            doc = r.json()
            assert doc["name"] == name and doc["implementations"][0]["factor_id"].startswith("f")
            assert doc["tasks"] and doc["tasks"][0]["description"] == f"desc of {name}"
        kmid = c.get("/factors/KMID").json()
        assert kmid["sources"] == ["alpha158", "rdagent"] and kmid["alpha158"]["expression"] == "($close-$open)/$open"
        assert c.get("/factors/ROC5").json()["sources"] == ["alpha158"]


@pytest.mark.parametrize("path", LISTS)
def test_pagination_walk_equals_the_full_list(server: Server, path: str) -> None:
    with server.client() as c:
        full = c.get(path, params={"limit": 1000}).json()
        assert full["next_cursor"] is None
        paged = walk(c, path, 2)
    assert [key(path, x) for x in paged] == [key(path, x) for x in full["items"]]
    assert len({key(path, x) for x in paged}) == len(paged) > 0


def test_filters_select_exactly_the_matching_rows(server: Server) -> None:
    with server.client() as c:
        full = walk(c, "/loops", 1000)
        cases = {
            "action": "factor", "status": "completed", "has_result": True, "materialization_status": "pending",
            "task_run_id": RUN_B,
        }
        for name, value in cases.items():
            got = walk(c, "/loops", 3, **{name: str(value).lower() if isinstance(value, bool) else value})
            field = "has_result" if name == "has_result" else name
            want = [x for x in full if x[field] == value]
            assert got == want and 0 < len(got) < len(full) or name == "status", name
        assert [x["loop_id"] for x in walk(c, "/catalog/loops", 2, has_result="false")] == [3, 4, 1]
        got = walk(c, "/loops", 2, q="LOOP 2 MODEL")
        assert [(x["task_run_id"], x["loop_id"]) for x in got] == [(RUN_A, 2)]
        since = (T0.replace(day=6)).isoformat()
        got = walk(c, "/catalog/loops", 2, updated_since=since)
        assert all(x["updated_at_utc"] >= "2025-03-06" for x in got) and len(got) == 3
        # factor catalog: source, tag, q, updated_since
        assert {x["source"] for x in walk(c, "/catalog/factors", 50, source="alpha158")} == {"alpha158"}
        assert len(walk(c, "/catalog/factors", 50, source="alpha158")) == 158
        rd = walk(c, "/catalog/factors", 3, source="rdagent")
        assert [x["name"] for x in rd[:4]] == list(ODD_NAMES)
        acc = walk(c, "/catalog/factors", 3, source="rdagent", tag="accepted")
        assert {x["name"] for x in acc} == set(ODD_NAMES[:2])
        assert {x["name"] for x in walk(c, "/catalog/factors", 3, source="rdagent", tag="rejected")} == set(ODD_NAMES[2:])
        assert len(walk(c, "/catalog/factors", 7, source="alpha158", tag="volume")) == 30
        volume = walk(c, "/catalog/factors", 7, tag="volume")  # Alpha158's volume group and the package's module
        assert {x["source"] for x in volume} == {"alpha158", "package"} and len(volume) > 30
        package = walk(c, "/catalog/factors", 9, source="package")  # the shipped package: no version registered
        assert {x["tags"][1] for x in package} == {"momentum", "volume", "cross_section"}
        assert all(x["impl_module"] == "rd_factors_lib." + x["tags"][1] and x["impl_func"] for x in package)
        assert [x["name"] for x in walk(c, "/catalog/factors", 5, q="动量".replace("动", "動"))] == [ODD_NAMES[0]]
        assert [x["name"] for x in walk(c, "/catalog/factors", 5, q="100%")] == [ODD_NAMES[1]]  # % is literal
        assert walk(c, "/catalog/factors", 5, q="_ratio?") and not walk(c, "/catalog/factors", 5, q="x_y_z")
        assert {x["source"] for x in walk(c, "/catalog/factors", 50, updated_since=T0.isoformat())} == {"rdagent"}
        # models, strategies, workspaces
        assert [m["name"] for m in walk(c, "/catalog/models", 1)] == ["GRU_20D", "LGBM_Tab"]
        assert [m["name"] for m in walk(c, "/catalog/models", 1, has_result="true")] == ["GRU_20D"]
        assert [w["workspace_id"] for w in walk(c, "/workspaces", 1, kind="experiment")] == ["ws_exp0", "ws_exp1",
                                                                                             "ws_exp2"]
        strategies = walk(c, "/catalog/strategies", 1)
        assert sorted(len(s["loops"]) for s in strategies) == [1, 2]
        shared = next(s for s in strategies if len(s["loops"]) == 2)
        assert [x["experiment_id"] for x in shared["loops"]] == [f"{RUN_A}/0", f"{RUN_A}/1"]
        assert [s["strategy_id"] for s in walk(c, "/catalog/strategies", 1, task_run_id=RUN_B)] != []


def test_bad_list_arguments_are_400(server: Server) -> None:
    with server.client() as c:
        assert_error(c.get("/loops", params={"limit": 0}), 400, "bad_request")
        assert_error(c.get("/loops", params={"limit": 100000}), 400, "bad_request")
        assert_error(c.get("/loops", params={"cursor": "garbage!!"}), 400, "bad_cursor")
        other = c.get("/task_runs", params={"limit": 1}).json()["next_cursor"]
        assert_error(c.get("/loops", params={"cursor": other}), 400, "bad_cursor")
        assert_error(c.get("/loops", params={"updated_since": "2025-01-01T00:00:00"}), 400, "bad_request")
        assert_error(c.get("/loops", params={"has_result": "maybe"}), 400, "bad_request")
        for params in ({"q": "a\x00b"}, {"action": "\x00"}, {"task_run_id": "x\x00"}):  # PostgreSQL refuses NUL
            assert_error(c.get("/catalog/loops", params=params), 400, "bad_request")
        assert_error(c.get("/factors/a%00b"), 400, "bad_request")


@pytest.mark.parametrize("path", LISTS + RECORDS)
def test_etag_and_if_none_match_give_304(server: Server, path: str) -> None:
    with server.client() as c:
        r = c.get(path)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
        etag = r.headers["etag"]
        again = c.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        assert c.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


def test_large_bodies_are_gzipped(server: Server) -> None:
    with server.client() as c:
        r = c.get("/alpha158/meta", headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip" and len(r.json()) == 158
        with c.stream("GET", "/alpha158/meta", headers={"Accept-Encoding": "gzip"}) as raw:
            wire = b"".join(raw.iter_raw())
        assert len(wire) < len(r.content) and gzip.decompress(wire) == r.content
        small = c.get("/health", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in small.headers


def test_token_guards_every_route_but_health(token_server: Server) -> None:
    s = token_server
    with s.client(auth=False) as anon, s.client() as ok:
        assert anon.get("/health").status_code == 200
        for path in LISTS + RECORDS[1:] + [f"/files/{s.world.files['good']}", "/nope"]:
            r = anon.get(path)
            assert_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert_error(anon.get(path, headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
            assert_error(anon.get(path, headers={"Authorization": f"bearer {s.token}x"}), 401, "unauthorized")
            assert_error(anon.get(path, headers={"Authorization": f"Basic {s.token}"}), 401, "unauthorized")
            assert ok.get(path).status_code == (404 if path == "/nope" else 200), path


def test_updated_since_at_the_ends_of_time_is_not_a_server_error(server: Server) -> None:
    """A zone that pushes the moment past year 1 or 9999 in UTC (schemathesis found the first as a 500): the first
    filters as any early bound does (the static Alpha158 definitions are never "updated"), the second keeps
    nothing, on every list that takes the filter."""
    with server.client() as c:
        spec = c.get("/openapi.json").json()
        routes = [path for path, ops in spec["paths"].items() if "get" in ops and "{" not in path
                  and any(p["name"] == "updated_since" for p in ops["get"].get("parameters", []))]
        assert len(routes) >= 6
        for path in routes:
            since_1970 = c.get(path, params={"limit": 5, "updated_since": "1970-01-01T00:00:00Z"})
            early = c.get(path, params={"limit": 5, "updated_since": "0001-01-01T00:01:01+01:00"})
            late = c.get(path, params={"limit": 5, "updated_since": "9999-12-31T23:59:00-01:00"})
            assert early.status_code == late.status_code == 200, (path, early.text, late.text)
            assert early.json()["items"] == since_1970.json()["items"] != [], path
            assert late.json()["items"] == [], path
