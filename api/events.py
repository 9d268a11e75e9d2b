"""Server-sent job events: one database poller per replica for all open streams, and the SSE response.

Each stream used to poll the database itself (4 queries a second, each through a thread): 200 idle streams
meant 800 queries a second and pushed every other request's latency up. Now an EventHub asks once per poll for
the newest event of every job that has listeners, and wakes only the streams whose job has news; a stream reads
the database when woken, and checks its job's state once per keep-alive period.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import AsyncIterator, Callable

from fastapi.responses import StreamingResponse

from api.store import TERMINAL, JobStore

log = logging.getLogger(__name__)


class EventHub:
    def __init__(self, store: JobStore, poll_s: float = 0.25):
        self.store, self.poll_s = store, poll_s
        self._waiters: dict[str, list[tuple[int, asyncio.Event]]] = {}
        self._task: asyncio.Task | None = None

    async def wait(self, job_id: str, after: int, timeout: float) -> bool:
        """Wait until the job has an event newer than `after`: True, or False after `timeout` seconds."""
        ev = asyncio.Event()
        self._waiters.setdefault(job_id, []).append((after, ev))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll())
        try:
            await asyncio.wait_for(ev.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiting = self._waiters.get(job_id, [])
            waiting[:] = [w for w in waiting if w[1] is not ev]
            if not waiting:
                self._waiters.pop(job_id, None)

    async def _poll(self) -> None:
        """While anyone listens: one query for the newest event seq of every listened-to job, then wake."""
        while self._waiters:
            try:
                latest = await asyncio.to_thread(self.store.latest_seqs, list(self._waiters))
            except Exception:   # the database is away for a moment: streams keep waiting, we retry
                log.exception("event poll failed")
                latest = {}
            for job_id, seq in latest.items():
                for after, ev in self._waiters.get(job_id, []):
                    if seq > after:
                        ev.set()
            await asyncio.sleep(self.poll_s)


async def event_stream(store: JobStore, hub: EventHub, job_id: str, after: int,
                       keepalive_s: float = 10.0) -> AsyncIterator[str]:
    """Replay stored events after `after`, then follow new ones until the job ends."""
    while True:
        batch = await asyncio.to_thread(store.events, job_id, after)
        for ev in batch:
            after = ev.seq
            yield f"id: {ev.seq}\nevent: {ev.type}\ndata: {json.dumps(ev.data, default=str)}\n\n"
        if batch and len(batch) == 500:     # a full page: more are waiting
            continue
        job = await asyncio.to_thread(store.get, job_id)
        if job is None or job.state in TERMINAL:
            rest = await asyncio.to_thread(store.events, job_id, after)     # written just before the state
            for ev in rest:
                yield f"id: {ev.seq}\nevent: {ev.type}\ndata: {json.dumps(ev.data, default=str)}\n\n"
            yield f"event: end\ndata: {json.dumps({'state': job.state if job else 'unknown'})}\n\n"
            return
        if not await hub.wait(job_id, after, keepalive_s):
            yield ": keep-alive\n\n"


class EventStream(StreamingResponse):
    """Server-sent events that free their stream slot however they end, and give up on a client that stopped
    reading (a send blocked longer than `send_timeout_s`) instead of holding the connection forever."""

    def __init__(self, content, release: Callable[[], None], send_timeout_s: float):
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self._release, self.send_timeout_s = release, send_timeout_s

    async def stream_response(self, send) -> None:
        async def timed_send(message) -> None:
            await asyncio.wait_for(send(message), self.send_timeout_s)
        try:
            await super().stream_response(timed_send)
        except TimeoutError:
            log.info("event stream dropped: the client read nothing for %.0f s", self.send_timeout_s)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()

