"""The `pipeline` job kind over real HTTP: a service on loopback (tests/api/conftest.py) runs ingest -> dedup on
the bundled samples as one job, with every step's paths confined to the data root."""
from __future__ import annotations

import json
import shutil

from corpus.samples import sample_files


def _pipeline(output: str, **extra) -> dict:
    steps = [{"name": "ingest", "kind": "ingest",
              "spec": {"inputs": [f"samples/{p.name}" for p in sample_files()], "output": "${output}/raw"}},
             {"name": "dedup", "kind": "dedup",
              "spec": {"inputs": ["${steps.ingest.output}"], "output": "${output}/dedup"}}]
    return {"kind": "pipeline", "spec": {"name": "ingest-dedup", "output": output, "steps": steps, **extra}}


def test_a_pipeline_job_runs_its_steps_and_records_them(service):
    (service.root / "samples").mkdir()
    for p in sample_files():
        shutil.copy(p, service.root / "samples" / p.name)
    r = service.client.post("/v1/jobs", json=_pipeline("pipe"))
    assert r.status_code == 201, r.text
    job = service.wait_state(r.json()["id"], ("succeeded", "failed"), timeout=300)
    assert job["state"] == "succeeded", job["error"]
    res = job["result"]
    assert res["ran"] == ["ingest", "dedup"] and res["pipeline"] == "ingest-dedup"
    dedup = res["steps"]["dedup"]["summary"]
    assert (dedup["docs_in"], dedup["docs_out"], dedup["exact_removed"], dedup["near_removed"]) == (41, 37, 1, 3)
    out = service.root / "pipe"
    state = json.loads((out / ".k2forge" / "pipeline.json").read_text())
    assert {n: r["status"] for n, r in state["steps"].items()} == {"ingest": "done", "dedup": "done"}
    assert len(list((out / "dedup").glob("part-*.parquet"))) == 4
    events = service.client.get(f"/v1/jobs/{job['id']}/events")
    assert "pipeline: dedup (dedup) running" in events.text


def test_a_bad_step_or_a_path_outside_the_root_is_refused_at_submit(service):
    bad = _pipeline("pipe2")
    bad["spec"]["steps"][1]["spec"]["threshold"] = 7          # dedup's threshold is a similarity in [0, 1]
    r = service.client.post("/v1/jobs", json=bad)
    assert r.status_code == 422 and "step 'dedup' (dedup): spec.threshold" in r.text
    escape = _pipeline("pipe3")
    escape["spec"]["steps"][0]["spec"]["inputs"] = ["/etc/passwd"]
    r = service.client.post("/v1/jobs", json=escape)
    assert r.status_code == 422 and "outside the data root" in r.text
