"""The registry: what rdbridge knows about RD-Agent runs, kept in SQLite (embedded, WAL) or PostgreSQL.

`models` holds the tables (runs, loops, tasks, factors, workspaces, artifacts, trace-file bookkeeping, ingest runs)
with their platform-facing field names; `db` makes engines tuned for several processes at once, gives one-transaction
sessions and migrates the schema with the Alembic revisions packaged here (`init_db` = `upgrade head`, safe to call
concurrently); `state` is the materialization state machine of a loop (pending -> running under a lease -> done or
failed, retry, reset), whose `claim_next` never hands the same loop to two workers. Every timestamp is UTC-aware.
"""

from rdbridge.registry.db import (
    RegistryURLError,
    current_revision,
    downgrade_db,
    head_revision,
    init_db,
    make_engine,
    normalize_url,
    session_factory,
    session_scope,
)
from rdbridge.registry.models import (
    Artifact,
    ArtifactFile,
    Base,
    Factor,
    IngestRun,
    Loop,
    Task,
    TaskRun,
    TraceFile,
    Workspace,
    experiment_id_for,
    factor_id_for,
)
from rdbridge.registry.state import (
    DEFAULT_LEASE_SECONDS,
    TRANSITIONS,
    IllegalTransition,
    LeaseLost,
    claim_next,
    complete,
    fail,
    initial_materialization_status,
    mark_pending,
    renew_lease,
    reset_to_pending,
    retry,
)
from rdbridge.registry.types import NaiveDatetimeError, UtcDateTime, utcnow

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "TRANSITIONS",
    "IllegalTransition",
    "LeaseLost",
    "claim_next",
    "complete",
    "fail",
    "initial_materialization_status",
    "mark_pending",
    "renew_lease",
    "reset_to_pending",
    "retry",
    "Artifact",
    "ArtifactFile",
    "Base",
    "Factor",
    "IngestRun",
    "Loop",
    "NaiveDatetimeError",
    "RegistryURLError",
    "Task",
    "TaskRun",
    "TraceFile",
    "UtcDateTime",
    "Workspace",
    "current_revision",
    "downgrade_db",
    "experiment_id_for",
    "factor_id_for",
    "head_revision",
    "init_db",
    "make_engine",
    "normalize_url",
    "session_factory",
    "session_scope",
    "utcnow",
]
