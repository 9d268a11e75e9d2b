"""Two real `k2forge serve` replicas on one PostgreSQL database and one data root (a database per test).

They run as two hosts (K2FORGE_HOST_ID), so neither can check the other's worker pids and only leases count:
a job started on replica 1 survives replica 2's start and replica 1's kill -9 (its worker renews its own lease
and finishes: one attempt, every unit once); when a replica and its worker are both killed, the other replica
takes the job over once the lease expired and resumes it; outputs equal an uninterrupted run's."""
from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from api.outputs import output_locks, output_paths
from api.store import JobStore
from corpus.ingest import IngestSpec, run_ingest
from corpus.shards import file_sha256
from tests.api.conftest import Service
from tests.api.test_service import _ingest, _write_inputs

LEASE_S = 3


def _digests(d) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(d.glob("*.parquet"))}


def _wait_units(root, out: str, n: int, timeout: float = 120) -> None:
    done = root / out / ".k2forge" / "done" / "ingest"
    deadline = time.monotonic() + timeout
    while len(list(done.glob("*.json"))) < n:
        assert time.monotonic() < deadline, f"{out}: fewer than {n} units done after {timeout} s"
        time.sleep(0.02)


def _replica(root, pg_url: str, host: str) -> Service:
    return Service(root, db_url=pg_url, extra_env={"K2FORGE_HOST_ID": host, "K2FORGE_LEASE_S": str(LEASE_S)})


def test_two_replicas_on_postgres_run_each_job_once_and_take_over_after_the_lease(tmp_path, pg_url):
    root = tmp_path / "svc"
    root.mkdir()
    inputs = _write_inputs(root, 24, 4000)
    run_ingest(IngestSpec(inputs=[str(root / inputs)], output=str(tmp_path / "ref")))
    ref = _digests(tmp_path / "ref")
    store = JobStore(pg_url)
    r1 = _replica(root, pg_url, "host-1").start()
    r2 = None
    try:
        first = r1.client.post("/v1/jobs", json=_ingest(inputs, "first")).json()["id"]
        _wait_units(root, "first", 2)
        worker = store.get(first).worker_pid
        os.killpg(worker, signal.SIGSTOP)      # hold the job mid-run while replica 2 starts (replica 1 renews)
        try:
            r2 = _replica(root, pg_url, "host-2").start()   # a new replica must leave a live attempt alone
            row = store.get(first)
            assert (row.state, row.attempts, row.worker_host, row.worker_pid) == ("running", 1, "host-1", worker)
            r1.kill9()                                      # the worker outlives its replica, renews its lease
        finally:
            os.killpg(worker, signal.SIGCONT)
        job = r2.wait_state(first, ("succeeded", "failed"), 300)
        assert job["state"] == "succeeded" and job["attempts"] == 1, job
        assert _digests(root / "first") == ref

        r1.start()
        second = r2.client.post("/v1/jobs", json=_ingest(inputs, "second")).json()["id"]
        _wait_units(root, "second", 2)
        row = store.get(second)
        runner, other = (r1, r2) if row.worker_host == "host-1" else (r2, r1)
        runner.kill9()
        os.killpg(row.worker_pid, signal.SIGKILL)           # replica and worker gone: only the lease tells
        job = other.wait_state(second, ("succeeded", "failed"), 300)
        assert job["state"] == "succeeded" and job["attempts"] == 2, job
        assert _digests(root / "second") == ref
    finally:
        r1.stop()
        if r2:
            r2.stop()
        store.engine.dispose()


