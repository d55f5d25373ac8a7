"""One sync: pull every API list, fetch the details and files of loops that are done, then apply it all to the
platform database in ONE transaction.

Order matters for crash safety: everything is downloaded first (files land in the content-addressed store, each
verified against the API's sha256), and only then are the library rows written, in a single transaction together
with the new watermarks. A sync killed or failing anywhere before that commit leaves the libraries exactly as they
were; the next sync pulls the same rows again and reuses every file already verified in the store. User tags, marks
and notes live in their own tables, which sync never writes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.orm import Session

from rdbridge.consumer.client import ApiAuthError, ApiClient, ApiError, ApiForbidden, ApiNotFound, ApiUnreachable
from rdbridge.consumer.db import default_store_dir, init_platform_db, session_scope
from rdbridge.consumer.filestore import ChecksumMismatch, FileStore
from rdbridge.consumer.models import (
    LibAlpha158,
    LibArtifactFile,
    LibExperiment,
    LibFactor,
    LibModel,
    LibStrategy,
    SyncCursor,
    SyncRun,
)
from rdbridge.consumer.pull import Pulled, Resource, pull
from rdbridge.contracts.api import LoopArtifacts, LoopDetail
from rdbridge.contracts.catalog import Alpha158Entry, FactorEntry, LoopEntry, ModelEntry, StrategyEntry
from rdbridge.contracts.platform import SYNC_KINDS, KindCounts, OutsideLibrary, SyncIssue, SyncReport

Progress = Callable[[str, int, int | None], None]
"""progress(stage, advance, total): a stage's total once (advance 0), then advances."""

RESOURCES: dict[str, Resource] = {
    "factors": Resource("factors", "/catalog/factors", FactorEntry),
    "strategies": Resource("strategies", "/catalog/strategies", StrategyEntry),
    "experiments": Resource("experiments", "/catalog/loops", LoopEntry),
    "models": Resource("models", "/catalog/models", ModelEntry),
    "alpha158": Resource("alpha158", "/alpha158/meta", Alpha158Entry, list_key="factors", incremental=False),
}
TABLES: dict[str, Any] = {"factors": LibFactor, "strategies": LibStrategy, "experiments": LibExperiment,
                          "models": LibModel, "alpha158": LibAlpha158}
MAX_SOURCE_BYTES = 2_000_000
SOURCE_SUFFIXES = (".py",)


class SyncError(RuntimeError):
    """A sync that could not finish; nothing was written to the libraries."""


def _key(kind: str, item: BaseModel) -> Any:
    if kind == "factors":
        return item.id  # type: ignore[attr-defined]
    if kind == "strategies":
        return item.strategy_id  # type: ignore[attr-defined]
    if kind == "experiments":
        return item.experiment_id  # type: ignore[attr-defined]
    if kind == "models":
        return (item.experiment_id, item.task_index)  # type: ignore[attr-defined]
    return item.name  # type: ignore[attr-defined]


def content_hash(doc: Any) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _row(kind: str, item: BaseModel, now: datetime) -> dict[str, Any]:
    """The library row for one contract entry (columns of the same name; hash and timestamps added)."""
    table = TABLES[kind]
    doc = item.model_dump(mode="json")
    cols = set(table.__table__.columns.keys())
    row = {c: v for c, v in item.model_dump().items() if c in cols}
    row["content_hash"] = content_hash(doc)
    row["remote_updated_at_utc"] = getattr(item, "updated_at_utc", None)
    row["synced_at_utc"] = now
    return row


@dataclass
class _LoopFetch:
    detail: LoopDetail | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    failed: bool = False


@dataclass
class _Run:
    api: ApiClient
    store: FileStore
    report_kinds: dict[str, KindCounts]
    issues: list[SyncIssue]
    progress: Progress | None
    downloaded: int = 0
    reused: int = 0
    bytes: int = 0

    def tick(self, stage: str, n: int = 1, total: int | None = None) -> None:
        if self.progress:
            self.progress(stage, n, total)

    hard_failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, kind: str, key: str, message: str, *, soft: bool = False) -> None:
        """Record a problem; a soft one (something the API declines to serve) does not make the sync fail."""
        with self.lock:
            self.issues.append(SyncIssue(kind=kind, key=key, message=message))
            if not soft:
                self.hard_failures += 1

    def count(self, kind: str, what: str, n: int = 1) -> None:
        with self.lock:
            counts = self.report_kinds[kind]
            setattr(counts, what, getattr(counts, what) + n)


