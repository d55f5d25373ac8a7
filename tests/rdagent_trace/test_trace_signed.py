"""RD-Agent's signed envelope: verified / unverified / unsigned / tampered, and where the key comes from."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pytest

from rdbridge.rdagent_trace import TamperedPickleError, TruncatedPickleError, UnreadableFileError, load_signing_key
from rdbridge.rdagent_trace import read_trace_pickle
from rdbridge.rdagent_trace.signed import SIGNED_MAGIC
from rdtrace_helpers import LEGACY, SAMPLE

KEY = (SAMPLE / "artifact_signing.key").read_bytes()


def _a_signed_file() -> Path:
    return next((SAMPLE / "log").rglob("feedback/*/*.pkl"))


def test_signed_file_with_its_key_is_verified() -> None:
    f = _a_signed_file()
    data = f.read_bytes()
    assert data.startswith(SIGNED_MAGIC)
    # the envelope is what rdagent documents: magic, HMAC-SHA256(key, payload), payload
    payload = data[len(SIGNED_MAGIC) + 32:]
    assert hmac.digest(KEY, payload, "sha256") == data[len(SIGNED_MAGIC):len(SIGNED_MAGIC) + 32]
    obj, status = read_trace_pickle(f, KEY)
    assert status == "verified"
    assert obj.class_name == "HypothesisFeedback"


def test_signed_file_without_key_is_unverified() -> None:
    obj, status = read_trace_pickle(_a_signed_file(), None)
    assert status == "unverified" and obj.class_name == "HypothesisFeedback"


def test_a_changed_payload_byte_is_tampered(tmp_path: Path) -> None:
    data = bytearray(_a_signed_file().read_bytes())
    i = data.index(b"decision")  # flip a byte inside the payload, keep the pickle well-formed
    data[i] = ord("D")
    f = tmp_path / "fb.pkl"
    f.write_bytes(bytes(data))
    with pytest.raises(TamperedPickleError) as info:
        read_trace_pickle(f, KEY)
    assert info.value.kind == "tampered" and str(f) in str(info.value)
    # without a key the same file loads (status unverified): the key is what detects tampering
    assert read_trace_pickle(f, None)[1] == "unverified"


def test_wrong_key_is_tampered() -> None:
    with pytest.raises(TamperedPickleError):
        read_trace_pickle(_a_signed_file(), os.urandom(32))


def test_changed_signature_is_tampered(tmp_path: Path) -> None:
    data = bytearray(_a_signed_file().read_bytes())
    data[len(SIGNED_MAGIC) + 5] ^= 0xFF
    f = tmp_path / "x.pkl"
    f.write_bytes(bytes(data))
    with pytest.raises(TamperedPickleError):
        read_trace_pickle(f, KEY)


def test_legacy_plain_pickle_is_unsigned(tmp_path: Path) -> None:
    legacy = next((LEGACY / "log").rglob("feedback/*/*.pkl"))
    obj, status = read_trace_pickle(legacy, KEY)
    assert status == "unsigned" and obj.class_name == "HypothesisFeedback"
    stripped = tmp_path / "stripped.pkl"
    stripped.write_bytes(_a_signed_file().read_bytes()[len(SIGNED_MAGIC) + 32:])
    assert read_trace_pickle(stripped, None)[1] == "unsigned"


def test_cut_inside_the_header_is_truncated(tmp_path: Path) -> None:
    data = _a_signed_file().read_bytes()
    for cut in (5, len(SIGNED_MAGIC) + 10):
        f = tmp_path / f"cut{cut}.pkl"
        f.write_bytes(data[:cut])
        with pytest.raises(TruncatedPickleError):
            read_trace_pickle(f, KEY)


def test_key_from_file_then_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ARTIFACT_SIGNING_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_signing_key(None) is None
    assert load_signing_key(SAMPLE / "artifact_signing.key") == KEY
    secret = "a configured signing key of more than thirty-two bytes"
    monkeypatch.setenv("ARTIFACT_SIGNING_KEY", secret)
    assert load_signing_key(None) == hashlib.sha256(secret.encode()).digest()
    assert load_signing_key(SAMPLE / "artifact_signing.key") == KEY  # an explicit file wins


def test_default_key_file_only_when_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ARTIFACT_SIGNING_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".rdagent").mkdir()
    (tmp_path / ".rdagent" / "artifact_signing.key").write_bytes(b"h" * 32)
    assert load_signing_key(None) is None
    assert load_signing_key(None, use_default_key_file=True) == b"h" * 32


def test_short_or_missing_key_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "short.key").write_bytes(b"abc")
    with pytest.raises(UnreadableFileError, match="32"):
        load_signing_key(tmp_path / "short.key")
    with pytest.raises(UnreadableFileError):
        load_signing_key(tmp_path / "absent.key")
