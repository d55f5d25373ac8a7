"""The FastAPI app: routes over the registry and the catalogs, all read-only, all answered with ETags.

Routes are plain `def`s running sync SQLAlchemy Core queries in the thread pool, one read transaction each.
Response models are declared for the OpenAPI document; bodies are serialized once by pydantic-core and returned
as bytes (no second validation pass).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from typing import Any, Literal
from urllib.parse import quote

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Connection, Engine
from starlette.middleware.gzip import GZipMiddleware

from rdbridge import __version__
from rdbridge.api import package as pkg_api
from rdbridge.api import queries
from rdbridge.api.cache import GZIP_MIN_BYTES, ResponseCache
from rdbridge.api.errors import ApiError, install_error_handlers
from rdbridge.api.files import open_registered
from rdbridge.api.guard import ReadOnlyGuard
from rdbridge.api.responses import json_response, not_modified
from rdbridge.api.settings import ApiSettings
from rdbridge.api.stamp import stamp_for
from rdbridge.catalog import alpha158_entries, factor_page, loop_page, model_page, strategy_page
from rdbridge.catalog import factors as factor_cat
from rdbridge.catalog import loops as loop_cat
from rdbridge.catalog import models as model_cat
from rdbridge.catalog import strategies as strategy_cat
from rdbridge.catalog.package_factors import PackageSnapshotError
from rdbridge.catalog.paging import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CursorError,
    Filters,
    PageRequest,
    decode_cursor,
    encode_cursor,
)
from rdbridge.contracts.api import (
    ErrorBody,
    FactorRecord,
    FactorSourceOut,
    Health,
    LoopArtifacts,
    LoopDetail,
    LoopOut,
    PackageVersions,
    Page,
    TaskRunOut,
    WorkspaceOut,
)
from rdbridge.contracts.catalog import Alpha158Entry, FactorEntry, LoopEntry, ModelEntry, StrategyEntry
from rdbridge.registry import current_revision, make_engine

Pager = Callable[[Connection, Filters, PageRequest], tuple[list[Any], list[Any] | None]]
MAX_ID = 2**31 - 1
"""Largest loop / file id (the registry's INTEGER columns): larger ones are 400, not a database overflow."""
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 405, 500)
}


def _as_utc(t: datetime) -> datetime:
    """``t`` in UTC. A moment that falls before year 1 or after year 9999 once in UTC (``0001-01-01T00:30+01:00``)
    is clamped to the first or last one Python can hold: as a lower bound it means the same, and it must not be a
    500 (schemathesis found one)."""
    try:
        return t.astimezone(timezone.utc)
    except OverflowError:
        return (datetime.min if t.year == 1 else datetime.max).replace(tzinfo=timezone.utc)


class ListArgs:
    """The query parameters every list accepts; each list documents which filters it applies."""

    def __init__(
        self,
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page."),
        cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
        source: str | None = Query(None, description="Factor origin: alpha158, package, rdagent."),
        tag: str | None = Query(None, description="Factor tag (e.g. accepted, rejected, kbar, volume)."),
        action: str | None = Query(None, description="Loop action: factor, model, quant."),
        status: str | None = Query(None, description="Run or loop status."),
        has_result: bool | None = Query(None, description="Loops with (true) or without (false) backtest metrics."),
        materialization_status: str | None = Query(None, description="pending, running, done, failed."),
        task_run_id: str | None = Query(None, description="Only this task run."),
        kind: str | None = Query(None, description="Workspace kind: factor, model, experiment, unknown."),
        q: str | None = Query(None, max_length=200, description="Case-insensitive text search."),
        updated_since: datetime | None = Query(None, description="Only items updated at or after (ISO-8601 with "
                                               "zone) - for incremental sync."),
    ) -> None:
        if updated_since is not None:
            if updated_since.utcoffset() is None:
                raise ApiError(400, "bad_request", "updated_since needs a time zone (e.g. 2025-01-01T00:00:00Z)")
            updated_since = _as_utc(updated_since)
        self.limit, self.cursor = limit, cursor
        self.filters = Filters(source=source, tag=tag, action=action, status=status, has_result=has_result,
                               materialization_status=materialization_status, task_run_id=task_run_id, kind=kind,
                               q=q or None, updated_since=updated_since)

    def page(self, scope: str, types: tuple[type, ...]) -> PageRequest:
        try:
            after = decode_cursor(scope, self.cursor, types) if self.cursor else None
        except CursorError as exc:
            raise ApiError(400, "bad_cursor", str(exc)) from None
        return PageRequest(limit=self.limit, after=after)


