"""The platform web UI: FastAPI + Jinja2, server-rendered, one route per page, readable without JavaScript.

It reads the platform database sync fills and writes only the user's annotations (POST forms with CSRF tokens).
Every value is escaped by Jinja2's autoescape (names and feedback are LLM text); the Content-Security-Policy allows
no inline script at all. Files are served by (loop, file id) from the synced store, never by a path from the URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rdbridge.consumer import library as lib
from rdbridge.consumer.db import default_store_dir, init_platform_db, session_scope
from rdbridge.consumer.filestore import FileStore
from rdbridge.consumer.verdicts import STATUSES as VERDICT_STATUSES
from rdbridge.consumer.verdicts import latest as latest_verdicts
from rdbridge.ui import csrf
from rdbridge.ui.render import as_json, num, pygments_css, python_html

HERE = Path(__file__).parent
PER_PAGE = 50
MAX_FORM_BYTES = 64 * 1024
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
CSP = ("default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def _q(value: Any) -> str:
    return quote(str(value), safe="")


def factor_url(name: str) -> str:
    return "/factors/" + _q(name)


def experiment_url(task_run_id: str, loop_id: int) -> str:
    return f"/experiments/{_q(task_run_id)}/{int(loop_id)}"


async def _form(request: Request) -> dict[str, str]:
    """The fields of an application/x-www-form-urlencoded POST (the only kind of form the pages send)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise HTTPException(415, "forms are sent as application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise HTTPException(400, "the form is not UTF-8") from None
    return dict(pairs)


def _number(text: str, field: str) -> float | None:
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise HTTPException(400, f"{field} must be a number, got {text!r}") from None


def _annotations(s: Any, kind: str, key: str) -> dict[str, Any]:
    """What a detail page shows beside any record: its tags, mark and notes, and the (kind, key) its forms post."""
    return {"tags": lib.tags_by_key(s, kind, [key]).get(key, []), "mark": lib.marks_by_key(s, kind, [key]).get(key, ""),
            "notes": lib.notes(s, kind, key), "kind": kind, "key": key}


def create_app(db_url: str, store_dir: Path | None = None) -> FastAPI:
    engine = init_platform_db(db_url)
    store = FileStore(store_dir or default_store_dir(db_url))
    app = FastAPI(title="rdbridge platform", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    env = templates.env
    env.autoescape = True
    env.filters.update(urlq=_q, num=num, as_json=as_json)
    env.globals.update(factor_url=factor_url, experiment_url=experiment_url, MARKS=lib.MARKS)
    css = pygments_css()

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    def render(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
        token, new = csrf.token_for(request)
        ctx = dict(ctx, request=request, csrf_token=token, csrf_field=csrf.FIELD)
        response = templates.TemplateResponse(request, name, ctx, status_code=status)
        if new:
            response.set_cookie(csrf.COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return render(request, "error.html", {"status": exc.status_code, "message": exc.detail}, exc.status_code)

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/factors", status_code=307)

    @app.get("/pygments.css", include_in_schema=False)
    def pyg_css() -> PlainTextResponse:
        return PlainTextResponse(css, media_type="text/css")

    @app.get("/factors", response_class=HTMLResponse)
    def factors(request: Request, q: str = "", source: str = "", tag: str = "", mark: str = "", sort: str = "name",
                desc: bool = False, page: int = Query(1, ge=1, le=1_000_000), metric: str = "",
                min: str = "", max: str = "", verdict: str = "") -> HTMLResponse:  # noqa: A002 - query names
        lo, hi = _number(min, "min"), _number(max, "max")
        if verdict and verdict not in VERDICT_STATUSES:
            raise HTTPException(400, f"verdict must be one of {', '.join(VERDICT_STATUSES)}")
        with session_scope(engine, write=False) as s:
            result = lib.list_factors(s, q=q, source=source, tag=tag, mark=mark, sort=sort, desc=desc, page=page,
                                      per_page=PER_PAGE, metric=metric, metric_min=lo, metric_max=hi,
                                      verdict=verdict)
            metric_keys = lib.metric_keys(s)
            names = sorted({f.name for f in result.rows})
            tags, marks = lib.tags_by_key(s, "factor", names), lib.marks_by_key(s, "factor", names)
            all_sources, all_tags, last = lib.sources(s), lib.all_tags(s), lib.last_sync(s)
            page_verdicts = latest_verdicts(s, names)
        base = {k: v for k, v in {"q": q, "source": source, "tag": tag, "mark": mark, "sort": sort, "verdict": verdict,
                                  "desc": "true" if desc else "", "metric": metric, "min": min,
                                  "max": max}.items() if v}

        def link(**changes: Any) -> str:
            params = {**base, **{k: v for k, v in changes.items()}}
            return "/factors?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

        return render(request, "factors.html", {
            "result": result, "tags": tags, "marks": marks, "q": q, "source": source, "tag": tag, "mark": mark,
            "sort": sort, "desc": desc, "sources": all_sources, "all_tags": all_tags, "link": link, "last": last,
            "sorts": [*lib.FACTOR_SORTS, "metric"], "metric": metric, "metric_keys": metric_keys, "min": min,
            "max": max, "verdict": verdict, "verdicts": page_verdicts, "verdict_statuses": VERDICT_STATUSES})

    @app.get("/factors/{name:path}", response_class=HTMLResponse)
    def factor(request: Request, name: str) -> HTMLResponse:
        with session_scope(engine, write=False) as s:
            versions = lib.factor_versions(s, name)
            if not versions:
                raise HTTPException(404, f"no factor named {name!r} in the library")
            exps = {v.experiment_id for v in versions if v.experiment_id}
            loops = {e.experiment_id: e for e in lib.experiments(s) if e.experiment_id in exps}
            notes = _annotations(s, "factor", name)
            verdict = latest_verdicts(s, [name]).get(name)
        highlighted = {v.id: python_html(v.source_code) for v in versions if v.source_code}
        return render(request, "factor.html", {"name": name, "versions": versions, "loops": loops,
                                             "highlighted": highlighted, "verdict": verdict, **notes})

    @app.get("/experiments", response_class=HTMLResponse)
    def experiments(request: Request, status: str = "", task_run: str = "") -> HTMLResponse:
        with session_scope(engine, write=False) as s:
            rows = lib.experiments(s, status=status, task_run=task_run)
        runs: dict[str, list[Any]] = {}
        for r in rows:
            runs.setdefault(r.task_run_id, []).append(r)
        return render(request, "experiments.html", {"runs": runs, "status": status, "task_run": task_run})

    @app.get("/experiments/{task_run_id}/{loop_id}", response_class=HTMLResponse)
    def experiment(request: Request, task_run_id: str, loop_id: int) -> HTMLResponse:
        with session_scope(engine, write=False) as s:
            exp = lib.experiment(s, task_run_id, loop_id)
            if exp is None:
                raise HTTPException(404, f"no loop {task_run_id}/{loop_id} in the platform database")
            files = lib.experiment_files(s, exp.experiment_id)
            factors_ = lib.experiment_factors(s, exp.experiment_id)
            notes = _annotations(s, "experiment", exp.experiment_id)
        charts = [f for f in files if f.status == "stored" and (f.mime_type in INLINE_TYPES)]
        detail = exp.detail or {}
        return render(request, "experiment.html", {
            "exp": exp, "files": files, "charts": charts, "factors": factors_, "detail": detail,
            "feedback": detail.get("feedback") or {}, "hypothesis_doc": detail.get("hypothesis_doc") or {},
            "tasks": detail.get("tasks") or [], **notes})

    @app.get("/experiments/{task_run_id}/{loop_id}/files/{file_id}")
    def experiment_file(task_run_id: str, loop_id: int, file_id: int) -> Response:
        with session_scope(engine, write=False) as s:
            exp = lib.experiment(s, task_run_id, loop_id)
            f = lib.artifact_file(s, exp.experiment_id, file_id) if exp else None
        if f is None or f.status != "stored" or not f.sha256:
            raise HTTPException(404, "no such file in the platform store")
        path = store.path_for(f.sha256)
        if not path.is_file():
            raise HTTPException(404, "the file is registered but missing from the store: run rdbridge sync")
        inline = f.mime_type in INLINE_TYPES
        filename = Path(f.path).name or "file"
        return FileResponse(path, media_type=f.mime_type if inline else "application/octet-stream",
                            filename=None if inline else filename,
                            content_disposition_type="inline" if inline else "attachment")

    @app.get("/strategies", response_class=HTMLResponse)
    def strategies(request: Request) -> HTMLResponse:
        with session_scope(engine, write=False) as s:
            rows = lib.strategies(s)
        return render(request, "strategies.html", {"rows": rows})

    @app.get("/strategies/{strategy_id}", response_class=HTMLResponse)
    def strategy(request: Request, strategy_id: str) -> HTMLResponse:
        with session_scope(engine, write=False) as s:
            row = lib.strategy(s, strategy_id)
            if row is None:
                raise HTTPException(404, f"no strategy {strategy_id!r}")
            notes = _annotations(s, "strategy", strategy_id)
        return render(request, "strategy.html", {"row": row, **notes})

    @app.get("/models", response_class=HTMLResponse)
    def models(request: Request) -> HTMLResponse:
        with session_scope(engine, write=False) as s:
            rows = lib.models(s)
        return render(request, "models.html", {"rows": rows})

    @app.get("/models/{task_run_id}/{loop_id}/{task_index}", response_class=HTMLResponse)
    def model(request: Request, task_run_id: str, loop_id: int, task_index: int) -> HTMLResponse:
        exp_id = f"{task_run_id}/{loop_id}"
        key = f"{exp_id}#{task_index}"
        with session_scope(engine, write=False) as s:
            row = lib.model(s, exp_id, task_index)
            if row is None:
                raise HTTPException(404, f"no model {key!r}")
            notes = _annotations(s, "model", key)
        return render(request, "model.html", {"row": row, **notes})

    @app.get("/alpha158", response_class=HTMLResponse)
    def alpha158(request: Request) -> HTMLResponse:
        with session_scope(engine, write=False) as s:
            rows = lib.alpha158(s)
        return render(request, "alpha158.html", {"rows": rows})

    def _write(op: Any, kind: str, key: str, value: str) -> None:
        with session_scope(engine) as s:
            op(s, kind, key, value)

    def _target_url(kind: str, key: str) -> str:
        if kind == "factor":
            return factor_url(key)
        if kind == "experiment":
            run, _, loop = key.rpartition("/")
            return experiment_url(run, int(loop)) if loop.isdigit() else "/experiments"
        if kind == "strategy":
            return "/strategies/" + _q(key)
        if kind == "model":
            exp, _, idx = key.rpartition("#")
            run, _, loop = exp.rpartition("/")
            return f"/models/{_q(run)}/{loop}/{idx}" if loop.isdigit() and idx.isdigit() else "/models"
        return "/factors"

    @app.post("/annotate")
    async def annotate(request: Request) -> Response:
        form = await _form(request)
        kind, key, action, value = (form.get(k, "") for k in ("kind", "key", "action", "value"))
        if not csrf.check(request, form.get(csrf.FIELD)):
            raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page and try again")
        ops = {"tag": lib.add_tag, "untag": lib.remove_tag, "mark": lib.set_mark, "note": lib.add_note}
        if action not in ops:
            raise HTTPException(400, f"unknown action {action!r}")
        try:
            await run_in_threadpool(_write, ops[action], kind, key, value)
        except lib.AnnotationError as exc:
            raise HTTPException(400, str(exc)) from None
        return RedirectResponse(_target_url(kind, key), status_code=303)

    return app
