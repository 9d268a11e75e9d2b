"""Per-user isolation over real HTTP: a job belongs to its token's user; another user's job is 404 on every route
(exactly like a missing one); an admin sees and may cancel everyone's."""
from __future__ import annotations

import json

import pytest

from tests.api.conftest import Service


@pytest.fixture
def one_worker_busy(tmp_path):
    """A service whose only worker slot is taken, so alice's second job stays queued while we probe it."""
    svc = Service(tmp_path, max_workers=0).start()
    yield svc
    svc.stop()


def _submit(svc, user: str, output: str) -> str:
    (svc.root / "raw").mkdir(exist_ok=True)
    (svc.root / "raw" / "a.jsonl").write_text(json.dumps({"text": "hello world", "domain": "web"}) + "\n")
    r = svc.client_for(user).post("/v1/jobs", json={"kind": "ingest", "spec": {"inputs": ["raw"], "output": output}})
    assert r.status_code == 201, r.text
    assert r.json()["owner"] == user
    return r.json()["id"]


def test_another_users_job_is_404_everywhere(one_worker_busy):
    svc = one_worker_busy
    job = _submit(svc, "alice", "alice-out")
    bob = svc.client_for("bob")
    assert bob.get(f"/v1/jobs/{job}").status_code == 404
    assert bob.get(f"/v1/jobs/{job}/events").status_code == 404
    assert bob.get(f"/v1/jobs/{job}/outputs").status_code == 404
    assert bob.post(f"/v1/jobs/{job}/cancel").status_code == 404
    listed = bob.get("/v1/jobs").json()
    assert listed["total"] == 0 and listed["jobs"] == []
    assert svc.client.get(f"/v1/jobs/{job}").json()["state"] == "queued"     # bob's cancel did nothing
    mine = svc.client.get("/v1/jobs").json()
    assert [j["id"] for j in mine["jobs"]] == [job]


def test_admin_sees_and_cancels_every_users_jobs(one_worker_busy):
    svc = one_worker_busy
    a = _submit(svc, "alice", "alice-out")
    b = _submit(svc, "bob", "bob-out")
    root = svc.client_for("root")
    listed = root.get("/v1/jobs").json()
    assert {j["id"]: j["owner"] for j in listed["jobs"]} == {a: "alice", b: "bob"}
    assert root.get(f"/v1/jobs/{a}").status_code == 200
    r = root.post(f"/v1/jobs/{b}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert svc.client_for("bob").get("/v1/jobs", params={"state": "cancelled"}).json()["total"] == 1
