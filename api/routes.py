"""The job routes (/v1/jobs...) and the service routes (/healthz, /metrics), as module-level functions on `router`.

Each route takes what it uses through FastAPI `Depends` (api.deps): the store, the settings or the whole
service, and the calling user (`principal`). A job belongs to its token's user: another user's job is 404 on
every route, and admins see all. Errors follow api.errors.
"""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from api import metrics
from api.deps import Service, get_service, get_store, principal
from api.errors import AUTH, responses
from api.events import EventStream, event_stream
from api.outputs import describe_outputs, output_paths
from api.store import TERMINAL, JobStore, OutputConflict, new_job_id
from api.submit import check_outputs, conflict_message, validate_job
from corpus.events import STATES
from corpus.spec import JOB_KINDS

#: the registered job kinds, as an enum in the OpenAPI schema (corpus.spec is light: pydantic and yaml)
JobKind = Literal[tuple(sorted(JOB_KINDS))]
JobState = Literal[STATES]


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")    # a misspelt top-level field is an error, not silently dropped
    kind: JobKind = Field(description="the job kind; `spec` holds that kind's spec")
    spec: dict[str, Any] = Field(default_factory=dict, description="the job kind's spec, as for the CLI --spec")


class JobOut(BaseModel):
    id: str
    kind: str
    owner: str = Field(description="the user (token name) that submitted the job")
    state: JobState
    spec: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    attempts: int
    cancel_requested: bool
    created_at: str
    updated_at: str


class JobList(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


router = APIRouter()


@router.get("/healthz", tags=["service"])
def healthz(store: JobStore = Depends(get_store)) -> dict:
    return {"ok": True, "jobs": store.counts()}


@router.get("/metrics", tags=["service"], response_class=PlainTextResponse, responses=responses(*AUTH))
def get_metrics(who: str = Depends(principal), store: JobStore = Depends(get_store)) -> PlainTextResponse:
    return PlainTextResponse(metrics.render(store.counts()), media_type=metrics.CONTENT_TYPE)


@router.post("/v1/jobs", status_code=201, response_model=JobOut, tags=["jobs"],
             responses={200: {"model": JobOut, "description": "existing job for this Idempotency-Key"},
                        **responses(*AUTH, 409, 413, 422)})
def submit(req: JobRequest, who: str = Depends(principal),
           idempotency_key: str | None = Header(None, max_length=200), svc: Service = Depends(get_service)):
    store, settings, secrets_of = svc.store, svc.settings, svc.dispatcher.secrets
    redacted, secrets, inputs = validate_job(req.kind, req.spec, settings)
    key = f"{who}:{idempotency_key}" if idempotency_key else None
    existing = store.by_idempotency_key(key) if key else None
    outputs = output_paths(req.kind, redacted)
    if existing is None:
        check_outputs(store, settings.data_root, outputs, inputs, who)
    job_id = new_job_id()
    if secrets:     # before the job is committed: the dispatcher may launch it at once
        secrets_of[job_id] = secrets
    try:
        job, created = store.create(req.kind, redacted, who, key, job_id=job_id, outputs=outputs)
    except OutputConflict as e:
        secrets_of.pop(job_id, None)
        raise HTTPException(409, conflict_message(e, settings.data_root)) from None
    if not created:
        secrets_of.pop(job_id, None)
        if job.kind != req.kind or job.spec != redacted:
            raise HTTPException(409, "Idempotency-Key was already used for a different job")
        return JSONResponse(status_code=200, content=job.to_dict())
    return job.to_dict()


@router.get("/v1/jobs", response_model=JobList, tags=["jobs"], responses=responses(*AUTH, 422))
def list_jobs(state: JobState | None = None, kind: str | None = Query(None, max_length=32),
              limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9),
              who: str = Depends(principal), svc: Service = Depends(get_service)):
    rows, total = svc.store.list(state, kind, limit, offset, owner=None if who in svc.admins else who)
    return {"jobs": [j.to_dict() for j in rows], "total": total, "limit": limit, "offset": offset}


@router.get("/v1/jobs/{job_id}", response_model=JobOut, tags=["jobs"], responses=responses(*AUTH, 404, 422))
async def get_job(job_id: str, who: str = Depends(principal), svc: Service = Depends(get_service)):
    # The hottest route (clients poll it): one primary-key read of a small row that never blocks the event
    # loop (api.reads), serialised directly: the row already has JobOut's shape.
    row = await svc.reader.get(job_id)
    if row is None or not svc.may_see(row["owner"], who):
        raise HTTPException(404, f"job {job_id} not found")
    return JSONResponse(row)


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"],
             responses=responses(*AUTH, 404, 409, 422))
def cancel(job_id: str, who: str = Depends(principal), svc: Service = Depends(get_service)):
    job = svc.visible_job(job_id, who)
    if job.state in TERMINAL:
        raise HTTPException(409, f"job {job_id} is already {job.state}")
    svc.dispatcher.cancel(job_id)
    svc.reader.forget(job_id)           # this replica's next read of it sees the cancel request
    return svc.visible_job(job_id, who).to_dict()


@router.get("/v1/jobs/{job_id}/outputs", tags=["jobs"], responses=responses(*AUTH, 404, 409, 422))
def outputs(job_id: str, who: str = Depends(principal), svc: Service = Depends(get_service)) -> dict:
    job = svc.visible_job(job_id, who)
    if job.state != "succeeded":
        raise HTTPException(409, f"job {job_id} is {job.state}; outputs exist once it succeeded")
    return {"job_id": job_id, "outputs": describe_outputs(job.result or {}, svc.settings.data_root)}


@router.get("/v1/jobs/{job_id}/events", tags=["jobs"],
            responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
                       **responses(*AUTH, 404, 422, 503)})
async def events(job_id: str, who: str = Depends(principal), last_event_id: str | None = Header(None),
                 svc: Service = Depends(get_service)):
    # the job's stored events (corpus.events) as server-sent events after Last-Event-ID (api.events)
    row = await svc.reader.get(job_id)
    if row is None or not svc.may_see(row["owner"], who):
        raise HTTPException(404, f"job {job_id} not found")
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    streams = svc.streams
    refused = streams.acquire(who)
    if refused == "token":
        raise HTTPException(429, f"at most {streams.per_key} event streams at once per token",
                            headers={"Retry-After": "5"})
    if refused == "replica":
        raise HTTPException(503, f"this replica serves at most {streams.total} event streams at once",
                            headers={"Retry-After": "5"})
    return EventStream(event_stream(svc.store, svc.hub, job_id, after), release=lambda: streams.release(who),
                       send_timeout_s=svc.settings.stream_send_timeout_s)