def _fetch_files(run: _Run, exp_id: str, arts: LoopArtifacts) -> tuple[list[dict[str, Any]], bool]:
    rows: list[dict[str, Any]] = []
    failed = False
    for art in arts.artifacts:
        for f in art.files:
            row = {"experiment_id": exp_id, "file_id": f.file_id, "artifact_id": art.artifact_id,
                   "artifact_type": art.artifact_type, "artifact_name": art.name, "path": f.path,
                   "size_bytes": f.size_bytes, "sha256": f.sha256, "mime_type": f.mime_type,
                   "status": "stored", "error": None}
            rows.append(row)
            if not f.sha256:
                row["status"], row["error"] = "unavailable", "the API gives no sha256 for it (e.g. a dangling link)"
                continue
            if run.store.has(f.sha256):
                with run.lock:
                    run.reused += 1
                continue
            writer = run.store.writer(f.sha256)
            try:
                run.api.download(f.download_url, writer)
                writer.commit()
            except ChecksumMismatch as exc:
                row["status"], row["error"] = "refused", str(exc)
                run.issue("artifacts", f"{exp_id}/{f.path}", f"download refused: {exc}")
                run.count("artifacts", "failed")
                failed = True
                continue
            except (ApiUnreachable, ApiAuthError):
                writer.discard()
                raise
            except ApiForbidden as exc:
                writer.discard()
                row["status"], row["error"] = "unavailable", f"the API will not serve it: {exc}"
                run.issue("artifacts", f"{exp_id}/{f.path}", f"not served by the API: {exc}", soft=True)
                continue
            except ApiError as exc:
                writer.discard()
                row["status"], row["error"] = "failed", str(exc)
                run.issue("artifacts", f"{exp_id}/{f.path}", str(exc))
                run.count("artifacts", "failed")
                failed = True
                continue
            with run.lock:
                run.downloaded += 1
                run.bytes += writer.size
            run.count("artifacts", "created")
            run.tick("files")
    return rows, failed


def _fetch_loop(run: _Run, entry: LoopEntry) -> _LoopFetch:
    base = f"/loops/{quote(entry.task_run_id, safe='')}/{entry.loop_id}"
    out = _LoopFetch()
    try:
        body, _, _ = run.api.get_json(base)
        out.detail = LoopDetail.model_validate(body)
        body, _, _ = run.api.get_json(f"{base}/artifacts")
        arts = LoopArtifacts.model_validate(body)
    except (ApiUnreachable, ApiAuthError):
        raise
    except (ApiError, ValueError) as exc:
        run.issue("experiments", entry.experiment_id, f"loop detail / artifacts: {exc}")
        out.failed = True
        return out
    out.files, out.failed = _fetch_files(run, entry.experiment_id, arts)
    return out


def _fetch_loops(run: _Run, entries: list[LoopEntry], out: dict[str, _LoopFetch], workers: int) -> None:
    """Fetch loops' details and files on a few threads (the API answers each in a few ms; the round trips add up).
    The first unreachable-API or token error cancels the rest and propagates."""
    if not entries:
        return
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sync") as pool:
        futures = {pool.submit(_fetch_loop, run, e): e.experiment_id for e in entries}
        try:
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                run.tick("loops")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _fetch_source(run: _Run, entry: FactorEntry) -> str | None:
    try:
        text, ctype = run.api.get_text(f"/factor_package/source/{quote(entry.name, safe='')}",
                                       {"version": entry.impl_version})
    except (ApiUnreachable, ApiAuthError):
        raise
    except ApiError as exc:
        run.issue("sources", entry.id, f"factor source at {entry.impl_version}: {exc}")
        run.count("sources", "failed")
        return None
    if "json" in ctype:
        try:
            doc = json.loads(text)
            text = doc.get("source") or doc.get("code") or doc.get("text") or ""
        except (ValueError, AttributeError):
            pass
    run.count("sources", "created")
    return text


def _existing(session: Session, kind: str) -> dict[Any, str]:
    table = TABLES[kind]
    if kind == "models":
        return {(e, i): h for e, i, h in session.execute(
            select(table.experiment_id, table.task_index, table.content_hash))}
    pk = table.__table__.primary_key.columns.values()[0]
    return dict(session.execute(select(pk, table.content_hash)).all())


def _incomplete_experiments(session: Session) -> set[str]:
    rows = session.execute(select(LibArtifactFile.experiment_id).where(
        LibArtifactFile.status.in_(("refused", "failed"))).distinct())
    return {r[0] for r in rows}


