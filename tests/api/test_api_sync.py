"""Lists read while a writer commits: keyset pages lose and repeat nothing, ETags follow the data.

The registry is shared by the package's tests, so each test here undoes its writes.
"""

from __future__ import annotations

from sqlalchemy import delete, insert

from rdbridge.registry import Factor, Loop, TaskRun, experiment_id_for, make_engine, session_scope

from .conftest import Server
from .test_api_routes import key, walk
from .world import RUN_B, T0


def test_rows_added_between_pages_lose_or_repeat_nothing(server: Server) -> None:
    """Walk /catalog/loops and /catalog/factors two at a time while new loops and factors are committed."""
    engine = make_engine(server.db_url)
    run = RUN_B
    try:
        with server.client() as c:
            for path in ("/catalog/loops", "/catalog/factors"):
                before = [key(path, x) for x in walk(c, path, 1000, source="rdagent")]
                seen: list[str] = []
                cursor = None
                n = 100 + (0 if path == "/catalog/loops" else 50)
                while True:
                    r = c.get(path, params={"limit": 2, "source": "rdagent", **({"cursor": cursor} if cursor else {})})
                    page = r.json()
                    seen += [key(path, x) for x in page["items"]]
                    cursor = page["next_cursor"]
                    with session_scope(engine) as s:  # a writer adds rows mid-walk (some sort before the cursor)
                        eid = experiment_id_for(run, n)
                        s.add(Loop(task_run_id=run, loop_id=n, experiment_id=eid, action="factor", has_result=0))
                        s.flush()
                        s.execute(insert(Factor).values(factor_id=f"{'0' if n % 2 else 'z'}{n:015d}", factor_name=f"new{n}",
                                                        experiment_id=eid, task_run_id=run, loop_id=n,
                                                        code_sha256="0" * 64, created_at_utc=T0))
                    n += 1
                    if cursor is None:
                        break
                assert len(seen) == len(set(seen)), "a row was served twice"
                assert set(before) <= set(seen), "a row that existed before the walk was skipped"
    finally:
        with session_scope(engine) as s:
            s.execute(delete(Factor).where(Factor.task_run_id == run, Factor.loop_id >= 100))
            s.execute(delete(Loop).where(Loop.task_run_id == run, Loop.loop_id >= 100))
        engine.dispose()


def test_etag_changes_when_the_data_changes(server: Server) -> None:
    engine = make_engine(server.db_url)
    try:
        with server.client() as c:
            etag = c.get("/task_runs").headers["etag"]
            with session_scope(engine) as s:
                run = s.get(TaskRun, RUN_B)
                run.loop_count += 1
            r = c.get("/task_runs", headers={"If-None-Match": etag})
            assert r.status_code == 200 and r.headers["etag"] != etag
    finally:
        with session_scope(engine) as s:
            s.get(TaskRun, RUN_B).loop_count -= 1
        engine.dispose()
