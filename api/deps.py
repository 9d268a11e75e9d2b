"""What routes depend on (FastAPI `Depends`): the service's parts, built once by create_app, and the caller.

`Service` holds one replica's store, dispatcher, readers and limits; create_app puts it on `app.state.service`.
Routes ask for `get_store`, `get_settings` or the whole `get_service`, and for `principal`, the user the bearer
token names (401 without one, 403 for a wrong one, 429 over the rate limit). Every dependency here is async: it
runs on the event loop, with no thread hop, and none of them blocks (a Redis rate limit waits in a thread).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Depends, Header, HTTPException, Request

from api.events import EventHub
from api.limits import StreamSlots
from api.ratelimit import RedisRateLimiter
from api.reads import JobReader
from api.runner import Dispatcher
from api.security import RateLimiter, check_token
from api.settings import Settings
from api.store import Job, JobStore


@dataclass
class Service:
    settings: Settings
    store: JobStore
    dispatcher: Dispatcher
    reader: JobReader               # the hot GET /v1/jobs/{id} read, async (api.reads)
    hub: EventHub                   # one database poller for every event stream
    streams: StreamSlots
    limiter: RateLimiter | RedisRateLimiter
    tokens: dict[bytes, str]        # hashed bearer token -> user
    admins: frozenset[str]

    def may_see(self, owner: str, who: str) -> bool:
        return owner == who or who in self.admins

    def visible_job(self, job_id: str, who: str) -> Job:
        """The job if `who` may see it; another user's job is 404, exactly like a missing one (no probing)."""
        job = self.store.get(job_id)
        if job is None or not self.may_see(job.owner, who):
            raise HTTPException(404, f"job {job_id} not found")
        return job


async def get_service(request: Request) -> Service:
    return request.app.state.service


async def get_store(svc: Service = Depends(get_service)) -> JobStore:
    return svc.store


async def get_settings(svc: Service = Depends(get_service)) -> Settings:
    return svc.settings


async def principal(authorization: str | None = Header(None), svc: Service = Depends(get_service)) -> str:
    status, who = check_token(authorization, svc.tokens)
    if status == 401:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if status == 403:
        raise HTTPException(403, "invalid token")
    # Redis is a network round trip: in a thread, so the event loop serves other requests meanwhile
    remote = isinstance(svc.limiter, RedisRateLimiter)
    allowed = await asyncio.to_thread(svc.limiter.allow, who) if remote else svc.limiter.allow(who)
    if not allowed:
        raise HTTPException(429, "rate limit exceeded", headers={"Retry-After": "1"})
    return who
