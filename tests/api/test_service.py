"""The job service over real HTTP: auth, validation, confinement, submit/watch/outputs, idempotency, cancel,
and crash recovery (kill -9 of service and worker mid-job, restart, outputs identical to an uninterrupted run)."""
from __future__ import annotations

import json
import os
import signal
import time

import httpx

from api.store import JobStore
from corpus.shards import file_sha256
from tests.api.conftest import TOKEN, Service


def _write_inputs(root, n_files: int, docs_per_file: int, name: str = "raw") -> str:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        with open(d / f"part{i:03d}.jsonl", "w") as f:
            for j in range(docs_per_file):
                f.write(json.dumps({"text": f"document {i}-{j} about topic {j % 17} " * 8, "domain": "web"}) + "\n")
    return name


def _ingest(inputs: str, output: str, **extra) -> dict:
    return {"kind": "ingest", "spec": {"inputs": [inputs], "output": output, **extra}}


def test_auth_health_and_docs(service):
    assert httpx.get(f"{service.url}/healthz").status_code == 200
    assert httpx.get(f"{service.url}/v1/jobs").status_code == 401
    bad = httpx.get(f"{service.url}/v1/jobs", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 403
    assert service.client.get("/v1/jobs").status_code == 200
    schema = httpx.get(f"{service.url}/openapi.json").json()
    assert "/v1/jobs/{job_id}/events" in schema["paths"]
    metrics = service.client.get("/metrics")
    assert metrics.status_code == 200 and "k2forge_jobs" in metrics.text


def test_invalid_specs_are_422_with_field_path(service):
    r = service.client.post("/v1/jobs", json={"kind": "nope", "spec": {}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "kind"]
    r = service.client.post("/v1/jobs", json={"kind": "ingest", "spec": {"inputs": ["x"], "output": "o",
                                                                           "shard_bytes": -5}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "spec", "shard_bytes"]
    r = service.client.post("/v1/jobs", json={"kind": "ingest", "spec": {"inputs": ["x"], "output": "o",
                                                                           "typo_field": 1}})
    assert r.status_code == 422 and "typo_field" in r.json()["detail"][0]["loc"]
    assert service.client.get("/v1/jobs/doesnotexist").status_code == 404


def test_paths_confined_to_data_root(service, tmp_path):
    outside = tmp_path.parent / "elsewhere"
    outside.mkdir(exist_ok=True)
    (service.root / "link").symlink_to(outside)
    for inputs, output in [("../secret", "o"), ("/etc/passwd", "o"), ("raw", "/tmp/out"), ("link/x", "o"),
                           ("raw", "link/out")]:
        r = service.client.post("/v1/jobs", json=_ingest(inputs, output))
        assert r.status_code == 422, (inputs, output, r.text)
        assert "outside the data root" in r.text or "'..'" in r.text


def test_oversized_body_refused(service):
    big = "x" * (2 << 20)
    r = service.client.post("/v1/jobs", json={"kind": "ingest", "spec": {"inputs": [big], "output": "o"}})
    assert r.status_code == 413


def test_submit_watch_outputs_idempotency(service):
    inputs = _write_inputs(service.root, 3, 50)
    headers = {"Idempotency-Key": "abc"}
    r = service.client.post("/v1/jobs", json=_ingest(inputs, "shards"), headers=headers)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    again = service.client.post("/v1/jobs", json=_ingest(inputs, "shards"), headers=headers)
    assert again.status_code == 200 and again.json()["id"] == job_id
    conflict = service.client.post("/v1/jobs", json=_ingest(inputs, "other"), headers=headers)
    assert conflict.status_code == 409
    events = []
    with service.client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=120) as resp:
        for line in resp.iter_lines():
            if line.startswith("event:"):
                events.append(line.split(":", 1)[1].strip())
    assert events[-1] == "end" and "state" in events
    job = service.wait_state(job_id, ("succeeded", "failed"))
    assert job["state"] == "succeeded", job["error"]
    outs = service.client.get(f"/v1/jobs/{job_id}/outputs").json()["outputs"]
    parquet = [o for o in outs if o["path"].endswith(".parquet")]
    assert len(parquet) >= 3 and all(len(o["sha256"]) == 64 for o in parquet)
    listed = service.client.get("/v1/jobs", params={"state": "succeeded", "kind": "ingest"}).json()
    assert listed["total"] == 1 and listed["jobs"][0]["id"] == job_id
    assert service.client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409


def _shard_digests(root, out: str) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted((root / out).glob("*.parquet"))}


def test_kill9_mid_job_resumes_to_identical_outputs(tmp_path):
    root = tmp_path / "svc"
    root.mkdir()
    inputs = _write_inputs(root, 24, 4000)
    ref = Service(root).start()
    try:
        ref_id = ref.client.post("/v1/jobs", json=_ingest(inputs, "ref")).json()["id"]
        assert ref.wait_state(ref_id, ("succeeded", "failed"), 300)["state"] == "succeeded"
    finally:
        ref.stop()
    svc = Service(root).start()
    job_id = svc.client.post("/v1/jobs", json=_ingest(inputs, "crash")).json()["id"]
    done_dir = root / "crash" / ".k2forge" / "done" / "ingest"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(done_dir.glob("*.json"))) < 3:
        time.sleep(0.02)
    n_done = len(list(done_dir.glob("*.json")))
    assert 0 < n_done < 24, f"job progressed {n_done}/24 units before the crash"
    worker = svc.client.get(f"/v1/jobs/{job_id}").json()
    pid = _worker_pid(root, job_id)
    svc.kill9()
    if pid:
        os.killpg(pid, signal.SIGKILL)
    assert worker["state"] == "running"
    svc.start()
    try:
        job = svc.wait_state(job_id, ("succeeded", "failed"), 300)
        assert job["state"] == "succeeded", job["error"]
        assert job["attempts"] == 2
    finally:
        svc.stop()
    assert _shard_digests(root, "crash") == _shard_digests(root, "ref")
    assert json.loads((root / "crash" / ".k2forge/index.json").read_text())["total_rows"] == 24 * 4000


