"""The event hub on a real SQLite store: one database poll serves every waiting stream of a job, and a wait with
nothing new times out."""
from __future__ import annotations

import asyncio

from api.events import EventHub
from api.store import JobStore


def test_one_poll_wakes_every_stream_and_an_idle_wait_times_out(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    job, _ = store.create("ingest", {}, "alice", None)
    first = store.latest_seqs([job.id])[job.id]
    store.add_event(job.id, "log", {"message": "news"})
    calls = []
    real = store.latest_seqs
    store.latest_seqs = lambda ids: calls.append(list(ids)) or real(ids)    # count the hub's queries

    async def scenario():
        hub = EventHub(store, poll_s=0.01)
        woke = await asyncio.gather(*(hub.wait(job.id, first, timeout=10) for _ in range(50)))
        polls_for_fifty = len(calls)
        idle = await hub.wait(job.id, first + 1, timeout=0.1)
        return woke, polls_for_fifty, idle

    woke, polls, idle = asyncio.run(scenario())
    assert all(woke) and polls <= 2, polls        # 50 streams, one query (not 50)
    assert idle is False
