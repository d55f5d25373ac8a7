"""One error family for everything that can go wrong reading a trace or a workspace.

Each error carries the offending path and a `kind` equal to `TraceFileError.kind`, so the loop reader can turn any of
them into a contract value (`to_contract`) and keep every other fact of the loop.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import ClassVar

from rdbridge.contracts.trace import TraceFileError


class TraceReadError(Exception):
    """A trace or workspace file that could not be read. `kind` matches `TraceFileError.kind`.

    Subclasses fix the kind and take `(path, message)`; the base takes `(path, kind, message)`.
    """

    default_kind: ClassVar[str] = "unreadable"

    def __init__(self, path: Path | PurePath | str, kind: str, message: str) -> None:
        self.path = str(path)
        self.kind = kind
        self.message = message
        super().__init__(f"{self.path}: {message}")

    def to_contract(self) -> TraceFileError:
        return TraceFileError(file=self.path, kind=self.kind, message=self.message)  # type: ignore[arg-type]


class _FixedKind(TraceReadError):
    def __init__(self, path: Path | PurePath | str, message: str) -> None:
        super().__init__(path, self.default_kind, message)


class CorruptPickleError(_FixedKind):
    default_kind = "corrupt"


class TruncatedPickleError(_FixedKind):
    default_kind = "truncated"


class ForbiddenClassError(_FixedKind):
    default_kind = "forbidden_class"

    def __init__(self, path: Path | PurePath | str, global_name: str, why: str = "not on the allow-list") -> None:
        self.global_name = global_name
        super().__init__(
            path,
            f"refused to load global {global_name!r} ({why}); the file may be malicious or from an unsupported "
            "RD-Agent version. Nothing from this file was used.",
        )


class TamperedPickleError(_FixedKind):
    default_kind = "tampered"


class UnreadableFileError(_FixedKind):
    default_kind = "unreadable"


class NotUtf8Error(_FixedKind):
    default_kind = "not_utf8"


class MissingWorkspaceError(_FixedKind):
    default_kind = "missing_workspace"


class BadFormatError(_FixedKind):
    default_kind = "bad_format"


class TooLargeError(_FixedKind):
    """A file above the size cap, or a pickle that asks to allocate far more than its own size could justify."""

    default_kind = "too_large"


class CrashedError(_FixedKind):
    """The isolated reader process died on this file (a signal, e.g. a segfault or the kernel's OOM killer)."""

    default_kind = "crashed"


class TimedOutError(_FixedKind):
    """The isolated reader spent longer than the per-file timeout on this file and was killed."""

    default_kind = "timed_out"
