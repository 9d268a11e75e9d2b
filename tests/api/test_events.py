"""The event hub on a real SQLite store: one database poll and one read serve every waiting stream of a job, and
a wait with nothing new times out; the worker's sink stores typed events and never loses the last progress."""
from __future__ import annotations

import asyncio

import pytest

from api.events import EventHub
from api.store import JobStore
from api.worker import EventSink
from corpus.events import Event, Log, Progress, State


def test_one_poll_wakes_every_stream_and_an_idle_wait_times_out(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    job, _ = store.create("ingest", {}, "alice", None)
    first = store.latest_seqs([job.id])[job.id]
    store.add_event(job.id, Log("news"))
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


def test_the_worker_sink_stores_typed_events_folds_progress_and_flushes_the_last_throttled_one(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    job, _ = store.create("ingest", {}, "alice", None)
    sink = EventSink(store, job.id, min_interval=3600)     # only the first progress event is due at once
    sink(Progress(1, 3, stage="ingest", unit="a"))
    sink(Log("halfway"))
    sink(Progress(3, 3, stage="ingest", unit="c"))         # throttled: waits for flush
    stored = [(e.type, e.data) for e in store.events(job.id)]
    assert stored[1:] == [("progress", Progress(1, 3, stage="ingest", unit="a").to_dict()),
                          ("log", {"type": "log", "message": "halfway", "level": "info"})]
    sink.flush()
    last = store.events(job.id)[-1]
    assert Event.from_dict(last.data) == Progress(3, 3, stage="ingest", unit="c")
    assert store.get(job.id).progress == {"done": 3, "total": 3, "stage": "ingest", "unit": "c"}
    assert Event.from_dict(store.events(job.id)[0].data) == State("queued")
    with pytest.raises(TypeError, match="corpus.events event.*got dict"):
        sink({"type": "log", "message": "old style"})
