"""The k2forge job service (FastAPI). Routes are versioned under /v1; OpenAPI docs at /docs.

Every job kind is the same pydantic spec the CLI uses (corpus.spec.JOB_KINDS); the service validates, confines
paths to the data root, redacts secrets, stores the job and lets the dispatcher run it in a worker process
(api.submit holds the checks). A job belongs to its token's user: another user's job is 404 on every route, and
admins (--admin) see all. Requests are bounded (api.limits, api.httpguard) and rate-limited per token.

create_app builds one replica's parts (api.deps.Service) and mounts the routers: jobs and service routes
(api.routes) and the synchronous rephrase route (api.interactive); errors are answered by api.errors.
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api import errors, interactive, metrics, routes
from api.deps import Service
from api.errors import problem
from api.events import EventHub
from api.limits import StreamSlots
from api.outputs import output_paths
from api.ratelimit import RedisRateLimiter
from api.reads import JobReader
from api.runner import Dispatcher
from api.security import STATE_DIR, RateLimiter, hash_tokens, load_tokens, worker_env
from api.settings import Settings
from api.store import JobStore
from api.submit import job_request_schema, stored_spec

log = logging.getLogger(__name__)


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
            return await problem(413, f"request body larger than {self.max_body_bytes} bytes")(scope, receive, send)
        seen, status, overflow, answered = 0, 500, False, False
        too_large = problem(413, f"request body larger than {self.max_body_bytes} bytes")

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
    tokens = hash_tokens(load_tokens(settings.tokens_env, settings.tokens_file))
    if not tokens:
        raise RuntimeError("no API tokens configured: set K2FORGE_API_TOKENS or K2FORGE_API_TOKENS_FILE")
    store = JobStore(settings.db_url)
    store.backfill_outputs(output_paths)
    dispatcher = Dispatcher(store, settings.max_workers, log_dir=settings.data_root / STATE_DIR,
                            env=lambda job: worker_env(dict(os.environ), stored_spec(job.kind, job.spec),
                                                       settings.secret_env_allowlist, settings.worker_env),
                            lease_s=settings.lease_s, max_attempts=settings.max_attempts,
                            data_root=settings.data_root)
    limiter = RedisRateLimiter(settings.redis_url, settings.rate_per_s, settings.rate_burst, settings.redis_prefix) \
        if settings.redis_url else RateLimiter(settings.rate_per_s, settings.rate_burst)
    app = FastAPI(title="k2forge", version="1", lifespan=_lifespan,
                  description="Submit and watch corpus, rephrasing, math-notes and training jobs.")
    app.state.service = Service(settings=settings, store=store, dispatcher=dispatcher, reader=JobReader(store),
                                hub=EventHub(store), limiter=limiter, tokens=tokens, admins=frozenset(settings.admins),
                                streams=StreamSlots(settings.max_streams_per_token, settings.max_streams))
    app.state.rephrase_stages = interactive.StageCache()
    app.add_middleware(GuardMiddleware, max_body_bytes=settings.max_body_bytes)
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(interactive.router)
    app.openapi = lambda: _openapi(app)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    svc: Service = app.state.service
    svc.dispatcher.start()
    yield
    svc.dispatcher.stop()
    await svc.reader.close()


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with the body of POST /v1/jobs as one variant per job kind (built on first use: spec
    modules are heavier to import than the service)."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        body = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
        body["schema"] = job_request_schema(schema["components"]["schemas"])
    return app.openapi_schema
