"""The one error a loop's materialization fails with: which input file, and what is wrong with it."""

from __future__ import annotations

from pathlib import Path


class LoopInputError(Exception):
    """Missing or malformed input of one loop; the message names the file (the loop is marked failed with it)."""

    def __init__(self, file: str | Path, message: str) -> None:
        super().__init__(f"{file}: {message}")
        self.file = str(file)
        self.message = message
