"""Helpers for registry tests: seed a run with loops in chosen states."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from sqlalchemy import Engine

from rdbridge.registry import Loop, TaskRun, experiment_id_for, session_scope

SeedLoops = Callable[..., list[str]]


@pytest.fixture
def seed_loops(registry_engine: Engine) -> SeedLoops:
    """seed_loops(n, run=..., status=..., materialization=...) -> the experiment_ids created, in loop order."""

    def seed(
        n: int,
        *,
        run: str = "2025-01-02_03-04-05-000000",
        status: str = "completed",
        materialization: str | None = "pending",
        action: str = "factor",
    ) -> list[str]:
        with session_scope(registry_engine) as s:
            if s.get(TaskRun, run) is None:
                s.add(
                    TaskRun(
                        task_run_id=run,
                        run_folder=run,
                        scenario="fin_factor",
                        log_trace_path=f"/logs/{run}",
                        workspace_root="/ws",
                        status="completed",
                        loop_count=n,
                        started_at_utc=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                    )
                )
                s.flush()
            ids = []
            for i in range(n):
                eid = experiment_id_for(run, i)
                s.add(
                    Loop(
                        task_run_id=run,
                        loop_id=i,
                        experiment_id=eid,
                        action=action,
                        status=status,
                        materialization_status=materialization,
                    )
                )
                ids.append(eid)
        return ids

    return seed
