"""Constraints, timestamps, JSON and unicode behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from rdbridge.registry import (
    Artifact,
    ArtifactFile,
    Factor,
    Loop,
    NaiveDatetimeError,
    Task,
    TaskRun,
    TraceFile,
    Workspace,
    experiment_id_for,
    factor_id_for,
    session_scope,
)

RUN = "2025-01-02_03-04-05-000000"
CST = timezone(timedelta(hours=8))


def _count(engine: Engine, model: type) -> int:
    with session_scope(engine, write=False) as s:
        return s.scalar(select(func.count()).select_from(model))


def _expect_integrity_error(engine: Engine, *rows: object) -> None:
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            s.add_all(rows)


def _loop(loop_id: int, **kw: object) -> Loop:
    fields: dict[str, object] = {"action": "factor", "status": "completed", **kw}
    return Loop(task_run_id=RUN, loop_id=loop_id, experiment_id=experiment_id_for(RUN, loop_id), **fields)


def test_loops_are_unique_per_run_and_experiment(registry_engine: Engine, seed_loops) -> None:
    seed_loops(2, run=RUN)
    _expect_integrity_error(registry_engine, _loop(1))  # same (task_run_id, loop_id, experiment_id)
    dup_experiment = Loop(task_run_id=RUN, loop_id=7, experiment_id=experiment_id_for(RUN, 0), action="factor",
                          status="completed")
    _expect_integrity_error(registry_engine, dup_experiment)
    assert _count(registry_engine, Loop) == 2


def test_foreign_keys_are_enforced(registry_engine: Engine) -> None:
    """On SQLite this only holds because every connection turns foreign_keys on."""
    orphan = Loop(task_run_id="no-such-run", loop_id=0, experiment_id="no-such-run/0", action="factor",
                  status="completed")
    _expect_integrity_error(registry_engine, orphan)
    _expect_integrity_error(
        registry_engine, Task(experiment_id="nope/0", task_run_id="nope", loop_id=0, task_index=0, task_type="factor",
                              name="x")
    )


def test_check_constraints_reject_unknown_states(registry_engine: Engine, seed_loops) -> None:
    seed_loops(1, run=RUN)
    with pytest.raises(IntegrityError):
        with session_scope(registry_engine) as s:
            s.execute(text("UPDATE loops SET materialization_status = 'finished'"))
    _expect_integrity_error(registry_engine, _loop(5, action="portfolio"))
    _expect_integrity_error(registry_engine, _loop(6, has_result=2))


def test_tasks_unique_per_experiment_and_index(registry_engine: Engine, seed_loops) -> None:
    (eid,) = seed_loops(1, run=RUN)

    def task(index: int) -> Task:
        return Task(experiment_id=eid, task_run_id=RUN, loop_id=0, task_index=index, task_type="factor", name="f")

    with session_scope(registry_engine) as s:
        s.add_all([task(0), task(1)])
    _expect_integrity_error(registry_engine, task(1))
    assert _count(registry_engine, Task) == 2


def test_artifact_key_without_experiment_or_workspace_is_still_unique(registry_engine: Engine, seed_loops) -> None:
    """The NULL trap: with NULL in the key both databases would accept duplicates; '' keeps the key unique."""
    seed_loops(1, run=RUN)

    def summary() -> Artifact:
        return Artifact(task_run_id=RUN, experiment_id=None, workspace_id=None, artifact_type="summary",
                        name="run_summary.json", root_kind="store")

    with session_scope(registry_engine) as s:
        s.add(summary())
    _expect_integrity_error(registry_engine, summary())
    with session_scope(registry_engine) as s:
        # same name for a loop, or for a workspace of that loop: different keys
        s.add(Artifact(task_run_id=RUN, experiment_id=f"{RUN}/0", artifact_type="summary", name="run_summary.json",
                       root_kind="store"))
        s.add(Artifact(task_run_id=RUN, experiment_id=f"{RUN}/0", workspace_id="ws1", artifact_type="summary",
                       name="run_summary.json", root_kind="store"))
    with session_scope(registry_engine, write=False) as s:
        keys = sorted(s.execute(select(Artifact.experiment_id, Artifact.workspace_id)).all())
    assert keys == [("", ""), (f"{RUN}/0", ""), (f"{RUN}/0", "ws1")]
    with registry_engine.connect() as conn:  # raw rows hold '', never NULL
        nulls = conn.execute(text("SELECT count(*) FROM artifacts WHERE experiment_id IS NULL OR workspace_id IS NULL"))
        assert nulls.scalar_one() == 0


def test_artifact_files_unique_and_cascade(registry_engine: Engine, seed_loops) -> None:
    seed_loops(1, run=RUN)
    big = 5 * 2**32  # sizes above 4 GiB need BIGINT
    with session_scope(registry_engine) as s:
        art = Artifact(task_run_id=RUN, experiment_id=f"{RUN}/0", workspace_id="ws1", artifact_type="workspace_file",
                       name="files", root_kind="workspace")
        art.files.append(ArtifactFile(path="factor.py", size_bytes=10, sha256="a" * 64, mime_type="text/x-python"))
        art.files.append(ArtifactFile(path="result.h5", size_bytes=big, is_symlink=True))
        s.add(art)
        s.flush()
        artifact_id = art.artifact_id
    _expect_integrity_error(registry_engine, ArtifactFile(artifact_id=artifact_id, path="factor.py"))
    with session_scope(registry_engine, write=False) as s:
        assert s.scalar(select(ArtifactFile.size_bytes).where(ArtifactFile.path == "result.h5")) == big
    with session_scope(registry_engine) as s:  # a database-level cascade, not only the ORM's
        s.execute(delete(Artifact).where(Artifact.artifact_id == artifact_id))
    assert _count(registry_engine, ArtifactFile) == 0


def test_deleting_a_run_cascades_to_everything_below(registry_engine: Engine, seed_loops) -> None:
    (eid,) = seed_loops(1, run=RUN)
    with session_scope(registry_engine) as s:
        s.add(Task(experiment_id=eid, task_run_id=RUN, loop_id=0, task_index=0, task_type="factor", name="f"))
        s.add(Factor(factor_id=factor_id_for("f", "x=1"), factor_name="f", experiment_id=eid, task_run_id=RUN,
                     loop_id=0, code_sha256=hashlib.sha256(b"x=1").hexdigest()))
        s.add(Workspace(workspace_id="ws1", task_run_id=RUN, loop_id=0, experiment_id=eid, kind="factor",
                        recorded_path="/x/ws1", exists=False))
        s.add(TraceFile(task_run_id=RUN, loop_id=0, relpath="Loop_0/a.pkl", size_bytes=1, mtime_ns=1))
    with session_scope(registry_engine) as s:
        s.execute(delete(TaskRun).where(TaskRun.task_run_id == RUN))
    for model in (Loop, Task, Factor, Workspace, TraceFile):
        assert _count(registry_engine, model) == 0, model.__tablename__


def test_trace_files_unique_per_run_and_path_and_keep_ns_mtimes(registry_engine: Engine, seed_loops) -> None:
    seed_loops(1, run=RUN)
    mtime = time.time_ns()
    with session_scope(registry_engine) as s:
        s.add(TraceFile(task_run_id=RUN, loop_id=0, relpath="Loop_0/direct_exp_gen/x.pkl", size_bytes=3,
                        mtime_ns=mtime))
    _expect_integrity_error(
        registry_engine, TraceFile(task_run_id=RUN, relpath="Loop_0/direct_exp_gen/x.pkl", size_bytes=3, mtime_ns=1)
    )
    with session_scope(registry_engine, write=False) as s:
        assert s.scalar(select(TraceFile.mtime_ns)) == mtime


def test_timestamps_round_trip_as_utc(registry_engine: Engine, seed_loops) -> None:
    (eid,) = seed_loops(1, run=RUN)
    local = datetime(2025, 3, 9, 1, 30, 15, 123456, tzinfo=CST)  # 2025-03-08T17:30:15.123456Z
    with session_scope(registry_engine) as s:
        loop = s.scalar(select(Loop).where(Loop.experiment_id == eid))
        loop.started_at_utc = local
    with session_scope(registry_engine, write=False) as s:
        got = s.scalar(select(Loop.started_at_utc).where(Loop.experiment_id == eid))
        created = s.scalar(select(Loop.created_at_utc).where(Loop.experiment_id == eid))
    assert got == local
    assert got.utcoffset() == timedelta(0)
    assert got.isoformat() == "2025-03-08T17:30:15.123456+00:00"
    assert created.tzinfo is not None and created.utcoffset() == timedelta(0)  # the default clock is UTC too
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=5)

    with registry_engine.connect() as conn:
        raw = conn.execute(text("SELECT started_at_utc FROM loops")).scalar_one()
    if registry_engine.dialect.name == "sqlite":
        assert raw == "2025-03-08T17:30:15.123456Z"  # ISO-8601 UTC text, readable by any tool
    else:
        assert raw == local  # timestamptz: the same instant


def test_utc_comparisons_in_sql_are_by_instant(registry_engine: Engine, seed_loops) -> None:
    """Filters compare instants even when the values were given in different time zones."""
    ids = seed_loops(3, run=RUN)
    base = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
    when = [base - timedelta(hours=1), base + timedelta(minutes=1), base + timedelta(days=1)]
    with session_scope(registry_engine) as s:
        for eid, t in zip(ids, when, strict=True):
            s.scalar(select(Loop).where(Loop.experiment_id == eid)).started_at_utc = t.astimezone(CST)
    with session_scope(registry_engine, write=False) as s:
        after = s.scalars(select(Loop.loop_id).where(Loop.started_at_utc > base.astimezone(CST)).order_by(Loop.loop_id))
        assert list(after) == [1, 2]
        ordered = s.scalars(select(Loop.loop_id).order_by(Loop.started_at_utc.desc()))
        assert list(ordered) == [2, 1, 0]


def test_naive_datetimes_are_refused_with_an_explanation(registry_engine: Engine, seed_loops) -> None:
    (eid,) = seed_loops(1, run=RUN)
    with pytest.raises(StatementError) as info:
        with session_scope(registry_engine) as s:
            s.scalar(select(Loop).where(Loop.experiment_id == eid)).started_at_utc = datetime(2025, 1, 1, 12, 0)
    assert isinstance(info.value.orig, NaiveDatetimeError)
    assert "timezone" in str(info.value.orig) and "utcnow" in str(info.value.orig)


@pytest.mark.parametrize(
    "name",
    ["动量_5日", "Vol-Adj Momentum (10D)", "Ratio 'quoted' \"double\" ; DROP TABLE factors; --", "α/β — 📈 résumé"],
)
def test_unicode_factor_names_round_trip_exactly(registry_engine: Engine, seed_loops, name: str) -> None:
    (eid,) = seed_loops(1, run=RUN)
    code = "def calc(df):\n    return df['$close'] / df['$close'].shift(5) - 1  # 五日动量\n"
    fid = factor_id_for(name, code)
    with session_scope(registry_engine) as s:
        s.add(Task(experiment_id=eid, task_run_id=RUN, loop_id=0, task_index=0, task_type="factor", name=name,
                   description=f"描述 {name}", variables_json={"变量": name, "n": 5}))
        s.add(Factor(factor_id=fid, factor_name=name, experiment_id=eid, task_run_id=RUN, loop_id=0,
                     code_sha256=hashlib.sha256(code.encode()).hexdigest(), variables_json={"变量": name}))
    with session_scope(registry_engine, write=False) as s:
        assert s.scalar(select(Factor.factor_name).where(Factor.factor_name == name)) == name
        task = s.scalar(select(Task).where(Task.name == name))
        assert (task.name, task.description, task.variables_json) == (name, f"描述 {name}", {"变量": name, "n": 5})
        assert s.scalar(select(Factor.variables_json).where(Factor.factor_id == fid)) == {"变量": name}


def test_factor_id_is_stable_and_changes_with_the_code() -> None:
    a = factor_id_for("动量_5日", "x = 1")
    assert re.fullmatch(r"[0-9a-f]{16}", a)
    assert a == factor_id_for("动量_5日", "x = 1")
    assert a != factor_id_for("动量_5日", "x = 2")  # same name, new code: a new factor
    assert a != factor_id_for("动量_5日x", " = 1")  # the separator keeps name and code apart
    assert a == hashlib.sha256("动量_5日\0x = 1".encode()).hexdigest()[:16]


def test_json_columns_keep_structure(registry_engine: Engine, seed_loops) -> None:
    (eid,) = seed_loops(1, run=RUN)
    metrics = {"IC": 0.0123, "ARR": -0.5, "nested": {"list": [1, 2.5, None, "四"]}, "flag": True}
    errors = [{"file": "Loop_0/x.pkl", "kind": "corrupt", "message": "bad pickle"}]
    with session_scope(registry_engine) as s:
        loop = s.scalar(select(Loop).where(Loop.experiment_id == eid))
        loop.metrics_json, loop.errors_json, loop.has_result, loop.decision = metrics, errors, 1, False
    with session_scope(registry_engine, write=False) as s:
        loop = s.scalar(select(Loop).where(Loop.experiment_id == eid))
        assert (loop.metrics_json, loop.errors_json, loop.has_result, loop.decision) == (metrics, errors, 1, False)
