"""Job reads for the hot async routes (GET /v1/jobs/{id}, the events route's owner check) that never block the
event loop on the database.

A profile of one replica under bench_api (two replicas on PostgreSQL, 200 clients polling, 200 idle event
streams) showed the event loop inside the synchronous `store.get_dict` 68% of the wall time, 40% of it waiting
on PostgreSQL: three round trips per read (BEGIN, SELECT, the pool's ROLLBACK), each slow on a loaded machine,
with every other request queued behind it (p99 700 ms). On PostgreSQL this reader keeps a few autocommit async
connections (one round trip per read, a prepared statement, the loop serves other requests meanwhile). A local
SQLite WAL read takes ~0.1 ms, less than a thread hop, so there it stays inline.
"""
from __future__ import annotations

import asyncio
from typing import Any

from api.store import Job, JobStore, job_dict

_COLUMNS = ("id", "kind", "owner", "state", "spec", "progress", "result", "error", "attempts", "cancel_requested",
            "created_at", "updated_at")
#: how these connections show in pg_stat_activity
APPLICATION_NAME = "k2forge-api-read"
_GET = f"SELECT {', '.join(_COLUMNS)} FROM {Job.__tablename__} WHERE id = %s"


class JobReader:
    """`await reader.get(job_id)`: the job's API dict, or None."""

    def __init__(self, store: JobStore, connections: int = 4):
        self.store, self.size = store, connections
        url = store.engine.url
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False) \
            if url.get_backend_name() == "postgresql" else None
        self._idle: list[Any] = []
        self._made = 0
        self._free: asyncio.Condition | None = None

    async def get(self, job_id: str) -> dict[str, Any] | None:
        if self.conninfo is None:
            return self.store.get_dict(job_id)
        conn = await self._acquire()
        try:
            row = await (await conn.execute(_GET, (job_id,))).fetchone()
        except BaseException:
            self._made -= 1             # a broken (or interrupted) connection is dropped, never reused
            await _close(conn)
            async with self._free:
                self._free.notify()
            raise
        await self._release(conn)
        return job_dict(row) if row is not None else None

    async def _acquire(self):
        if self._free is None:
            self._free = asyncio.Condition()
        async with self._free:
            while not self._idle and self._made >= self.size:
                await self._free.wait()
            if self._idle:
                return self._idle.pop()
            self._made += 1
        try:
            import psycopg
            from psycopg.rows import namedtuple_row
            return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True, row_factory=namedtuple_row,
                                                         application_name=APPLICATION_NAME)
        except BaseException:
            self._made -= 1
            raise

    async def _release(self, conn) -> None:
        async with self._free:
            self._idle.append(conn)
            self._free.notify()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        self._made -= len(idle)
        for conn in idle:
            await _close(conn)


async def _close(conn) -> None:
    try:
        await conn.close()
    except Exception:   # closing a broken connection may fail too; it is gone either way
        pass
