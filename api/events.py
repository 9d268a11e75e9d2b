"""Server-sent job events: one database poller per replica for all open streams, and the SSE response.

Each stream used to poll the database itself (4 queries a second, each through a thread): 200 idle streams
meant 800 queries a second and pushed every other request's latency up. Now an EventHub asks once per poll for
the newest event of every job that has listeners, reads the new events of each job with news once, and hands
them (already formatted) to all of that job's streams. A stream reads the database itself only to replay what
it missed; it ends with its job's final state event.

Each stored event (corpus.events: progress, log, stage_done, metrics, state) goes out as `id: <seq>`,
`event: <type>`, `data: <its JSON>`; a client resumes with Last-Event-ID. After the job's terminal state event
the stream sends `event: end` with `data: {"state": ...}` and closes; idle streams get a `: keep-alive` comment.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import AsyncIterator, Callable

from fastapi.responses import StreamingResponse

from api.store import TERMINAL, JobStore
from corpus.events import State

log = logging.getLogger(__name__)


def _sse(ev) -> tuple[int, str, str | None]:
    """(seq, the stored event as SSE text, the `end` event that follows it if it ends the job's stream)."""
    state = ev.data.get("state") if ev.type == State.type else None
    end = _end(state) if state in TERMINAL else None
    return ev.seq, f"id: {ev.seq}\nevent: {ev.type}\ndata: {json.dumps(ev.data, default=str)}\n\n", end


def _end(state: str) -> str:
    return f"event: end\ndata: {json.dumps({'state': state})}\n\n"


class EventHub:
    def __init__(self, store: JobStore, poll_s: float = 0.25):
        self.store, self.poll_s = store, poll_s
        self._waiters: dict[str, list[tuple[int, asyncio.Future]]] = {}
        self._task: asyncio.Task | None = None

    async def next_events(self, job_id: str, after: int, timeout: float) -> list[tuple[int, str, str | None]]:
        """The job's events newer than `after` (as _sse tuples), once there are any; [] after `timeout` s."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append((after, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll())
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return []
        finally:
            waiting = self._waiters.get(job_id, [])
            waiting[:] = [w for w in waiting if w[1] is not fut]
            if not waiting:
                self._waiters.pop(job_id, None)

    async def _poll(self) -> None:
        """While anyone listens: one query for the newest event of every listened-to job, then one read of the
        new events per job with news, shared by all its streams."""
        while self._waiters:
            try:
                latest = await asyncio.to_thread(self.store.latest_seqs, list(self._waiters))
                for job_id, seq in latest.items():
                    waiting = [w for w in self._waiters.get(job_id, []) if seq > w[0] and not w[1].done()]
                    if waiting:
                        events = await asyncio.to_thread(self.store.events, job_id, min(a for a, _ in waiting))
                        self._hand_out([_sse(ev) for ev in events], waiting)
            except Exception:   # the database is away for a moment: streams keep waiting, we retry
                log.exception("event poll failed")
            await asyncio.sleep(self.poll_s)

    @staticmethod
    def _hand_out(events: list[tuple[int, str, str | None]], waiting: list[tuple[int, asyncio.Future]]) -> None:
        for after, fut in waiting:
            mine = [e for e in events if e[0] > after]
            if mine and not fut.done():
                fut.set_result(mine)


async def event_stream(store: JobStore, hub: EventHub, job_id: str, after: int,
                       keepalive_s: float = 10.0) -> AsyncIterator[str]:
    """Replay stored events after `after` (read by this stream), then follow new ones through the hub until the
    job's final state event."""
    while True:     # the replay: this stream's own reads, a page at a time
        batch = [_sse(ev) for ev in await asyncio.to_thread(store.events, job_id, after)]
        for seq, text, end in batch:
            after = seq
            yield text
            if end:
                yield end
                return
        if len(batch) < 500:
            break
    job = await asyncio.to_thread(store.get, job_id)
    if job is None or job.state in TERMINAL:        # it ended just after the replay read (or has no final event)
        for _, text, _ in [_sse(ev) for ev in await asyncio.to_thread(store.events, job_id, after)]:
            yield text
        yield _end(job.state if job else "unknown")
        return
    while True:
        batch = await hub.next_events(job_id, after, keepalive_s)
        if not batch:
            yield ": keep-alive\n\n"
        for seq, text, end in batch:
            after = seq
            yield text
            if end:
                yield end
                return


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

