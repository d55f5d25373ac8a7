"""What rdbridge understands of one RD-Agent loop, independent of how RD-Agent pickled it.

`rdagent_trace` produces these from a log trace plus workspaces; `ingest` maps them to registry rows. Keeping the
contract here means neither side needs to know the other's internals, and the same shapes serve the API later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["factor", "model", "quant"]
LoopStatus = Literal["running", "completed", "failed"]
SignatureStatus = Literal["verified", "unverified", "unsigned", "tampered"]
WorkspaceKind = Literal["factor", "model", "experiment", "unknown"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TraceFileError(_Strict):
    """One trace or workspace file that could not be read; the loop keeps every other fact."""

    file: str = Field(description="Path of the offending file (as found on this machine).")
    kind: Literal["corrupt", "truncated", "forbidden_class", "tampered", "unreadable", "not_utf8", "missing_workspace",
                  "bad_format", "crashed", "too_large", "timed_out"]
    message: str


class HypothesisInfo(_Strict):
    hypothesis: str | None = None
    reason: str | None = None
    concise_reason: str | None = None
    concise_observation: str | None = None
    concise_justification: str | None = None
    concise_knowledge: str | None = None
    action: str | None = Field(default=None, description="QlibQuantHypothesis.action (fin_quant): factor | model.")


class FactorTaskInfo(_Strict):
    task_type: Literal["factor"] = "factor"
    factor_name: str = Field(description="Exactly as the LLM wrote it: never used raw as a path or identifier.")
    factor_description: str | None = None
    factor_formulation: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict)


class ModelTaskInfo(_Strict):
    task_type: Literal["model"] = "model"
    name: str
    description: str | None = None
    architecture: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    training_hyperparameters: dict[str, Any] = Field(default_factory=dict)
    model_type: str | None = None
    formulation: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict)


TaskInfo = FactorTaskInfo | ModelTaskInfo


class WorkspaceFileInfo(_Strict):
    relpath: str
    size_bytes: int
    sha256: str | None = Field(default=None, description="None when the file is a dangling link or unreadable.")
    is_symlink: bool = False
    dangling: bool = False


class WorkspaceInfo(_Strict):
    workspace_id: str = Field(description="The workspace folder name (RD-Agent uses a uuid4 hex).")
    kind: WorkspaceKind
    recorded_path: str = Field(description="The absolute path RD-Agent recorded, possibly from another machine/WSL.")
    workspace_path: str | None = Field(description="Resolved folder under --workspace-root; None when missing.")
    exists: bool
    task_index: int | None = Field(default=None, description="Index into LoopSnapshot.tasks for sub-workspaces.")
    code: dict[str, str] = Field(default_factory=dict, description="Code files RD-Agent held in file_dict.")
    files: list[WorkspaceFileInfo] = Field(default_factory=list)


class FeedbackInfo(_Strict):
    decision: bool | None = None
    reason: str | None = None
    observations: str | None = None
    hypothesis_evaluation: str | None = None
    new_hypothesis: str | None = None
    code_change_summary: str | None = None
    acceptable: bool | None = None
    exception: str | None = None


class TraceEntryInfo(_Strict):
    """One pickle in the trace, for incremental ingest (size + mtime tell whether it changed)."""

    relpath: str
    step: str
    tag: str
    size_bytes: int
    mtime_ns: int
    logged_at_utc: datetime | None = None


class LoopSnapshot(_Strict):
    """Everything known about one loop at the moment of reading. Re-reading a finished loop gives an equal snapshot."""

    loop_id: int
    action: Action
    status: LoopStatus
    last_step: str | None = None
    hypothesis: HypothesisInfo | None = None
    tasks: list[TaskInfo] = Field(default_factory=list)
    workspaces: list[WorkspaceInfo] = Field(default_factory=list)
    experiment_workspace_id: str | None = None
    metrics: dict[str, float] | None = Field(default=None, description="Backtest metrics (runner result / qlib_res.csv).")
    metrics_source: str | None = None
    feedback: FeedbackInfo | None = None
    signature: SignatureStatus = "unsigned"
    entries: list[TraceEntryInfo] = Field(default_factory=list)
    errors: list[TraceFileError] = Field(default_factory=list)
    started_at_utc: datetime | None = None
    updated_at_utc: datetime | None = None

    @property
    def has_result(self) -> bool:
        return bool(self.metrics)


class RunSnapshot(_Strict):
    """One RD-Agent task run (one folder under the log root)."""

    task_run_id: str = Field(description="Sanitized run folder name.")
    run_folder: str = Field(description="The run folder name exactly as on disk.")
    log_trace_path: str
    workspace_root: str
    scenario: str = Field(description="fin_factor | fin_model | fin_quant | unknown (inferred from the objects).")
    started_at_utc: datetime | None = None
    loop_ids: list[int] = Field(default_factory=list)
