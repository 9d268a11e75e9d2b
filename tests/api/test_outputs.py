"""Output ownership over real HTTP: a job writes only into a new (or empty) output or resumes its own; another
job's output, a folder around or inside it, an existing input file, or (for mix) its own mixture spec are
refused at submit with 409 naming the owner; at run time a worker holds a lock on its outputs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from api.outputs import output_locks, output_paths
from api.store import JobStore
from api.worker import LOCKED
from corpus.shards import file_sha256
from tests.api.conftest import Service


def _raw(root) -> None:
    (root / "raw").mkdir(exist_ok=True)
    (root / "raw" / "a.jsonl").write_text(json.dumps({"text": "hello world", "domain": "web"}) + "\n")


def _ingest(output: str) -> dict:
    return {"kind": "ingest", "spec": {"inputs": ["raw"], "output": output}}


def test_another_jobs_output_or_an_input_is_409_naming_the_owner(service):
    _raw(service.root)
    alice = service.client.post("/v1/jobs", json=_ingest("shards")).json()
    assert service.wait_state(alice["id"], ("succeeded", "failed"))["state"] == "succeeded"
    before = {p.name: file_sha256(p) for p in (service.root / "shards").iterdir() if p.is_file()}
    bob = service.client_for("bob")
    for output in ("shards", "shards/sub", "."):
        r = bob.post("/v1/jobs", json=_ingest(output))
        assert r.status_code == 409, (output, r.text)
        if output != ".":
            assert alice["id"] in r.text and "'alice'" in r.text, r.text
    again = service.client.post("/v1/jobs", json=_ingest("shards"))    # her own, but it succeeded: not reopened
    assert again.status_code == 409 and "succeeded" in again.text
    (service.root / "notes").mkdir()
    (service.root / "notes" / "n.txt").write_text("someone's data")
    for output, what in (("raw/a.jsonl", "existing file"), ("notes", "non-empty folder"),
                         ("raw", "also an input of this job")):
        r = bob.post("/v1/jobs", json=_ingest(output))
        assert r.status_code == 409 and what in r.text, r.text
    r = bob.post("/v1/jobs", json={"kind": "dedup", "spec": {"inputs": ["shards"], "output": "shards"}})
    assert r.status_code == 409
    assert {p.name: file_sha256(p) for p in (service.root / "shards").iterdir() if p.is_file()} == before
    (service.root / "empty").mkdir()
    assert bob.post("/v1/jobs", json=_ingest("empty")).status_code == 201


def test_a_user_takes_over_only_their_own_cancelled_output(tmp_path):
    svc = Service(tmp_path, max_workers=0).start()      # nothing runs: the job stays queued until cancelled
    try:
        _raw(tmp_path)
        first = svc.client.post("/v1/jobs", json=_ingest("out")).json()["id"]
        assert svc.client.post("/v1/jobs", json=_ingest("out")).status_code == 409      # queued: would race
        assert svc.client.post(f"/v1/jobs/{first}/cancel").json()["state"] == "cancelled"
        assert svc.client_for("bob").post("/v1/jobs", json=_ingest("out")).status_code == 409
        assert svc.client.post("/v1/jobs", json=_ingest("out")).status_code == 201
    finally:
        svc.stop()


def test_mix_may_not_overwrite_its_own_mixture_or_an_input(service):
    mixture = {"seq_len": 8, "budget_tokens": 64, "sources": [{"name": "a", "path": "packed", "weight": 1.0}]}
    (service.root / "m.yaml").write_text(json.dumps(mixture))
    (service.root / "m2.spec.yaml").write_text(json.dumps(mixture))
    for output, mix in (("m.yaml", "m.yaml"), ("m2.json", "m2.spec.yaml"), ("raw.json", "m.yaml")):
        if output == "raw.json":
            (service.root / "raw.json").write_text("{}")
        r = service.client.post("/v1/jobs", json={"kind": "mix", "spec": {"mixture": mix, "output": output}})
        assert r.status_code == 409, (output, r.text)
    assert json.loads((service.root / "m.yaml").read_text()) == mixture
    assert json.loads((service.root / "m2.spec.yaml").read_text()) == mixture


def test_a_worker_waits_for_the_output_lock(tmp_path):
    """A stale attempt still holding the lock: the new worker stops with LOCKED and writes nothing; once the
    lock is free it runs to success."""
    _raw(tmp_path)
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    spec = {"inputs": [str(tmp_path / "raw")], "output": str(tmp_path / "out")}
    job, _ = store.create("ingest", spec, "alice", None, outputs=output_paths("ingest", spec))
    store.transition(job.id, "running", expect=("queued",))
    env = {**os.environ, "K2FORGE_LOCK_DIR": str(tmp_path / "locks"), "K2FORGE_LOCK_TIMEOUT_S": "0.5",
           "K2FORGE_WORKER_DB": store.url, "K2FORGE_WORKER_NICE": "0"}
    cmd = [sys.executable, "-m", "api.worker", "--job", job.id]
    with output_locks(output_paths("ingest", spec), tmp_path / "locks", timeout_s=0):
        r = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
        assert r.returncode == LOCKED, r.stderr.decode()[-2000:]
    assert store.get(job.id).state == "running" and not (tmp_path / "out").exists()
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert store.get(job.id).state == "succeeded"


def test_a_symlink_made_after_the_submit_is_refused_when_the_worker_starts(tmp_path):
    """Paths are confined again by the worker, under its output lock, right before the run."""
    root = tmp_path / "svc"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "a.jsonl").write_text(json.dumps({"text": "hello", "domain": "web"}) + "\n")
    (tmp_path / "secret.jsonl").write_text(json.dumps({"text": "outside the data root", "domain": "web"}) + "\n")
    svc = Service(root).start()
    try:
        spec = {"inputs": [str(root / "raw")], "output": str(root / "out")}
        with output_locks(output_paths("ingest", spec), root / ".k2forge" / "locks", timeout_s=0):
            job_id = svc.client.post("/v1/jobs", json=_ingest("out")).json()["id"]
            svc.wait_state(job_id, ("running",))            # its worker waits for the lock we hold
            (root / "raw" / "b.jsonl").symlink_to(tmp_path / "secret.jsonl")
        job = svc.wait_state(job_id, ("succeeded", "failed"))
        assert job["state"] == "failed" and "outside the data root" in job["error"], job
        assert not list((root / "out").glob("*.parquet"))
    finally:
        svc.stop()


def test_outputs_of_jobs_from_an_older_database_get_owners(tmp_path):
    """A database whose jobs predate output owners: the service registers them at start (newest job first)."""
    (tmp_path / ".k2forge").mkdir()
    store = JobStore(f"sqlite:///{tmp_path / '.k2forge' / 'jobs.db'}")
    old, _ = store.create("ingest", {"inputs": [str(tmp_path / "raw")], "output": str(tmp_path / "old")}, "alice",
                          None)
    svc = Service(tmp_path, max_workers=0).start()
    try:
        r = svc.client_for("bob").post("/v1/jobs", json=_ingest("old"))
        assert r.status_code == 409 and old.id in r.text, r.text
    finally:
        svc.stop()
