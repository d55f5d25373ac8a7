"""End to end: a real `rdbridge serve` on the sample registry, synced into SQLite and PostgreSQL platform stores."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from consumer.conftest import TOKEN, Producer
from consumer.registry_setup import SCRIPT_NAME
from consumer.servers import Proxy, free_port
from rdbridge.consumer import library as lib
from rdbridge.consumer.client import ApiAuthError, ApiClient, ApiUnreachable
from rdbridge.consumer.db import init_platform_db, session_scope
from rdbridge.consumer.filestore import FileStore
from rdbridge.consumer.models import LibArtifactFile, LibExperiment, LibFactor, SyncCursor, SyncRun
from rdbridge.consumer.sync import sync
from rdbridge.contracts.platform import SyncReport


def _store(tmp_path: Path) -> Path:
    return tmp_path / "files"


def test_full_then_incremental_sync_and_tags_survive(producer: Producer, platform_url: str, tmp_path: Path) -> None:
    first = sync(producer.url, platform_url, token=TOKEN, store_dir=_store(tmp_path), page_size=50)
    assert first.ok, first.issues
    assert first.full and first.kinds["factors"].created > 158 and first.kinds["alpha158"].created == 158
    assert first.files_downloaded > 0 and first.kinds["artifacts"].failed == 0
    engine = init_platform_db(platform_url)
    try:
        with session_scope(engine, write=False) as s:
            in_lib = set(s.scalars(select(LibExperiment.experiment_id).where(LibExperiment.in_library)))
            assert in_lib == set(producer.done)
            outside = s.scalars(select(LibExperiment).where(LibExperiment.in_library.is_(False))).all()
            assert [o.materialization_status for o in outside] == ["failed"]
            assert "chart rendering failed" in (outside[0].materialization_error or "")
            # every stored file is in the store under its sha256, with exactly those bytes
            store = FileStore(_store(tmp_path))
            stored = s.scalars(select(LibArtifactFile).where(LibArtifactFile.status == "stored")).all()
            assert sum(f.mime_type == "image/png" for f in stored) == 2 * len(producer.done)
            for f in stored:
                assert hashlib.sha256(store.path_for(f.sha256).read_bytes()).hexdigest() == f.sha256
            # RD-Agent factors of done loops carry the exact code their loop ran
            rd = s.scalars(select(LibFactor).where(LibFactor.source == "rdagent", LibFactor.in_library)).all()
            assert rd and all(f.source_code and hashlib.sha256(f.source_code.encode()).hexdigest() == f.code_sha256
                              for f in rd)
            assert SCRIPT_NAME in {f.name for f in rd}
        assert [o.experiment_id for o in first.outside_library] == [e.experiment_id for e in outside]

        second = sync(producer.url, platform_url, token=TOKEN, store_dir=_store(tmp_path), page_size=50)
        assert second.ok and not second.full
        assert second.changed == 0 and second.files_downloaded == 0
        assert all(k.created == k.updated == 0 for k in second.kinds.values())

        # the user's tags / marks / notes are never touched by sync, even when the tagged rows are rewritten
        name = SCRIPT_NAME
        with session_scope(engine) as s:
            lib.add_tag(s, "factor", name, "momentum")
            lib.set_mark(s, "factor", name, "candidate")
            lib.add_note(s, "factor", name, "check the turnover")
            s.execute(update(LibFactor).values(content_hash="stale"))
            s.execute(update(SyncCursor).values(watermark_utc=None, etag=None))
        third = sync(producer.url, platform_url, token=TOKEN, store_dir=_store(tmp_path), page_size=50)
        assert third.kinds["factors"].updated == first.kinds["factors"].created
        with session_scope(engine, write=False) as s:
            assert lib.tags_by_key(s, "factor", [name]) == {name: ["momentum"]}
            assert lib.marks_by_key(s, "factor", [name]) == {name: "candidate"}
            assert [n.text for n in lib.notes(s, "factor", name)] == ["check the turnover"]
            assert s.scalar(select(func.count()).select_from(SyncRun)) == 3
    finally:
        engine.dispose()


def test_wrong_token_and_unreachable_api_are_clear(producer: Producer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.sqlite'}"
    with pytest.raises(ApiAuthError, match="refused the token"):
        sync(producer.url, url, token="wrong", store_dir=_store(tmp_path))
    dead = f"http://127.0.0.1:{free_port()}"
    with ApiClient(dead, attempts=2, backoff=0.01) as client, pytest.raises(ApiUnreachable, match="cannot reach"):
        sync(dead, url, client=client, store_dir=_store(tmp_path))
    engine = init_platform_db(url)
    with session_scope(engine, write=False) as s:
        assert s.scalar(select(func.count()).select_from(LibFactor)) == 0
    engine.dispose()


def test_retries_5xx_with_backoff(producer: Producer, tmp_path: Path) -> None:
    with Proxy(producer.url, fail_first=3) as proxy, ApiClient(proxy.url, TOKEN, attempts=5, backoff=0.01) as c:
        report = sync(proxy.url, f"sqlite:///{tmp_path / 'p.sqlite'}", client=c, store_dir=_store(tmp_path))
    assert report.ok and report.kinds["factors"].created > 0
    assert proxy.requests[0] == proxy.requests[3]  # the same request, retried after three 503s


def test_wrong_sha256_is_refused_then_repaired(producer: Producer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.sqlite'}"
    target: dict[str, str] = {}

    def flip_first_png(path: str, body: bytes) -> bytes:
        if body.startswith(b"\x89PNG") and target.setdefault("path", path) == path:
            return body[:-1] + bytes([body[-1] ^ 0xFF])
        return body

    with Proxy(producer.url, tamper=flip_first_png) as proxy, ApiClient(proxy.url, TOKEN, backoff=0.01) as c:
        bad = sync(proxy.url, url, client=c, store_dir=_store(tmp_path))
    assert not bad.ok and bad.kinds["artifacts"].failed == 1
    [issue] = [i for i in bad.issues if "refused" in i.message]
    assert "sha256" in issue.message and "announced" in issue.message
    engine = init_platform_db(url)
    with session_scope(engine, write=False) as s:
        [refused] = s.scalars(select(LibArtifactFile).where(LibArtifactFile.status == "refused")).all()
        assert not FileStore(_store(tmp_path)).has(refused.sha256)  # the bad bytes never entered the store
    # the next sync (honest network) fetches that file again and completes the loop
    good = sync(producer.url, url, token=TOKEN, store_dir=_store(tmp_path))
    assert good.ok and good.files_downloaded == 1
    with session_scope(engine, write=False) as s:
        assert s.scalar(select(func.count()).select_from(LibArtifactFile)
                        .where(LibArtifactFile.status.in_(("refused", "failed")))) == 0
    engine.dispose()


def test_killed_sync_leaves_library_intact_and_resumes(producer: Producer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.sqlite'}"
    home = tmp_path / "home"
    env = dict(os.environ, RDBRIDGE_HOME=str(home), RDBRIDGE_PLATFORM_DB=url, RDBRIDGE_API_TOKEN=TOKEN)
    store = tmp_path / "p_files" / "sha256"  # the store beside the database

    def kept() -> list[Path]:
        return [p for p in store.rglob("*") if p.is_file()] if store.exists() else []

    with Proxy(producer.url, file_delay=1.0) as proxy:  # ~40 files on 8 threads: a window of several seconds
        proc = subprocess.Popen([sys.executable, "-m", "rdbridge.cli", "sync", "--api", proxy.url, "--json"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 180
        while not kept() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the sync finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    engine = init_platform_db(url)
    with session_scope(engine, write=False) as s:  # nothing half-written: the apply transaction never committed
        assert s.scalar(select(func.count()).select_from(LibFactor)) == 0
        assert s.scalar(select(func.count()).select_from(SyncRun)) == 0
    engine.dispose()
    n_kept = len(kept())
    assert n_kept >= 1, "verified files downloaded before the kill stay in the store"
    out = subprocess.run([sys.executable, "-m", "rdbridge.cli", "sync", "--api", producer.url, "--json"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = SyncReport.model_validate(json.loads(out.stdout))
    assert report.ok and report.full and report.files_reused >= n_kept
    assert report.kinds["factors"].created > 158
