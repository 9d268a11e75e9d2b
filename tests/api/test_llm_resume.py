"""An LLM job killed mid-shard through the service resumes inside the shard: a rephrase job on a recording fake
OpenAI server (deterministic answers) runs one document per unit; its worker is killed with SIGKILL while the
second unit's completion is held; the retried attempt skips the finished unit (its document is never asked for
again) and the outputs equal an uninterrupted job's."""
from __future__ import annotations

import json
import os
import signal

import pytest

from api.store import JobStore
from corpus.schema import table_from_docs
from corpus.shards import file_sha256, write_table
from tests.api.conftest import Service
from tests.api.fakes import RecordingFakeOpenAI

TEXTS = ["The Nile flows north through eleven countries.", "The Danube flows east into the Black Sea.",
         "The Rhine rises in the Swiss Alps.", "The Volga is the longest river in Europe."]


def _job(url: str, output: str) -> dict:
    engine = {"kind": "openai", "base_url": url, "model": "fake-model", "max_retries": 0}
    return {"kind": "rephrase", "spec": {"inputs": ["docs"], "output": output, "variants": 1, "attempts": 1,
                                         "max_new_tokens": 16, "engine": engine}}


def _digests(out) -> dict[str, str]:
    return {str(p.relative_to(out)): file_sha256(p) for p in sorted(out.rglob("*.parquet"))}


@pytest.mark.slow
def test_a_killed_llm_worker_resumes_inside_its_shard(tmp_path):
    root = tmp_path / "svc"
    write_table(root / "docs" / "docs-00000.parquet", table_from_docs(
        [{"id": f"r{i}", "text": t, "domain": "knowledge"} for i, t in enumerate(TEXTS)]))
    with RecordingFakeOpenAI(hold_after=1) as fake:
        svc = Service(root, extra_env={"K2FORGE_MODEL_ALLOWLIST": f"{fake.url},fake-model",
                                       "OPENAI_API_KEY": "sk-test", "K2FORGE_UNIT_DOCS": "1"}).start()
        try:
            job_id = svc.client.post("/v1/jobs", json=_job(fake.url, "crash")).json()["id"]
            assert fake.held.wait(180), "the second unit never asked for a completion"
            done = {p.stem for p in (root / "crash" / ".k2forge" / "done" / "rephrase").glob("*.json")}
            assert len(done) == 1 and not (root / "crash" / "part-00000.parquet").exists()
            os.killpg(JobStore(f"sqlite:///{root / '.k2forge' / 'jobs.db'}").get(job_id).worker_pid, signal.SIGKILL)
            fake.release.set()
            job = svc.wait_state(job_id, ("succeeded", "failed"), 300)
            assert job["state"] == "succeeded" and job["attempts"] == 2, job
            crash_requests = [q for q in fake.requests if "body" in q]
            ref_id = svc.client.post("/v1/jobs", json=_job(fake.url, "ref")).json()["id"]
            assert svc.wait_state(ref_id, ("succeeded", "failed"), 300)["state"] == "succeeded"
        finally:
            svc.stop()
    asked = [sum(t in json.dumps(q["body"]) for q in crash_requests) for t in TEXTS]
    assert asked == [1, 2, 1, 1], f"completions asked per document {asked}: the finished unit was regenerated"
    assert _digests(root / "crash") == _digests(root / "ref")
    assert not any((root / "crash" / ".k2forge" / "units").iterdir())
