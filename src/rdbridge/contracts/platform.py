"""The JSON document `rdbridge sync --json` prints: what one sync of the platform library did, per kind."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

SYNC_KINDS = ("factors", "strategies", "experiments", "models", "alpha158", "artifacts", "sources")
"""Every kind a sync counts: the five libraries, the downloaded artifact files and the factor source texts."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KindCounts(_Doc):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0


class SyncIssue(_Doc):
    """Something a sync could not take: which kind, which record or file, and why."""

    kind: str
    key: str
    message: str


class OutsideLibrary(_Doc):
    """A loop that is not in the libraries because its materialization is not done (pending, running or failed)."""

    experiment_id: str
    materialization_status: str | None
    error: str | None


class SyncReport(_Doc):
    ok: bool = Field(description="False when anything failed (a refused download, an unreadable record).")
    api_url: str
    database: str = Field(description="Backend of the platform database (sqlite or postgresql), never the URL.")
    started_at_utc: datetime
    finished_at_utc: datetime
    seconds: float
    seconds_pull: float = Field(0.0, description="Reading the catalog lists.")
    seconds_fetch: float = Field(0.0, description="Loop details, artifact downloads and factor sources.")
    seconds_apply: float = Field(0.0, description="The one transaction that writes the libraries.")
    full: bool = Field(description="True when this was a first (full) pull, False for an incremental one.")
    kinds: dict[str, KindCounts]
    files_downloaded: int = 0
    files_reused: int = Field(0, description="Artifact files already in the local store with the right sha256.")
    bytes_downloaded: int = 0
    changed: int = Field(0, description="Rows created or updated in the platform database, all kinds.")
    outside_library: list[OutsideLibrary] = Field(default_factory=list)
    issues: list[SyncIssue] = Field(default_factory=list)
