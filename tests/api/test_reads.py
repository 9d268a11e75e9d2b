"""The hot-route job reader on the machine's real PostgreSQL: the same dict as the store's own read, a bounded
set of connections, concurrent reads batched into few queries, a connection the server dropped is replaced, not
reused, and cached rows are dropped by the store's change notifications (sent by another store, as another
process's writes are)."""
from __future__ import annotations

import asyncio

import psycopg

from api.limits import StreamSlots
from api.reads import APPLICATION_NAME, LISTEN_APPLICATION_NAME, JobReader
from api.store import JobStore
from corpus.events import Progress
from tests.api.conftest import PG_ADMIN


def test_reader_matches_the_store_bounds_connections_and_replaces_a_dropped_one(pg_url):
    store = JobStore(pg_url)
    job, _ = store.create("ingest", {"inputs": ["raw"], "output": "o"}, "alice", None)
    store.add_event(job.id, Progress(1), progress={"done": 1})
    other, _ = store.create("ingest", {"inputs": ["raw"], "output": "p"}, "bob", None)
    reader = JobReader(store, connections=2, cache_rows=0)   # every read a query: the batching and drops
    db = pg_url.rsplit("/", 1)[1]

    async def scenario():
        many = await asyncio.gather(*(reader.get(job.id) for _ in range(40)), reader.get(other.id))
        made, queries = len(reader._idle), reader.queries
        missing = await reader.get("0" * 32)
        with psycopg.connect(f"{PG_ADMIN}/postgres", autocommit=True) as admin:   # the server drops them
            dropped = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
                          "AND application_name = %s", (db, APPLICATION_NAME)).fetchone()[0]
        failures = 0
        for _ in range(4):      # each dropped connection fails once and is discarded; then reads work again
            try:
                again = await reader.get(job.id)
                break
            except psycopg.OperationalError:
                failures += 1
        await reader.close()
        return many, made, queries, missing, again, failures, dropped

    many, made, queries, missing, again, failures, dropped = asyncio.run(scenario())
    assert all(m == store.get_dict(job.id) for m in many[:40]) and many[0]["progress"] == {"done": 1}
    assert many[40] == store.get_dict(other.id) and many[40]["owner"] == "bob"
    assert made <= 2 and missing is None
    assert queries <= 3, f"41 concurrent reads took {queries} queries: not batched"
    assert dropped == made and failures == made        # each dropped one failed one read, then was replaced
    assert again == store.get_dict(job.id)
    store.engine.dispose()


async def _until(cond, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_cached_rows_are_dropped_when_another_process_changes_the_job(pg_url):
    store, writer = JobStore(pg_url), JobStore(pg_url)      # writer: the worker's (or another replica's) store
    job, _ = store.create("ingest", {"inputs": ["raw"], "output": "o"}, "alice", None)
    reader = JobReader(store, connections=2)
    db = pg_url.rsplit("/", 1)[1]

    async def scenario():
        first = await reader.get(job.id)                     # starts the listener; read through
        await _until(lambda: reader._listening, "the listener")
        await reader.get(job.id)                              # read again: now cached
        q = reader.queries
        hits = [await reader.get(job.id) for _ in range(20)]
        cached_queries = reader.queries - q
        writer.add_event(job.id, Progress(3, 10), progress={"done": 3, "total": 10})
        await _until(lambda: job.id not in reader._cache, "the progress notification")
        progressed = await reader.get(job.id)
        writer.transition(job.id, "running", expect=("queued",))
        await _until(lambda: job.id not in reader._cache, "the state notification")
        running = await reader.get(job.id)
        reader.forget(job.id)                                 # a write through this replica
        assert job.id not in reader._cache
        with psycopg.connect(f"{PG_ADMIN}/postgres", autocommit=True) as admin:   # the listener is dropped
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                          "AND application_name = %s", (db, LISTEN_APPLICATION_NAME))
        await _until(lambda: not reader._listening, "the listener to notice the drop")
        q = reader.queries
        await reader.get(job.id)
        await reader.get(job.id)
        uncached = reader.queries - q                         # while it is down, every read is a query
        writer.set_fields(job.id, cancel_requested=1)         # a change while it was down: no stale row left
        await _until(lambda: reader._listening, "the listener to come back", timeout=20)
        after = await reader.get(job.id)
        await reader.close()
        return first, hits, cached_queries, progressed, running, uncached, after

    first, hits, cached_queries, progressed, running, uncached, after = asyncio.run(scenario())
    assert first["state"] == "queued" and all(h == first for h in hits) and cached_queries == 0
    assert progressed["progress"] == {"done": 3, "total": 10} and progressed["state"] == "queued"
    assert running["state"] == "running"
    assert uncached == 2
    assert after["cancel_requested"] is True and after == store.get_dict(job.id)
    store.engine.dispose()
    writer.engine.dispose()


def test_stream_slots_cap_each_token_and_the_replica():
    slots = StreamSlots(per_key=2, total=3)
    assert [slots.acquire("a"), slots.acquire("a"), slots.acquire("a")] == [None, None, "token"]
    assert [slots.acquire("b"), slots.acquire("c")] == [None, "replica"]
    slots.release("a")
    assert slots.acquire("c") is None
