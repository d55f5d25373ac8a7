"""Where rdbridge keeps its state: $RDBRIDGE_HOME (default ./.rdbridge) and the registry URL."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "RDBRIDGE_HOME"
DB_ENV = "RDBRIDGE_DB"


def home_dir() -> Path:
    """The state folder; created on first use so every command can rely on it."""
    home = Path(os.environ.get(HOME_ENV) or "./.rdbridge").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_db_url() -> str:
    """`--db` wins, then $RDBRIDGE_DB, then the embedded SQLite file under the home folder."""
    env = os.environ.get(DB_ENV)
    if env:
        return env
    return f"sqlite:///{(home_dir() / 'registry.sqlite').resolve()}"


def artifact_root() -> Path:
    """Root of the artifact store (materialized documents and charts)."""
    root = home_dir() / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    return root