def test_a_dead_worker_is_retried_then_the_job_fails(tmp_path):
    """Each lost attempt resumes; after K2FORGE_MAX_ATTEMPTS lost attempts the job fails, saying why."""
    inputs = _write_inputs(tmp_path, 24, 4000)
    svc = Service(tmp_path, extra_env={"K2FORGE_MAX_ATTEMPTS": "2"}).start()
    try:
        job_id = svc.client.post("/v1/jobs", json=_ingest(inputs, "out")).json()["id"]
        store = JobStore(f"sqlite:///{tmp_path / '.k2forge' / 'jobs.db'}")
        done = tmp_path / "out" / ".k2forge" / "done" / "ingest"
        for attempt in (1, 2):
            _wait_units(tmp_path, "out", len(list(done.glob("*.json"))) + 1)    # this attempt made progress
            row = store.get(job_id)
            assert (row.state, row.attempts) == ("running", attempt) and row.worker_pid
            os.killpg(row.worker_pid, signal.SIGKILL)
            if attempt == 1:
                deadline = time.monotonic() + 60
                while (row := store.get(job_id)).attempts < 2 or not row.worker_pid:
                    assert time.monotonic() < deadline, "the lost attempt was not retried"
                    time.sleep(0.02)
        job = svc.wait_state(job_id, ("succeeded", "failed"), 60)
        assert job["state"] == "failed" and "lost 2 times" in job["error"], job
    finally:
        svc.stop()


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")    # exited, not yet reaped
    except OSError:
        return True


