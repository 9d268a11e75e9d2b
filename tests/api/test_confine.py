"""Run-time confinement (corpus.confine): a path under the data root is checked again when the worker opens it.

The end-to-end test holds a real rephrase job inside its first shards (a recording fake OpenAI server that holds
completions), swaps the last input shard for a symlink to a file outside the data root, and lets the job go on:
the worker (or its executor process) must refuse to open it, and the outside text must never reach the engine."""
from __future__ import annotations

import json
import os

import pytest

from corpus.confine import PathEscape, RunGuard
from corpus.schema import table_from_docs
from corpus.shards import write_table
from tests.api.conftest import Service
from tests.api.fakes import RecordingFakeOpenAI

SECRET = "The vault code is 4417 and the key hangs by the door."


def test_guard_checks_paths_under_the_root_only(tmp_path):
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    (root / ".k2forge").mkdir()
    (tmp_path / "outside.txt").write_text("x")
    (root / "in" / "link").symlink_to(tmp_path / "outside.txt")
    (root / "in" / "state").symlink_to(root / ".k2forge")
    guard = RunGuard(root, forbid=[".k2forge"])
    guard.check(root / "in" / "new-file", "open")                  # not there yet: its folder is inside
    guard.check(tmp_path / "outside.txt", "open")                  # not a data path: not the guard's business
    guard.check(3, "open")                                          # a file descriptor
    with pytest.raises(PathEscape, match="outside the data root"):
        guard.check(root / "in" / "link", "open")
    with pytest.raises(PathEscape, match="outside the data root"):
        guard.check(root / "in" / "link" / "deeper", "os.mkdir")
    with pytest.raises(PathEscape, match="jobs may not use"):
        guard.check(root / "in" / "state" / "jobs.db", "open")
    with pytest.raises(PathEscape, match="jobs may not use"):
        guard.audit("os.rename", (str(root / "in" / "a"), str(root / ".k2forge" / "b"), None, None))


@pytest.mark.parametrize("workers", [1, 2], ids=["in-the-worker", "in-executor-processes"])
def test_a_symlink_swapped_in_while_the_job_runs_is_refused_when_opened(tmp_path, workers):
    root = tmp_path / "svc"
    docs = root / "docs"
    for i, text in enumerate(["The Nile flows north through eleven countries.",
                              "The Danube flows east into the Black Sea.", "The Rhine flows into the North Sea."]):
        write_table(docs / f"docs-{i:05d}.parquet", table_from_docs([{"id": f"d{i}", "text": text,
                                                                       "domain": "knowledge"}]))
    write_table(tmp_path / "secret.parquet", table_from_docs([{"id": "s", "text": SECRET, "domain": "knowledge"}]))
    with RecordingFakeOpenAI(hold_first=True) as fake:
        svc = Service(root, extra_env={"K2FORGE_MODEL_ALLOWLIST": f"{fake.url},fake-model",
                                       "OPENAI_API_KEY": "sk-test"}).start()
        try:
            engine = {"kind": "openai", "base_url": fake.url, "model": "fake-model", "max_retries": 0}
            r = svc.client.post("/v1/jobs", json={"kind": "rephrase", "spec": {
                "inputs": ["docs"], "output": "out", "variants": 1, "attempts": 1, "max_new_tokens": 16,
                "engine": engine, "executor": {"kind": "local", "workers": workers}}})
            assert r.status_code == 201, r.text
            job_id = r.json()["id"]
            assert fake.received.wait(180), "the worker never called the fake server"
            # the worker is past its checks before the run and inside its first shard(s): swap the last one
            last = docs / "docs-00002.parquet"
            last.unlink()
            last.symlink_to(tmp_path / "secret.parquet")
            fake.release.set()
            job = svc.wait_state(job_id, ("succeeded", "failed"), timeout=300)
        finally:
            svc.stop()
    assert job["state"] == "failed", job
    assert "outside the data root" in job["error"] and "docs-00002.parquet" in job["error"], job["error"]
    assert not any(SECRET in json.dumps(q.get("body", {})) for q in fake.requests), "outside text was sent"
    assert not (root / "out" / "part-00002.parquet").exists()
    assert os.path.islink(last)