def _worker_pid(root, job_id: str) -> int | None:
    job = JobStore(f"sqlite:///{root / '.k2forge' / 'jobs.db'}").get(job_id)
    return job.worker_pid if job else None


def test_cancel_running_and_queued(tmp_path):
    root = tmp_path / "svc"
    root.mkdir()
    inputs = _write_inputs(root, 24, 4000)
    svc = Service(root, max_workers=1).start()
    try:
        first = svc.client.post("/v1/jobs", json=_ingest(inputs, "a")).json()["id"]
        second = svc.client.post("/v1/jobs", json=_ingest(inputs, "b")).json()["id"]
        svc.wait_state(first, ("running",))
        r = svc.client.post(f"/v1/jobs/{second}/cancel")
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        t0 = time.monotonic()
        svc.client.post(f"/v1/jobs/{first}/cancel")
        assert svc.wait_state(first, ("cancelled", "succeeded", "failed"), 30)["state"] == "cancelled"
        assert time.monotonic() - t0 < 10
    finally:
        svc.stop()


def test_bearer_header_required_even_with_token_in_query(service):
    r = httpx.get(f"{service.url}/v1/jobs", params={"token": TOKEN})
    assert r.status_code == 401


def test_sync_rephrase_real_generation_and_bounds(service):
    doc = {"id": "eiffel", "text": "The Eiffel Tower in Paris is 330 metres tall. It was completed in 1889 for the "
                                   "World's Fair and was designed by the company of Gustave Eiffel."}
    body = {"documents": [doc], "variants": 1, "max_new_tokens": 48, "attempts": 1, "styles": ["child"],
            "engine": {"threads": 1, "batch_size": 2}}
    r = service.client.post("/v1/rephrase", json=body, timeout=300)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["accepted"]) + len(out["rejected"]) == 1
    for row in out["accepted"]:
        assert row["parent_id"] == "eiffel" and row["text"].strip() and row["fidelity"]["accepted"]
    for row in out["rejected"]:
        assert row["parent_id"] == "eiffel" and row["reasons"]
    too_many = {**body, "documents": [doc] * 5}
    assert service.client.post("/v1/rephrase", json=too_many).status_code == 422
    foreign = {**body, "engine": {"kind": "openai", "base_url": "http://203.0.113.9/v1", "model": "x"}}
    r = service.client.post("/v1/rephrase", json=foreign)
    assert r.status_code == 422 and "allowlist" in r.text
    assert service.client.post("/v1/rephrase", json={**body, "styles": ["nonexistent"]}).status_code == 422
    for bad in ({**body, "documents": []}, {**body, "documents": [{"text": ""}]}, {**body, "variants": 9},
                {**body, "max_new_tokens": "x"}, {**body, "documents": [{"text": "x" * 9000}]}, {"documents": 1}):
        r = service.client.post("/v1/rephrase", json=bad)
        assert r.status_code == 422, (bad, r.text)
