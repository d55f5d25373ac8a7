"""The JSON document `rdbridge ingest --json` prints, and the shape of per-loop ingest problems."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LoopIssue(BaseModel):
    """A loop recorded with a problem: which loop, which file, what went wrong."""

    model_config = ConfigDict(extra="forbid")

    experiment_id: str
    file: str
    kind: str
    message: str


class IngestCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_runs_seen: int = 0
    task_runs_new: int = 0
    loops_seen: int = 0
    loops_new: int = 0
    loops_updated: int = 0
    loops_unchanged: int = 0
    loops_with_errors: int = 0
    loops_marked_pending: int = 0
    workspaces: int = 0
    tasks: int = 0
    artifact_files: int = 0

    @property
    def changes(self) -> int:
        return self.task_runs_new + self.loops_new + self.loops_updated


class IngestReport(BaseModel):
    """Summary of one ingest: counts, the runs touched, and every problem with the file it came from."""

    model_config = ConfigDict(extra="forbid")

    ok: bool
    db: str = Field(description="Registry URL with any password removed.")
    log_root: str
    workspace_root: str
    signature_check: str = Field(description="'key given' or 'no key: signatures unverified'.")
    counts: IngestCounts
    changes: int
    task_run_ids: list[str] = Field(default_factory=list)
    issues: list[LoopIssue] = Field(default_factory=list)
    elapsed_seconds: float