def sync(api_url: str, db_url: str, *, token: str | None = None, store_dir: Path | None = None,
         page_size: int = 500, progress: Progress | None = None, client: ApiClient | None = None,
         workers: int = 8) -> SyncReport:
    """Bring the platform database and file store up to date with the Results API at `api_url` (see module doc)."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    engine = init_platform_db(db_url)
    try:
        store = FileStore(store_dir or default_store_dir(db_url))
        store.sweep_temp()
        api = client or ApiClient(api_url, token)
        try:
            return _sync(api, engine, store, started, t0, page_size, progress, workers)
        finally:
            if client is None:
                api.close()
    finally:
        engine.dispose()


def _sync(api: ApiClient, engine: Engine, store: FileStore, started: datetime, t0: float, page_size: int,
          progress: Progress | None, workers: int) -> SyncReport:
    kinds = {k: KindCounts() for k in SYNC_KINDS}
    run = _Run(api=api, store=store, report_kinds=kinds, issues=[], progress=progress)
    with session_scope(engine, write=False) as s:
        cursors = {c.resource: c for c in s.scalars(select(SyncCursor))}
        existing = {kind: _existing(s, kind) for kind in RESOURCES}
        in_library = set(s.scalars(select(LibExperiment.experiment_id).where(LibExperiment.in_library)))
        incomplete = _incomplete_experiments(s)
        have_source = set(s.scalars(select(LibFactor.id).where(LibFactor.source_code.is_not(None))))
    full = not cursors

    # 1. pull every list (nothing written yet)
    t_pull = time.perf_counter()
    pulled: dict[str, Pulled] = {}
    for kind, res in RESOURCES.items():
        c = cursors.get(res.name)
        try:
            pulled[kind] = pull(api, res, watermark=c.watermark_utc if c else None, etag_url=c.etag_url if c else None,
                                etag=c.etag if c else None, page_size=page_size,
                                on_page=lambda n, k=kind: run.tick(k, n))
        except ApiNotFound as exc:
            if kind == "alpha158" or kind in ("strategies", "models"):
                run.issue(kind, res.path, f"not served by this API: {exc}", soft=True)
                pulled[kind] = Pulled(resource=res)
                continue
            raise
        for key, message in pulled[kind].invalid:
            run.issue(kind, key, message)
            kinds[kind].failed += 1

    # 2. classify; fetch details and files of loops that are done and new, changed or incomplete
    t_fetch = time.perf_counter()
    now = datetime.now(UTC)
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {k: {"insert": [], "update": []} for k in RESOURCES}
    for kind, p in pulled.items():
        seen: set[Any] = set()
        for item in p.items:
            key = _key(kind, item)
            if key in seen:
                continue
            seen.add(key)
            row = _row(kind, item, now)
            old = existing[kind].get(key)
            if old is None:
                rows[kind]["insert"].append(row)
            elif old != row["content_hash"]:
                rows[kind]["update"].append(row)
            else:
                row["_same"] = True
                rows[kind]["update"].append(row)

    loop_fetches: dict[str, _LoopFetch] = {}
    loop_entries = {e.experiment_id: e for e in pulled["experiments"].items}  # type: ignore[attr-defined]
    todo = []
    for row in rows["experiments"]["insert"] + rows["experiments"]["update"]:
        exp = row["experiment_id"]
        done = row["materialization_status"] == "done"
        row["in_library"] = done
        if done and (not row.get("_same") or exp not in in_library or exp in incomplete):
            todo.append(exp)
    # loops not pulled this time but whose files failed last time: retry them too
    retry = sorted(incomplete - set(loop_entries))
    if todo or retry:
        run.tick("loops", 0, len(todo) + len(retry))
    _fetch_loops(run, [loop_entries[exp] for exp in todo], loop_fetches, workers)
    if retry:
        with session_scope(engine, write=False) as s:
            olds = {e.experiment_id: e for e in s.scalars(select(LibExperiment).where(
                LibExperiment.experiment_id.in_(retry)))}
        stubs = []
        for exp in retry:
            old = olds.get(exp)
            if old is not None:
                stub = LoopEntry(task_run_id=old.task_run_id, loop_id=old.loop_id, experiment_id=exp,
                                 action=old.action, status=old.status, has_result=old.has_result,
                                 key_metrics=old.key_metrics or {}, decision=old.decision, hypothesis=old.hypothesis,
                                 materialization_status=old.materialization_status,
                                 materialization_error=old.materialization_error,
                                 updated_at_utc=old.remote_updated_at_utc or now, artifacts=[])
                stubs.append(stub)
        _fetch_loops(run, stubs, loop_fetches, workers)
    for row in rows["experiments"]["insert"] + rows["experiments"]["update"]:
        fetched = loop_fetches.get(row["experiment_id"])
        if fetched is not None and fetched.detail is not None:
            row["detail"] = fetched.detail.model_dump(mode="json")
            row.pop("_same", None)  # its detail/files are rewritten: count it as updated if it existed

    # factor sources at their impl_version (package factors), for new/changed factors or ones still without source
    sources: dict[str, str] = {}
    factor_items = {f.id: f for f in pulled["factors"].items}  # type: ignore[attr-defined]
    want = [f for fid, f in factor_items.items() if f.impl_version and f.impl_module
            and (fid not in have_source or fid not in existing["factors"]
                 or existing["factors"][fid] != content_hash(f.model_dump(mode="json")))]
    if want:
        run.tick("sources", 0, len(want))
    for f in want:
        text = _fetch_source(run, f)
        if text is not None:
            sources[f.id] = text
        run.tick("sources")

    # 3. apply everything in one transaction
    t_apply = time.perf_counter()
    with session_scope(engine) as s:
        for kind, ops in rows.items():
            table = TABLES[kind]
            c = kinds[kind]
            c.created += len(ops["insert"])
            changed = [r for r in ops["update"] if not r.pop("_same", False)]
            c.updated += len(changed)
            c.unchanged += len(existing[kind]) - len(changed)
            if kind == "factors":
                for r in ops["insert"] + changed:
                    if r["id"] in sources:
                        r["source_code"], r["source_origin"] = sources[r["id"]], "package"
            if ops["insert"]:
                s.execute(insert(table), ops["insert"])
            if changed:
                s.execute(update(table), changed)
        refreshed = [exp for exp, f in loop_fetches.items() if f.detail is not None or f.files]
        for i in range(0, len(refreshed), 500):
            s.execute(delete(LibArtifactFile).where(LibArtifactFile.experiment_id.in_(refreshed[i:i + 500])))
        file_rows = [row for exp in refreshed for row in loop_fetches[exp].files]
        if file_rows:
            s.execute(insert(LibArtifactFile), file_rows)
        kinds["experiments"].failed += sum(1 for f in loop_fetches.values() if f.failed)
        _derive(s, store)
        stored = s.scalar(select(func.count()).select_from(LibArtifactFile).where(LibArtifactFile.status == "stored"))
        kinds["artifacts"].unchanged = max(0, (stored or 0) - kinds["artifacts"].created)
        for kind, p in pulled.items():
            name = p.resource.name
            cur = s.get(SyncCursor, name)
            if cur is None:
                cur = SyncCursor(resource=name, updated_at_utc=now)
                s.add(cur)
            cur.watermark_utc, cur.etag_url, cur.etag, cur.updated_at_utc = p.watermark, p.etag_url, p.etag, now
        outside = [OutsideLibrary(experiment_id=e.experiment_id, materialization_status=e.materialization_status,
                                  error=e.materialization_error)
                   for e in s.scalars(select(LibExperiment).where(LibExperiment.in_library.is_(False))
                                      .order_by(LibExperiment.experiment_id))]
        finished = datetime.now(UTC)
        report = SyncReport(
            ok=run.hard_failures == 0,
            api_url=api.base_url.rstrip("/"), database=engine.dialect.name, started_at_utc=started,
            finished_at_utc=finished, seconds=round(time.perf_counter() - t0, 3), full=full, kinds=kinds,
            seconds_pull=round(t_fetch - t_pull, 3), seconds_fetch=round(t_apply - t_fetch, 3),
            seconds_apply=round(time.perf_counter() - t_apply, 3),
            files_downloaded=run.downloaded, files_reused=run.reused, bytes_downloaded=run.bytes,
            changed=sum(k.created + k.updated for n, k in kinds.items() if n in RESOURCES),
            outside_library=outside, issues=run.issues)
        s.add(SyncRun(api_url=report.api_url, started_at_utc=started, finished_at_utc=finished, ok=report.ok,
                      summary=report.model_dump(mode="json", exclude={"outside_library"})))
    return report


def _derive(s: Session, store: FileStore) -> None:
    """Library membership of factors and models follows their loop; RD-Agent factors get their source from the
    synced workspace file whose sha256 is the factor's code hash (the exact code the loop ran)."""
    done = select(LibExperiment.experiment_id).where(LibExperiment.in_library.is_(True))
    s.execute(update(LibFactor).values(in_library=(LibFactor.source != "rdagent") | LibFactor.experiment_id.in_(done)))
    s.execute(update(LibModel).values(in_library=LibModel.experiment_id.in_(done)))
    stored = select(LibArtifactFile.sha256).where(LibArtifactFile.status == "stored")
    missing = s.execute(select(LibFactor.id, LibFactor.code_sha256).where(
        LibFactor.source_code.is_(None), LibFactor.code_sha256.in_(stored))).all()
    for fid, sha in missing:
        path = store.path_for(sha)
        if not path.is_file() or path.stat().st_size > MAX_SOURCE_BYTES:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        s.execute(update(LibFactor).where(LibFactor.id == fid).values(source_code=text, source_origin="workspace"))
