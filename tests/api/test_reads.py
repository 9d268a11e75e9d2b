"""The hot-route job reader on the machine's real PostgreSQL: the same dict as the store's own read, a bounded
set of connections, concurrent reads batched into few queries, and a connection the server dropped is replaced,
not reused."""
from __future__ import annotations

import asyncio

import psycopg

from api.limits import StreamSlots
from api.reads import APPLICATION_NAME, JobReader
from api.store import JobStore
from corpus.events import Progress
from tests.api.conftest import PG_ADMIN


def test_reader_matches_the_store_bounds_connections_and_replaces_a_dropped_one(pg_url):
    store = JobStore(pg_url)
    job, _ = store.create("ingest", {"inputs": ["raw"], "output": "o"}, "alice", None)
    store.add_event(job.id, Progress(1), progress={"done": 1})
    other, _ = store.create("ingest", {"inputs": ["raw"], "output": "p"}, "bob", None)
    reader = JobReader(store, connections=2)
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


def test_stream_slots_cap_each_token_and_the_replica():
    slots = StreamSlots(per_key=2, total=3)
    assert [slots.acquire("a"), slots.acquire("a"), slots.acquire("a")] == [None, None, "token"]
    assert [slots.acquire("b"), slots.acquire("c")] == [None, "replica"]
    slots.release("a")
    assert slots.acquire("c") is None
