"""Job reads for the hot async routes (GET /v1/jobs/{id}, the events route's owner check) that never block the
event loop on the database.

A profile of one replica under bench_api (two replicas on PostgreSQL, 200 clients polling, 200 idle event
streams) showed the event loop inside the synchronous `store.get_dict` 68% of the wall time, 40% of it waiting
on PostgreSQL: three round trips per read (BEGIN, SELECT, the pool's ROLLBACK), each slow on a loaded machine,
with every other request queued behind it (p99 700 ms). On PostgreSQL this reader keeps a few autocommit async
connections (one round trip per read, a prepared statement, the loop serves other requests meanwhile) and
batches the reads that arrive while they are busy. A local SQLite WAL read takes ~0.1 ms, less than a thread
hop, so there it stays inline.

Even so, each read cost a round trip to a database that competes for the same cores (bench_api, one replica on
PostgreSQL: p50 35 ms, p99 203 ms, against SQLite's 3.8 / 23 ms). So on PostgreSQL the reader also keeps the rows
it read, and one LISTEN connection per replica drops a row when the store announces that it changed
(api.store.CHANGED_CHANNEL, a NOTIFY sent in the writing transaction). A cached row is therefore at most one
notification delivery old (milliseconds), never `ttl`-style stale; the cache is used only while the listener is
connected (after a drop it is cleared and reads go to the database until it listens again), and rows read by a
query during which any notification arrived are not cached (the change may have overtaken the read). Writes made through this replica
(`forget`) drop the row at once, so a client always sees its own writes.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from api.store import CHANGED_CHANNEL, Job, JobStore, job_dict

log = logging.getLogger(__name__)

_COLUMNS = ("id", "kind", "owner", "state", "spec", "progress", "result", "error", "attempts", "cancel_requested",
            "created_at", "updated_at")
#: how these connections show in pg_stat_activity
APPLICATION_NAME = "k2forge-api-read"
LISTEN_APPLICATION_NAME = "k2forge-api-listen"
_GET_MANY = f"SELECT {', '.join(_COLUMNS)} FROM {Job.__tablename__} WHERE id = ANY(%s)"


class JobReader:
    """`await reader.get(job_id)`: the job's API dict, or None.

    On PostgreSQL, reads are batched: a read starts at once while fewer than `connections` are in flight;
    otherwise it waits for the next round, which fetches every job asked for meanwhile in one query. A round
    starts after each of its requests arrived; under load (200 clients polling) the database answers a few
    queries per round trip instead of one per request. Rows read are cached until a change notification (or
    `forget`) drops them; `cache_rows=0` turns the cache off.
    """

    def __init__(self, store: JobStore, connections: int = 4, cache_rows: int = 10_000):
        self.store, self.size, self.cache_rows = store, connections, cache_rows
        url = store.engine.url
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False) \
            if url.get_backend_name() == "postgresql" else None
        self._idle: list[Any] = []
        self._pending: dict[str, list[asyncio.Future]] = {}
        self._inflight = 0
        self.queries = 0            # rounds run (for tests and metrics): requests / queries = batching
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()   # job id -> row, least recently used first
        self._notes = 0                        # notifications received so far
        self._listening = False                # the cache is used only while this is true
        self._listener: asyncio.Task | None = None

    async def get(self, job_id: str) -> dict[str, Any] | None:
        if self.conninfo is None:
            return self.store.get_dict(job_id)
        if self.cache_rows and self._listener is None:
            self._listener = asyncio.ensure_future(self._listen())
        if self._listening and job_id in self._cache:
            self._cache.move_to_end(job_id)
            return self._cache[job_id]
        fut = asyncio.get_running_loop().create_future()
        self._pending.setdefault(job_id, []).append(fut)
        if self._inflight < self.size:
            self._launch()
        return await fut

    def _launch(self) -> None:
        batch, self._pending = self._pending, {}
        self._inflight += 1
        asyncio.ensure_future(self._round(batch))

    async def _round(self, batch: dict[str, list[asyncio.Future]]) -> None:
        conn = None
        try:
            conn = self._idle.pop() if self._idle else await self._connect()
            listening, notes = self._listening, self._notes
            rows = await (await conn.execute(_GET_MANY, (list(batch),))).fetchall()
            self.queries += 1
            self._idle.append(conn)
            found = {r.id: job_dict(r) for r in rows}
            if listening and self._listening and self._notes == notes:   # no change overtook the query
                for job_id, row in found.items():
                    self._remember(job_id, row)
            for job_id, futs in batch.items():
                for f in futs:
                    if not f.done():
                        f.set_result(found.get(job_id))
        except BaseException as e:     # a broken connection is dropped, never reused; its waiters get the error
            if conn is not None:
                await _close(conn)
            for f in (f for futs in batch.values() for f in futs):
                if not f.done():
                    f.set_exception(e)
        finally:
            self._inflight -= 1
            if self._pending and self._inflight < self.size:
                self._launch()

    def _remember(self, job_id: str, row: dict[str, Any]) -> None:
        self._cache[job_id] = row
        self._cache.move_to_end(job_id)
        while len(self._cache) > self.cache_rows:
            self._cache.popitem(last=False)

    def forget(self, job_id: str) -> None:
        """Drop a cached row (a write through this replica: the client's next read goes to the database)."""
        self._cache.pop(job_id, None)
        self._notes += 1

    async def _listen(self) -> None:
        """Keep a LISTEN connection; each notification drops its job's row. While it is down, no cache."""
        delay = 0.5
        while True:
            conn = None
            try:
                conn = await self._connect(LISTEN_APPLICATION_NAME)
                await conn.execute(f"LISTEN {CHANGED_CHANNEL}")
                self._listening, delay = True, 0.5
                async for note in conn.notifies():
                    self.forget(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as e:      # a dropped connection: forget everything, read through, listen again
                log.warning("job change listener lost (%s); reading through the database until it is back", e)
            finally:
                self._listening = False
                self._cache.clear()
                if conn is not None:
                    await _close(conn)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _connect(self, application_name: str = APPLICATION_NAME):
        import psycopg
        from psycopg.rows import namedtuple_row
        return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True, row_factory=namedtuple_row,
                                                     application_name=application_name)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, Exception):
                pass
            self._listener = None
        idle, self._idle = self._idle, []
        for conn in idle:
            await _close(conn)


async def _close(conn) -> None:
    try:
        await conn.close()
    except Exception:   # closing a broken connection may fail too; it is gone either way
        pass
