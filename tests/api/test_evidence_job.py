"""The `rephrase-vs-repeat` evidence probe as a REST job kind, on a real service on loopback (tests/api/conftest.py):
its spec is validated and confined at submit like every kind's, and the tiny size runs end to end."""
from __future__ import annotations

from pathlib import Path

import pytest


def _probe(output: str, **fields) -> dict:
    return {"kind": "rephrase-vs-repeat", "spec": {"output": output, "size": "tiny", **fields}}


def test_the_probe_spec_is_checked_at_submit(service):
    r = service.client.post("/v1/jobs", json=_probe("/tmp/elsewhere"))
    assert r.status_code == 422 and "outside the data root" in r.text
    r = service.client.post("/v1/jobs", json=_probe("probe", rephrase={"styles_file": "/etc/passwd"}))
    assert r.status_code == 422 and "styles_file: a path, secret or model field" in r.text
    r = service.client.post("/v1/jobs", json=_probe("probe", train={"learning_rate": 0.1}))   # TrainSpec: lr
    assert r.status_code == 422 and "learning_rate" in r.text
    r = service.client.get("/openapi.json")
    assert "rephrase-vs-repeat" in r.text


@pytest.mark.slow
def test_the_tiny_probe_runs_as_a_job(service):
    r = service.client.post("/v1/jobs", json=_probe("probe", arms=["raw_x10", "reph_10x1"]))
    assert r.status_code == 201, r.text
    job = service.wait_state(r.json()["id"], ("succeeded", "failed"), timeout=900)
    assert job["state"] == "succeeded", job["error"]
    res = job["result"]
    assert set(res["arms"]) == {"raw_x10", "reph_10x1"}
    assert res["yield"]["asked"] == 4 * 4      # tiny: 4 people x 4 variants asked of the embedded engine
    assert res["yield"]["accepted"] <= res["yield"]["asked"]
    outputs = service.client.get(f"/v1/jobs/{job['id']}/outputs").json()
    names = sorted(Path(o["path"]).name for o in outputs["outputs"])
    assert names[1:] == ["report.md", "results.json"] and names[0].startswith("rephrase_vs_repeat."), outputs
