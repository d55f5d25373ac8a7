"""What one API process needs: the registry URL, the optional bearer token and the artifact store root.

Passed to worker processes through environment variables (uvicorn starts workers from an import string).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rdbridge.config import DB_ENV, artifact_root, default_db_url

TOKEN_ENV = "RDBRIDGE_API_TOKEN"
CACHE_ENV = "RDBRIDGE_API_CACHE_MB"
"""Megabytes of encoded answers each worker keeps (default 64; 0 turns the response cache off)."""


@dataclass(frozen=True)
class ApiSettings:
    db_url: str
    token: str | None = None
    artifact_root: Path | None = None
    """The artifact store; None: `$RDBRIDGE_HOME/artifacts`."""
    cache_bytes: int = 64 * 1024 * 1024
    """Response cache budget per process (0: off)."""

    @classmethod
    def from_env(cls) -> ApiSettings:
        """Settings from $RDBRIDGE_DB, $RDBRIDGE_API_TOKEN and $RDBRIDGE_HOME (what `rdbridge serve` exports)."""
        token = os.environ.get(TOKEN_ENV) or None
        raw = os.environ.get(CACHE_ENV, "").strip()
        try:
            mb = float(raw) if raw else 64.0
        except ValueError:
            raise ValueError(f"{CACHE_ENV}={raw!r} is not a number of megabytes") from None
        return cls(db_url=os.environ.get(DB_ENV) or default_db_url(), token=token,
                   cache_bytes=max(0, int(mb * 1024 * 1024)))

    def store_root(self) -> Path:
        return self.artifact_root if self.artifact_root is not None else artifact_root()
