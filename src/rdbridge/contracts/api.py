"""Bodies of the read-only Results API: the one error shape, list pages and the registry records it serves.

No field here names a server path: runs, workspaces and files are addressed by id, and a file's bytes only by its
artifact-file id (`download_url`), never by a path the client chooses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Out):
    code: str = Field(description="Stable machine-readable code, e.g. not_found, unauthorized, bad_request.")
    message: str = Field(description="What went wrong, for a human.")


class ErrorBody(_Out):
    """Every 4xx/5xx answer of the API has exactly this body."""

    error: ErrorDetail


class Page(_Out, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next page (null: this was the last)."""

    items: list[T]
    next_cursor: str | None = None
    limit: int


class Health(_Out):
    ok: bool
    version: str
    database: str = Field(description="Backend name (sqlite or postgresql), never the URL.")
    schema_revision: str | None


class TaskRunOut(_Out):
    task_run_id: str
    scenario: str
    status: str
    loop_count: int
    started_at_utc: datetime | None
    created_at_utc: datetime
    updated_at_utc: datetime


class LoopOut(_Out):
    task_run_id: str
    loop_id: int
    experiment_id: str
    action: str
    status: str
    last_step: str | None
    hypothesis: str | None
    has_result: bool
    metrics: dict[str, Any] | None
    decision: bool | None
    signature_status: str | None
    error: str | None
    materialization_status: str | None
    materialization_error: str | None
    started_at_utc: datetime | None
    updated_at_utc: datetime


class TaskOut(_Out):
    task_index: int
    task_type: str
    name: str
    description: str | None
    formulation: str | None
    variables: dict[str, Any] | None
    architecture: str | None
    hyperparameters: dict[str, Any] | None
    training_hyperparameters: dict[str, Any] | None
    model_type: str | None
    workspace_id: str | None


class LoopDetail(LoopOut):
    """One loop with its hypothesis document, feedback, tasks and factor ids."""

    hypothesis_doc: dict[str, Any] | None
    feedback: dict[str, Any] | None
    metrics_source_kind: str | None = Field(description="Which file the metrics came from (file name only).")
    best_workspace_id: str | None
    experiment_workspace_id: str | None
    errors: list[Any] | None
    tasks: list[TaskOut]
    factor_ids: list[str]
    artifacts_url: str


class WorkspaceOut(_Out):
    workspace_id: str
    task_run_id: str
    loop_id: int | None
    experiment_id: str | None
    kind: str
    exists: bool
    task_index: int | None
    updated_at_utc: datetime


class ArtifactFileOut(_Out):
    file_id: int
    path: str = Field(description="Relative POSIX path inside the artifact (a name, not a server location; a registered path that is not clean shows its last part only).")
    size_bytes: int | None
    sha256: str | None
    mime_type: str | None
    is_symlink: bool
    download_url: str = Field(description="GET this (with the token) for the bytes; addressed by file id only.")


class ArtifactOut(_Out):
    artifact_id: int
    artifact_type: str
    name: str
    status: str
    root_kind: str
    workspace_id: str | None
    updated_at_utc: datetime
    files: list[ArtifactFileOut]


class LoopArtifacts(_Out):
    task_run_id: str
    loop_id: int
    experiment_id: str
    artifacts: list[ArtifactOut]


class FactorImplementation(_Out):
    factor_id: str
    experiment_id: str
    task_run_id: str
    loop_id: int
    workspace_id: str | None
    description: str | None
    formulation: str | None
    variables: dict[str, Any] | None
    code_sha256: str
    created_at_utc: datetime
    decision: bool | None
    metrics: dict[str, Any] | None


class FactorTaskRef(_Out):
    experiment_id: str
    task_index: int
    description: str | None
    formulation: str | None


class FactorRecord(_Out):
    """Everything the registry knows under one factor name (names are the LLM's text, kept exactly)."""

    name: str
    sources: list[str]
    alpha158: dict[str, Any] | None = Field(description="The Alpha158 definition when the name is one of the 158.")
    implementations: list[FactorImplementation]
    tasks: list[FactorTaskRef]


class PackageVersionOut(_Out):
    """One registered version of the rd_factors_lib package (no server path: the bundle route serves it)."""

    version: str
    sha256: str = Field(description="sha256 of the version's tar.gz snapshot, as served by /factor_package/bundle.")
    size: int = Field(description="Size of the tar.gz snapshot in bytes.")
    created_at: datetime
    added: list[str] = Field(description="Factors this version added.")
    changed: list[str] = Field(description="Factors whose function this version changed.")


class PackageVersions(_Out):
    versions: list[PackageVersionOut]


class FactorSourceOut(_Out):
    """The source text of one factor's function in one package version (read from the snapshot, never run)."""

    name: str
    version: str
    module: str = Field(description="File of the package that defines it, e.g. rd_factors_lib/generated.py.")
    function: str
    source: str
