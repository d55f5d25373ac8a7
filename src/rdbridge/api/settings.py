"""What one API process needs: the registry URL, the optional bearer token and the artifact store root.

Passed to worker processes through environment variables (uvicorn starts workers from an import string).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rdbridge.config import DB_ENV, artifact_root, default_db_url

TOKEN_ENV = "RDBRIDGE_API_TOKEN"


@dataclass(frozen=True)
class ApiSettings:
    db_url: str
    token: str | None = None
    artifact_root: Path | None = None
    """The artifact store; None: `$RDBRIDGE_HOME/artifacts`."""

    @classmethod
    def from_env(cls) -> ApiSettings:
        """Settings from $RDBRIDGE_DB, $RDBRIDGE_API_TOKEN and $RDBRIDGE_HOME (what `rdbridge serve` exports)."""
        token = os.environ.get(TOKEN_ENV) or None
        return cls(db_url=os.environ.get(DB_ENV) or default_db_url(), token=token)

    def store_root(self) -> Path:
        return self.artifact_root if self.artifact_root is not None else artifact_root()