def _wait(cond, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        assert time.monotonic() < deadline, what
        time.sleep(0.02)
    return value


def test_a_stale_attempt_is_fenced_and_stops_itself(tmp_path, pg_url):
    """Replica 1 and its worker freeze (SIGSTOP) past the lease: replica 2 runs attempt 2. When they thaw, the
    stale worker finds its lease gone and stops; it never writes the job's state; outputs equal a clean run's."""
    root = tmp_path / "svc"
    root.mkdir()
    inputs = _write_inputs(root, 24, 4000)
    run_ingest(IngestSpec(inputs=[str(root / inputs)], output=str(tmp_path / "ref")))
    store = JobStore(pg_url)
    r1 = _replica(root, pg_url, "host-1").start()
    r2 = None
    try:
        job_id = r1.client.post("/v1/jobs", json=_ingest(inputs, "out")).json()["id"]
        _wait_units(root, "out", 1)
        stale = store.get(job_id).worker_pid
        os.kill(r1.proc.pid, signal.SIGSTOP)
        os.killpg(stale, signal.SIGSTOP)
        try:
            r2 = _replica(root, pg_url, "host-2").start()
            row = _wait(lambda: (r := store.get(job_id)).attempts == 2 and r.worker_pid and r, "no takeover")
            assert row.worker_host == "host-2" and row.state == "running"
        finally:
            os.killpg(stale, signal.SIGCONT)
            os.kill(r1.proc.pid, signal.SIGCONT)
        _wait(lambda: _gone(stale), "the stale worker kept running", 30)
        job = r1.wait_state(job_id, ("succeeded", "failed"), 300)
        assert job["state"] == "succeeded" and job["attempts"] == 2, job
        states = [e.data["state"] for e in store.events(job_id) if e.type == "state"]
        assert states == ["queued", "running", "queued", "running", "succeeded"], states
        assert _digests(root / "out") == _digests(tmp_path / "ref")
    finally:
        r1.stop()
        if r2:
            r2.stop()
        store.engine.dispose()


def test_a_cancel_reaches_a_worker_whose_replica_died(tmp_path, pg_url):
    """The worker's replica is gone; a cancel sent to the other replica stops it through its heartbeat. (The
    test holds the job's output lock, so the worker stays running, waiting for it.)"""
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.jsonl").write_text('{"text": "hello", "domain": "web"}\n')
    root, store = tmp_path, JobStore(pg_url)
    r1 = _replica(root, pg_url, "host-1")
    r1.env["K2FORGE_LOCK_TIMEOUT_S"] = "120"
    r2 = Service(root, max_workers=0, db_url=pg_url, extra_env={"K2FORGE_HOST_ID": "host-2",
                                                                "K2FORGE_LEASE_S": str(LEASE_S)})
    spec = {"inputs": [str(root / "raw")], "output": str(root / "out")}
    try:
        with output_locks(output_paths("ingest", spec), root / ".k2forge" / "locks", timeout_s=0):
            r1.start()
            r2.start()
            job_id = r1.client.post("/v1/jobs", json=_ingest("raw", "out")).json()["id"]
            worker = _wait(lambda: store.get(job_id).worker_pid, "the job never started")
            r1.kill9()
            t0 = time.monotonic()
            assert r2.client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
            assert r2.wait_state(job_id, ("cancelled", "failed", "succeeded"), 30)["state"] == "cancelled"
            _wait(lambda: _gone(worker), "the worker ignored the cancel", 30)
            assert time.monotonic() - t0 < LEASE_S + 5
    finally:
        r1.stop()
        r2.stop()
        store.engine.dispose()


def _progress_or_end(store, job_id: str, done: Path, inodes: dict, want: int):
    """Wait until `want` units are done (recording each done marker's inode) or the job ended; its row."""
    while True:
        inodes.update({p: p.stat().st_ino for p in done.glob("*.json") if p not in inodes})
        row = store.get(job_id)
        if row.state not in ("queued", "running") or (row.worker_pid and len(inodes) >= want):
            return row
        time.sleep(0.01)


@pytest.mark.slow
def test_fault_run_kill9_of_a_replica_and_its_worker_ten_times(tmp_path, pg_url):
    """Seeded schedule: 10 times, after 1-2 more finished units, kill -9 the replica running the job AND its
    worker, then restart that replica. Jobs lost 0, units finished twice 0 (a done marker is written once: its
    inode never changes), outputs identical to an uninterrupted run."""
    rng = random.Random(0)
    root = tmp_path / "svc"
    root.mkdir()
    inputs = _write_inputs(root, 24, 3000)
    run_ingest(IngestSpec(inputs=[str(root / inputs)], output=str(tmp_path / "ref")))
    ref = _digests(tmp_path / "ref")
    env = {"K2FORGE_MAX_ATTEMPTS": "50"}
    replicas = {h: _replica(root, pg_url, h) for h in ("host-1", "host-2")}
    for r in replicas.values():
        r.env.update(env)
        r.start()
    store, kills, inodes, jobs = JobStore(pg_url), 0, {}, []
    try:
        while kills < 10:
            out = f"out{len(jobs)}"
            jobs.append((out, replicas["host-1"].client.post("/v1/jobs", json=_ingest(inputs, out)).json()["id"]))
            done = root / out / ".k2forge" / "done" / "ingest"
            while kills < 10:
                row = _progress_or_end(store, jobs[-1][1], done, inodes, len(inodes) + rng.randint(1, 2))
                if row.state != "running":
                    break           # finished before this round's kill: next job
                replicas[row.worker_host].kill9()
                os.killpg(row.worker_pid, signal.SIGKILL)
                kills += 1
                replicas[row.worker_host].start()
        any_replica = replicas["host-1"]
        finals = [any_replica.wait_state(job_id, ("succeeded", "failed", "cancelled"), 300) for _, job_id in jobs]
        inodes.update({p: p.stat().st_ino for out, _ in jobs
                       for p in (root / out / ".k2forge" / "done" / "ingest").glob("*") if p not in inodes})
    finally:
        for r in replicas.values():
            r.stop()
        store.engine.dispose()
    assert [j["state"] for j in finals] == ["succeeded"] * len(jobs), finals
    assert all(p.stat().st_ino == ino for p, ino in inodes.items()), "a finished unit was written twice"
    for out, _ in jobs:
        assert _digests(root / out) == ref, out
    print(f"fault run: {kills} kills over {len(jobs)} jobs, attempts {[j['attempts'] for j in finals]}, "
          f"{len(inodes)} units, 0 finished twice, 0 jobs lost, outputs identical")
