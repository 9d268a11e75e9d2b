"""The event hub on a real SQLite store: one database poll and one read serve every waiting stream of a job, and
a wait with nothing new times out."""
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
    reads, real_events = [], store.events
    store.events = lambda job_id, after=0, limit=500: reads.append(after) or real_events(job_id, after, limit)

    async def scenario():
        hub = EventHub(store, poll_s=0.01)
        got = await asyncio.gather(*(hub.next_events(job.id, first, timeout=10) for _ in range(50)))
        polls_for_fifty, reads_for_fifty = len(calls), len(reads)
        idle = await hub.next_events(job.id, first + 1, timeout=0.1)
        return got, polls_for_fifty, reads_for_fifty, idle

    got, polls, reads, idle = asyncio.run(scenario())
    assert all(len(g) == 1 and "news" in g[0][1] for g in got)
    assert polls <= 2 and reads == 1, (polls, reads)        # 50 streams: one poll and one read, not 50
    assert idle == []
