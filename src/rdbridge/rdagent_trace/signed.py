"""RD-Agent's signed pickle envelope: check the HMAC before unpickling anything.

rdagent >= 1.0 writes every trace pickle as ``b"RDAGENT_SIGNED_PICKLE_V1\\n" + HMAC-SHA256(key, payload) + payload``;
older releases (and forks) write the plain pickle. The key is the raw bytes of RD-Agent's key file
(``~/.rdagent/artifact_signing.key`` by default, 32 random bytes) or, when RD-Agent ran with the environment variable
``ARTIFACT_SIGNING_KEY``, the SHA-256 digest of that string.

Signature status of one file:
  ``verified``   signed, and the HMAC matches the key we were given;
  ``unverified`` signed, but no key was given (the payload is still read, through the safe unpickler);
  ``unsigned``   a legacy plain pickle;
  ``tampered``   signed and the HMAC does not match: `TamperedPickleError`, nothing of the file is used.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any, Literal

from rdbridge.rdagent_trace.errors import TamperedPickleError, TruncatedPickleError, UnreadableFileError
from rdbridge.rdagent_trace.safe_unpickle import safe_loads

SIGNED_MAGIC = b"RDAGENT_SIGNED_PICKLE_V1\n"
DIGEST_SIZE = 32
KEY_ENV_VAR = "ARTIFACT_SIGNING_KEY"
DEFAULT_KEY_FILE = Path("~/.rdagent/artifact_signing.key")

ReadStatus = Literal["verified", "unverified", "unsigned"]

__all__ = ["SIGNED_MAGIC", "load_signing_key", "read_trace_pickle", "read_verified_payload", "verify_envelope",
           "split_envelope", "sign_payload"]


def load_signing_key(key_file: Path | None = None, *, use_default_key_file: bool = False) -> bytes | None:
    """The key that RD-Agent signed the trace with, or None when none is available.

    Order: `key_file` (its raw bytes, as RD-Agent reads it); else env ``ARTIFACT_SIGNING_KEY`` (sha256 of the string);
    else, only when `use_default_key_file` is set and the file exists, ``~/.rdagent/artifact_signing.key``. We never
    read the home-directory key implicitly: a trace copied from another machine was signed with *that* machine's key,
    and silently checking it against ours would only report every file as tampered.
    """
    if key_file is not None:
        try:
            key = Path(key_file).expanduser().read_bytes()
        except OSError as e:
            raise UnreadableFileError(key_file, f"cannot read the signing key file: {e.strerror or e}") from None
        if len(key) < DIGEST_SIZE:
            raise UnreadableFileError(key_file, f"signing key has {len(key)} bytes, RD-Agent keys have at least 32; "
                                                "pass the artifact_signing.key of the machine that ran RD-Agent")
        return key
    env = os.environ.get(KEY_ENV_VAR)
    if env:
        return hashlib.sha256(env.encode()).digest()
    if use_default_key_file:
        default = DEFAULT_KEY_FILE.expanduser()
        if default.is_file():
            return load_signing_key(default)
    return None


def sign_payload(payload: bytes, key: bytes) -> bytes:
    """Wrap a pickle payload in RD-Agent's signed envelope (used by tests and tools that re-sign fixtures)."""
    return SIGNED_MAGIC + hmac.digest(key, payload, "sha256") + payload


def split_envelope(data: bytes, *, source: str | Path = "<bytes>") -> tuple[bytes | None, bytes]:
    """(digest, payload) for a signed file, (None, data) for a legacy plain pickle."""
    if data.startswith(SIGNED_MAGIC):
        body = data[len(SIGNED_MAGIC):]
        if len(body) < DIGEST_SIZE:
            raise TruncatedPickleError(source, "signed pickle ends inside its signature; re-copy the file")
        return body[:DIGEST_SIZE], body[DIGEST_SIZE:]
    if data and SIGNED_MAGIC.startswith(data):
        raise TruncatedPickleError(source, "file ends inside RD-Agent's signature header; re-copy the file")
    return None, data


def read_trace_pickle(path: Path, key: bytes | None) -> tuple[Any, ReadStatus]:
    """Read one trace pickle: check its signature (when signed and a key is given), then unpickle it safely.

    Raises a `TraceReadError` subclass (tampered, truncated, corrupt, forbidden_class, unreadable) naming `path`.
    """
    payload, status = read_verified_payload(path, key)
    return safe_loads(payload, source=path), status


def read_verified_payload(path: Path, key: bytes | None) -> tuple[bytes, ReadStatus]:
    """The pickle payload of a trace file and its signature status, without unpickling it (cheap integrity check)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UnreadableFileError(path, f"cannot read: {e.strerror or e}") from None
    return verify_envelope(data, key, source=path)


def verify_envelope(data: bytes, key: bytes | None, *, source: str | Path = "<bytes>") -> tuple[bytes, ReadStatus]:
    """(payload, status) of a file's bytes; `TamperedPickleError` when the HMAC does not match `key`."""
    digest, payload = split_envelope(data, source=source)
    if digest is None:
        return payload, "unsigned"
    if key is None:
        return payload, "unverified"
    if not hmac.compare_digest(digest, hmac.digest(key, payload, "sha256")):
        raise TamperedPickleError(source, "signature does not match the signing key: the file was modified after "
                                          "RD-Agent wrote it, or the key is not the one of the machine that ran "
                                          "RD-Agent. Nothing was loaded from it.")
    return payload, "verified"
