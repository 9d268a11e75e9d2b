"""Credentials over real HTTP: a spec may name only operator-allowlisted credential variables, and a job's worker
gets a minimal environment (no service API tokens, no HF token), checked with a recording fake OpenAI server
that sees what the worker really sent and with the worker's own /proc environ."""
from __future__ import annotations

import json
from pathlib import Path

from api.store import JobStore
from tests.api.conftest import TOKENS, Service
from tests.api.fakes import RecordingFakeOpenAI

SECRETS = {"OPENAI_API_KEY": "sk-default-key", "TEAM_KEY": "sk-team-key", "HF_TOKEN": "hf_service_token",
           "AWS_SECRET_ACCESS_KEY": "aws-secret"}


def _rephrase(url: str, key_env: str | None) -> dict:
    engine = {"kind": "openai", "base_url": url, "model": "fake-model", "max_retries": 0}
    if key_env:
        engine["api_key_env"] = key_env
    return {"kind": "rephrase", "spec": {"inputs": ["docs"], "output": f"out-{key_env}", "variants": 1,
                                         "engine": engine, "max_new_tokens": 16, "attempts": 1}}


def _worker_environ(root: Path, job_id: str) -> dict[str, str]:
    job = JobStore(f"sqlite:///{root / '.k2forge' / 'jobs.db'}").get(job_id)
    raw = Path(f"/proc/{job.worker_pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_credentials_only_from_the_allowlist_and_a_minimal_worker_env(tmp_path):
    with RecordingFakeOpenAI(hold_first=True) as fake:
        env = {**SECRETS, "K2FORGE_MODEL_ALLOWLIST": f"{fake.url},fake-model",
               "K2FORGE_ALLOW_SECRET_ENV": "OPENAI_API_KEY,TEAM_KEY"}
        svc = Service(tmp_path, extra_env=env).start()
        try:
            for name in ("K2FORGE_API_TOKENS", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "PATH"):
                r = svc.client.post("/v1/jobs", json=_rephrase(fake.url, name))
                assert r.status_code == 422, (name, r.text)
                assert r.json()["detail"][0]["loc"][-1] == "api_key_env" and "allow-secret-env" in r.text
            (tmp_path / "raw").mkdir()
            (tmp_path / "raw" / "a.jsonl").write_text(
                json.dumps({"text": "The Eiffel Tower is 330 metres tall.", "domain": "knowledge"}) + "\n")
            ingest = svc.client.post("/v1/jobs", json={"kind": "ingest", "spec": {"inputs": ["raw"],
                                                                                  "output": "docs"}}).json()
            assert svc.wait_state(ingest["id"], ("succeeded", "failed"))["state"] == "succeeded"
            r = svc.client.post("/v1/jobs", json=_rephrase(fake.url, "TEAM_KEY"))
            assert r.status_code == 201, r.text
            job_id = r.json()["id"]
            assert fake.received.wait(180), "the worker never called the fake server"
            worker_env = _worker_environ(tmp_path, job_id)
            fake.release.set()
        finally:
            svc.stop()
    assert fake.requests[0]["headers"]["authorization"] == "Bearer sk-team-key"
    assert worker_env["TEAM_KEY"] == "sk-team-key"
    for name in ("OPENAI_API_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "K2FORGE_API_TOKENS", "K2FORGE_ADMINS"):
        assert name not in worker_env, name
    leaked = [v for v in (*TOKENS.values(), SECRETS["HF_TOKEN"], SECRETS["AWS_SECRET_ACCESS_KEY"])
              if any(v in x for x in worker_env.values())]
    assert not leaked