def create_app(settings: ApiSettings | None = None, engine: Engine | None = None) -> FastAPI:
    """The API over the registry at `settings.db_url` (or `engine`)."""
    settings = settings or ApiSettings.from_env()
    engine = engine or make_engine(settings.db_url)
    store_root = settings.store_root()
    app = FastAPI(title="rdbridge Results API", version=__version__, openapi_url=None, docs_url=None,
                  redoc_url=None, responses=_ERRORS,
                  description="Read-only API over the rdbridge registry: runs, loops, artifacts, factors, catalogs.")
    install_error_handlers(app)
    app.state.engine = engine

    factors_of = partial(factor_page, sources=factor_cat.factor_sources(store_root))
    strategies_of = partial(strategy_page, store_root=store_root)
    models_of = partial(model_page, store_root=store_root)

    def _list(request: Request, args: ListArgs, scope: str, types: tuple[type, ...], pager: Pager,
              item: Any) -> Response:
        page = args.page(scope, types)
        with engine.connect() as conn:
            try:
                items, last = pager(conn, args.filters, page)
            except PackageSnapshotError as exc:
                raise ApiError(409, "snapshot_unreadable", str(exc)) from None
        doc = Page[item](items=items, limit=args.limit,  # type: ignore[valid-type]
                         next_cursor=encode_cursor(scope, last) if last is not None else None)
        return json_response(request, doc)

    @app.get("/health", response_model=Health, tags=["meta"])
    def health(request: Request) -> Response:
        """Liveness and the registry's schema revision (open even when a token is set)."""
        rev = current_revision(engine)
        return json_response(request, Health(ok=True, version=__version__, database=engine.dialect.name,
                                             schema_revision=rev))

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> Response:
        return json_response(request, app.openapi(), model=dict[str, Any])

    @app.get("/task_runs", response_model=Page[TaskRunOut], tags=["registry"])
    def task_runs(request: Request, args: ListArgs = Depends()) -> Response:
        """RD-Agent runs by id. Filters: status, q (id, scenario), updated_since."""
        return _list(request, args, "task_runs", (str,), queries.task_runs, TaskRunOut)

    @app.get("/loops", response_model=Page[LoopOut], tags=["registry"])
    def loops(request: Request, args: ListArgs = Depends()) -> Response:
        """Loops in registry order. Filters: action, status, has_result, materialization_status, task_run_id,
        q (experiment id, hypothesis), updated_since."""
        return _list(request, args, "loops", (int,), queries.loops, LoopOut)

    @app.get("/workspaces", response_model=Page[WorkspaceOut], tags=["registry"])
    def workspaces(request: Request, args: ListArgs = Depends()) -> Response:
        """Workspaces by id (no server paths). Filters: task_run_id, kind, updated_since."""
        return _list(request, args, "workspaces", (str,), queries.workspaces, WorkspaceOut)

    @app.get("/loops/{task_run_id}/{loop_id}", response_model=LoopDetail, tags=["registry"])
    def loop(request: Request, task_run_id: str, loop_id: int = Path(ge=0, le=MAX_ID)) -> Response:
        """One loop: hypothesis, feedback, metrics, tasks, factor ids."""
        return json_response(request, _loop_doc(queries.loop_detail, task_run_id, loop_id))

    @app.get("/loops/{task_run_id}/{loop_id}/artifacts", response_model=LoopArtifacts, tags=["registry"])
    def loop_artifacts(request: Request, task_run_id: str, loop_id: int = Path(ge=0, le=MAX_ID)) -> Response:
        """The loop's artifacts; each file with size, sha256 and its download URL (by file id)."""
        return json_response(request, _loop_doc(queries.loop_artifacts, task_run_id, loop_id))

    def _loop_doc(query: Callable[[Connection, str, int], Any], task_run_id: str, loop_id: int) -> Any:
        """One loop's document from `query`, or the 404 every per-loop route gives for an unknown loop."""
        with engine.connect() as conn:
            doc = query(conn, task_run_id, loop_id)
        if doc is None:
            raise ApiError(404, "not_found", f"no loop {loop_id} in task run {task_run_id!r}")
        return doc

    @app.get("/files/{file_id:int}", tags=["registry"], response_class=Response,
             responses={200: {"content": {"*/*": {}}, "description": "The file's bytes, as its registered media type"}, 403: {"model": ErrorBody},
                        409: {"model": ErrorBody}})
    def download(request: Request, file_id: int = Path(ge=1, le=MAX_ID)) -> Response:
        """The bytes of one registered artifact file (checked against its registered size and sha256)."""
        with engine.connect() as conn:
            meta = queries.registered_file(conn, file_id)
        if meta is None:
            raise ApiError(404, "not_found", f"no artifact file {file_id}")
        opened = open_registered(file_id, meta, store_root)
        headers = {"ETag": f'"{opened.sha256}"', "Cache-Control": "no-cache",
                   "Content-Disposition": f"attachment; filename*=UTF-8''{quote(opened.filename)}",
                   "X-Content-Type-Options": "nosniff"}
        if not_modified(request, headers["ETag"]):
            opened.close()
            return Response(status_code=304, headers=headers)
        if opened.body is not None:
            opened.close()
            return Response(opened.body, media_type=opened.mime_type, headers=headers)
        headers["Content-Length"] = str(opened.size)
        return StreamingResponse(opened.chunks(), media_type=opened.mime_type, headers=headers)

    @app.get("/factors/{name:path}", response_model=FactorRecord, tags=["factors"])
    def factor(request: Request, name: str) -> Response:
        """Everything known under one factor name (URL-encode it: names are unicode text, `/` allowed)."""
        with engine.connect() as conn:
            doc = queries.factor_record(conn, name)
        if doc is None:
            raise ApiError(404, "not_found", "no factor of that name")
        return json_response(request, doc)

    @app.get("/factor_package/versions", response_model=PackageVersions, tags=["factor package"])
    def package_versions(request: Request) -> Response:
        """Every registered rd_factors_lib version: sha256 and size of its snapshot, factors added / changed."""
        with engine.connect() as conn:
            return json_response(request, pkg_api.versions(conn))

    @app.get("/factor_package/bundle", tags=["factor package"], response_class=Response,
             responses={200: {"content": {"application/gzip": {}, "application/zip": {}},
                              "description": "The version's snapshot: the registered tar.gz bytes, or a zip of "
                                             "the same files"},
                        403: {"model": ErrorBody}, 409: {"model": ErrorBody}})
    def package_bundle(request: Request, version: str = Query(..., min_length=1, max_length=64),
                       format: Literal["tar.gz", "zip"] = Query("tar.gz")) -> Response:  # noqa: A002
        """The exact registered snapshot of one version (sha256-checked); zip: the same files, deterministic."""
        with engine.connect() as conn:
            snap = pkg_api.read_snapshot(conn, version, store_root)
        zipped = format == "zip"
        safe = "".join(ch if ch.isalnum() or ch in ".-_+" else "_" for ch in snap.version)
        headers = {"ETag": f'"{snap.sha256}{"-zip" if zipped else ""}"', "Cache-Control": "no-cache",
                   "Content-Disposition": f"attachment; filename=rd_factors_lib-{safe}.{format}",
                   "X-Content-Type-Options": "nosniff", "X-Snapshot-Sha256": snap.sha256}
        if not_modified(request, headers["ETag"]):
            return Response(status_code=304, headers=headers)
        body = pkg_api.as_zip(snap.data) if zipped else snap.data
        return Response(body, media_type="application/zip" if zipped else pkg_api.SNAPSHOT_MEDIA_TYPE,
                        headers=headers)

    @app.get("/factor_package/source/{name:path}", response_model=FactorSourceOut, tags=["factor package"],
             responses={409: {"model": ErrorBody}})
    def package_source(request: Request, name: str,
                       version: str = Query(..., min_length=1, max_length=64)) -> Response:
        """The source text of the function registering factor `name` at `version` (URL-encode the name), read
        from the snapshot as text; the package is never imported."""
        with engine.connect() as conn:
            snap = pkg_api.read_snapshot(conn, version, store_root)
        return json_response(request, pkg_api.factor_source(snap, name))

    @app.get("/alpha158/meta", response_model=list[Alpha158Entry], tags=["factors"])
    def alpha158_meta(request: Request) -> Response:
        """All 158 Alpha158 factors: name, expression, group, window, description, package pointer."""
        return json_response(request, list(alpha158_entries()), model=list[Alpha158Entry])

    @app.get("/catalog/factors", response_model=Page[FactorEntry], tags=["catalog"])
    def catalog_factors(request: Request, args: ListArgs = Depends()) -> Response:
        """Alpha158, then the factor package's curated factors, then RD-Agent factors. Filters: source, tag, q,
        updated_since; action and has_result (RD-Agent factors: their loop's)."""
        return _list(request, args, factor_cat.SCOPE, factor_cat.CURSOR_TYPES, factors_of, FactorEntry)

    @app.get("/catalog/loops", response_model=Page[LoopEntry], tags=["catalog"])
    def catalog_loops(request: Request, args: ListArgs = Depends()) -> Response:
        """Loops with key metrics, decision, materialization state and artifacts. Filters as /loops."""
        return _list(request, args, loop_cat.SCOPE, loop_cat.CURSOR_TYPES, loop_page, LoopEntry)

    @app.get("/catalog/strategies", response_model=Page[StrategyEntry], tags=["catalog"])
    def catalog_strategies(request: Request, args: ListArgs = Depends()) -> Response:
        """Distinct strategy configurations (materialized loops: by strategy.json). Filters: task_run_id,
        has_result, q (config file name, strategy class), updated_since."""
        return _list(request, args, strategy_cat.SCOPE, strategy_cat.CURSOR_TYPES, strategies_of,
                     StrategyEntry)

    @app.get("/catalog/models", response_model=Page[ModelEntry], tags=["catalog"])
    def catalog_models(request: Request, args: ListArgs = Depends()) -> Response:
        """Model tasks with loop metrics and the Qlib model of model_meta.json. Filters: has_result, task_run_id,
        q, updated_since."""
        return _list(request, args, model_cat.SCOPE, model_cat.CURSOR_TYPES, models_of, ModelEntry)

    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES, compresslevel=5)  # downloads (not cached)
    stamp, threaded = stamp_for(engine)
    app.add_middleware(ResponseCache, stamp=stamp, threaded_stamp=threaded, max_bytes=settings.cache_bytes)
    app.add_middleware(ReadOnlyGuard, token=settings.token)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings from the environment `rdbridge serve` prepared."""
    return create_app(ApiSettings.from_env())


