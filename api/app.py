"""The k2forge job service (FastAPI). Routes are versioned under /v1; OpenAPI docs at /docs.

Every job kind is the same pydantic spec the CLI uses (corpus.spec.JOB_KINDS); the service validates, confines
paths to the data root, redacts secrets, stores the job and lets the dispatcher run it in a worker process
(api.submit holds the checks). A job belongs to its token's user: another user's job is 404 on every route, and
admins (--admin) see all. Requests are bounded (api.limits, api.httpguard) and rate-limited per token.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import metrics
from api.events import EventHub, EventStream, event_stream
from api.limits import StreamSlots
from api.outputs import describe_outputs, output_paths
from api.ratelimit import RedisRateLimiter
from api.reads import JobReader
from api.runner import Dispatcher
from api.security import STATE_DIR, RateLimiter, check_token, hash_tokens, load_tokens, worker_env
from api.settings import Settings
from api.submit import check_outputs, conflict_message, job_request_schema, validate_job
from api.store import TERMINAL, JobStore, OutputConflict, new_job_id
from corpus.spec import JOB_KINDS

log = logging.getLogger(__name__)


#: the registered job kinds, as an enum in the OpenAPI schema (corpus.spec is light: pydantic and yaml)
JobKind = Literal[tuple(sorted(JOB_KINDS))]


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")    # a misspelt top-level field is an error, not silently dropped
    kind: JobKind = Field(description="the job kind; `spec` holds that kind's spec")
    spec: dict[str, Any] = Field(default_factory=dict, description="the job kind's spec, as for the CLI --spec")


class JobOut(BaseModel):
    id: str
    kind: str
    owner: str = Field(description="the user (token name) that submitted the job")
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    spec: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    attempts: int
    cancel_requested: bool
    created_at: str
    updated_at: str


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="where: body/query/path, then the field path")
    msg: str
    type: str = "value_error"


class ValidationProblem(BaseModel):
    detail: list[ErrorItem]


class Problem(BaseModel):
    detail: str


def _errors(*codes: int) -> dict[int, dict]:
    """OpenAPI entries for the error statuses a route can answer (every one is a JSON `detail`)."""
    what = {401: "no bearer token", 403: "invalid token", 404: "no such job (or another user's)",
            409: "conflict with the job's state, its output's owner or an Idempotency-Key",
            413: "request body too large", 422: "invalid request", 429: "rate limit or stream limit exceeded",
            503: "this replica holds as many event streams as it serves; retry later or on another replica"}
    return {c: {"model": ValidationProblem if c == 422 else Problem, "description": what[c]} for c in codes}


_AUTH = (401, 403, 429)


class JobList(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


def _problem(status: int, detail: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


class GuardMiddleware:
    """Pure ASGI: refuse bodies over the limit (declared or streamed) with 413, record per-route metrics."""

    def __init__(self, app, max_body_bytes: int):
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            return await _problem(413, f"request body larger than {self.max_body_bytes} bytes")(scope, receive, send)
        seen, status, overflow, answered = 0, 500, False, False
        too_large = _problem(413, f"request body larger than {self.max_body_bytes} bytes")

        async def limited_receive():
            nonlocal seen, overflow
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:
                overflow = True
                raise _BodyTooLarge
            return message

        async def recording_send(message):
            nonlocal status, answered
            if overflow:    # FastAPI turns an error while reading the body into its own 400: answer 413 instead
                if not answered:
                    answered, status = True, 413
                    await too_large(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, recording_send)
        except _BodyTooLarge:
            if not answered:
                status = 413
                await too_large(scope, receive, send)
        route = scope.get("route")
        metrics.observe(scope["method"], getattr(route, "path", "unmatched"), status, time.perf_counter() - start)


class _BodyTooLarge(Exception):
    pass


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = (settings or Settings()).resolved()
    store = JobStore(settings.db_url)
    store.backfill_outputs(output_paths)
    dispatcher = Dispatcher(store, settings.max_workers, log_dir=settings.data_root / STATE_DIR,
                            env=lambda spec: worker_env(dict(os.environ), spec, settings.secret_env_allowlist,
                                                        settings.worker_env),
                            lease_s=settings.lease_s, max_attempts=settings.max_attempts,
                            data_root=settings.data_root)
    tokens = hash_tokens(load_tokens(settings.tokens_env, settings.tokens_file))
    limiter = RedisRateLimiter(settings.redis_url, settings.rate_per_s, settings.rate_burst, settings.redis_prefix) \
        if settings.redis_url else RateLimiter(settings.rate_per_s, settings.rate_burst)
    streams = StreamSlots(settings.max_streams_per_token, settings.max_streams)
    hub = EventHub(store)
    reader = JobReader(store)
    if not tokens:
        raise RuntimeError("no API tokens configured: set K2FORGE_API_TOKENS or K2FORGE_API_TOKENS_FILE")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        dispatcher.start()
        yield
        dispatcher.stop()
        await reader.close()

    app = FastAPI(title="k2forge", version="1", lifespan=lifespan,
                  description="Submit and watch corpus, rephrasing, math-notes and training jobs.")
    app.state.store, app.state.dispatcher, app.state.settings = store, dispatcher, settings

    app.add_middleware(GuardMiddleware, max_body_bytes=settings.max_body_bytes)

    async def principal(authorization: str | None = Header(None)) -> str:  # async: no thread hop, no blocking
        status, who = check_token(authorization, tokens)
        if status == 401:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        if status == 403:
            raise HTTPException(403, "invalid token")
        # Redis is a network round trip: in a thread, so the event loop serves other requests meanwhile
        allowed = await asyncio.to_thread(limiter.allow, who) if settings.redis_url else limiter.allow(who)
        if not allowed:
            raise HTTPException(429, "rate limit exceeded", headers={"Retry-After": "1"})
        return who

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException):
        # FastAPI answers JSON its parser cannot take (nested beyond the recursion limit) with a bare 400
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return _problem(422, [{"loc": ["body"], "msg": "JSON body could not be parsed (nested too deeply?)",
                                   "type": "json_invalid"}])
        if exc.status_code == 405:      # Starlette names only the first route's methods; a path may have several
            allowed = sorted({m for r in app.routes if getattr(r, "methods", None)
                              and r.path_regex.match(request.url.path) for m in r.methods})
            return JSONResponse(status_code=405, content={"detail": exc.detail}, headers={"Allow": ", ".join(allowed)})
        if exc.status_code == 422 and isinstance(exc.detail, list):    # every 422 item has the documented type
            return _problem(422, [{"type": "value_error", **e} for e in exc.detail])
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError):
        return _problem(422, [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()])

    admins = frozenset(settings.admins)

    def _may_see(owner: str, who: str) -> bool:
        return owner == who or who in admins

    def _job_or_404(job_id: str, who: str):
        """The job if `who` may see it; another user's job is 404, exactly like a missing one (no probing)."""
        job = store.get(job_id)
        if job is None or not _may_see(job.owner, who):
            raise HTTPException(404, f"job {job_id} not found")
        return job

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict:
        return {"ok": True, "jobs": store.counts()}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse, responses=_errors(*_AUTH))
    def get_metrics(who: str = Depends(principal)) -> PlainTextResponse:
        return PlainTextResponse(metrics.render(store.counts()), media_type=metrics.CONTENT_TYPE)

    @app.post("/v1/jobs", status_code=201, response_model=JobOut, tags=["jobs"],
              responses={200: {"model": JobOut, "description": "existing job for this Idempotency-Key"},
                         **_errors(*_AUTH, 409, 413, 422)})
    def submit(req: JobRequest, who: str = Depends(principal),
               idempotency_key: str | None = Header(None, max_length=200)):
        redacted, secrets = validate_job(req.kind, req.spec, settings)
        key = f"{who}:{idempotency_key}" if idempotency_key else None
        existing = store.by_idempotency_key(key) if key else None
        outputs = output_paths(req.kind, redacted)
        if existing is None:
            check_outputs(store, settings.data_root, outputs, redacted, who)
        job_id = new_job_id()
        if secrets:     # before the job is committed: the dispatcher may launch it at once
            dispatcher.secrets[job_id] = secrets
        try:
            job, created = store.create(req.kind, redacted, who, key, job_id=job_id, outputs=outputs)
        except OutputConflict as e:
            dispatcher.secrets.pop(job_id, None)
            raise HTTPException(409, conflict_message(e, settings.data_root)) from None
        if not created:
            dispatcher.secrets.pop(job_id, None)
            if job.kind != req.kind or job.spec != redacted:
                raise HTTPException(409, "Idempotency-Key was already used for a different job")
            return JSONResponse(status_code=200, content=job.to_dict())
        return job.to_dict()

    @app.get("/v1/jobs", response_model=JobList, tags=["jobs"], responses=_errors(*_AUTH, 422))
    def list_jobs(state: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
                  kind: str | None = Query(None, max_length=32), limit: int = Query(50, ge=1, le=500),
                  offset: int = Query(0, ge=0, le=10**9), who: str = Depends(principal)):
        rows, total = store.list(state, kind, limit, offset, owner=None if who in admins else who)
        return {"jobs": [j.to_dict() for j in rows], "total": total, "limit": limit, "offset": offset}

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, tags=["jobs"], responses=_errors(*_AUTH, 404, 422))
    async def get_job(job_id: str, who: str = Depends(principal)):
        # The hottest route (clients poll it): one primary-key read of a small row that never blocks the event
        # loop (api.reads), serialised directly: the row already has JobOut's shape.
        row = await reader.get(job_id)
        if row is None or not _may_see(row["owner"], who):
            raise HTTPException(404, f"job {job_id} not found")
        return JSONResponse(row)

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"],
              responses=_errors(*_AUTH, 404, 409, 422))
    def cancel(job_id: str, who: str = Depends(principal)):
        job = _job_or_404(job_id, who)
        if job.state in TERMINAL:
            raise HTTPException(409, f"job {job_id} is already {job.state}")
        dispatcher.cancel(job_id)
        return _job_or_404(job_id, who).to_dict()

    @app.get("/v1/jobs/{job_id}/outputs", tags=["jobs"], responses=_errors(*_AUTH, 404, 409, 422))
    def outputs(job_id: str, who: str = Depends(principal)) -> dict:
        job = _job_or_404(job_id, who)
        if job.state != "succeeded":
            raise HTTPException(409, f"job {job_id} is {job.state}; outputs exist once it succeeded")
        return {"job_id": job_id, "outputs": describe_outputs(job.result or {}, settings.data_root)}

    @app.get("/v1/jobs/{job_id}/events", tags=["jobs"],
             responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
                        **_errors(*_AUTH, 404, 422, 503)})
    async def events(job_id: str, who: str = Depends(principal), last_event_id: str | None = Header(None)):
        row = await reader.get(job_id)
        if row is None or not _may_see(row["owner"], who):
            raise HTTPException(404, f"job {job_id} not found")
        after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
        refused = streams.acquire(who)
        if refused == "token":
            raise HTTPException(429, f"at most {streams.per_key} event streams at once per token",
                                headers={"Retry-After": "5"})
        if refused == "replica":
            raise HTTPException(503, f"this replica serves at most {streams.total} event streams at once",
                                headers={"Retry-After": "5"})
        return EventStream(event_stream(store, hub, job_id, after), release=lambda: streams.release(who),
                           send_timeout_s=settings.stream_send_timeout_s)

    from api.interactive import add_interactive_routes
    add_interactive_routes(app, principal, settings)
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            body = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
            body["schema"] = job_request_schema(schema["components"]["schemas"])
        return app.openapi_schema

    app.openapi = openapi
    return app
