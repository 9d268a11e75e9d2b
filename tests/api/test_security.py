"""Path confinement, secret redaction and model-source discovery as functions (no server), plus the worker's
refusal to run with a secret it no longer has."""
from __future__ import annotations

import datetime as dt

import pytest

from api.security import REDACTED, PathError, confine, model_sources, split_secrets
from api.settings import Settings
from api.store import JobStore
from api.worker import run_job
from corpus.schema import SchemaError, normalize_doc


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "raw").mkdir(parents=True)
    (r / "raw" / "a.jsonl").write_text("{}\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "passwd").write_text("x")
    return r


def test_globs_cannot_reach_through_a_symlink(root, tmp_path):
    (root / "escape").symlink_to(tmp_path / "outside")
    with pytest.raises(PathError, match="outside the data root"):
        confine("escap?/passwd", root, "inputs[0]")
    with pytest.raises(PathError, match="outside the data root"):
        confine("*/passwd", root, "inputs[0]")
    assert confine("raw/*.jsonl", root, "inputs[0]") == str(root / "raw" / "*.jsonl")


def test_a_directory_holding_a_symlink_out_is_refused(root, tmp_path):
    (root / "raw" / "evil.jsonl").symlink_to(tmp_path / "outside" / "passwd")
    with pytest.raises(PathError, match="evil.jsonl"):
        confine("raw", root, "inputs[0]")


def test_the_service_state_folder_is_off_limits(root):
    (root / ".k2forge").mkdir()
    for value in (".k2forge/jobs.db", ".k2forge", ".k2*/jobs.db"):
        with pytest.raises(PathError, match="state folder"):
            confine(value, root, "output")


def test_a_lone_surrogate_is_a_path_error_not_a_crash(root):
    with pytest.raises(PathError, match="not valid Unicode"):
        confine("a\ud800", root, "inputs[0]")


def test_secrets_by_key_but_not_tokenizer_settings():
    spec = {"eos_token": "<|endoftext|>", "pad_token": "<pad>", "engine": {"api_key": "sk-1", "api_key_env": "K"},
            "hf_token": "hf_x", "token": "t", "password": "p"}
    redacted, secrets = split_secrets(spec)
    assert redacted["eos_token"] == "<|endoftext|>" and redacted["pad_token"] == "<pad>"
    assert secrets == {"engine.api_key": "sk-1", "hf_token": "hf_x", "token": "t", "password": "p"}
    assert redacted["engine"]["api_key_env"] == "K"


def test_model_sources_include_embedding_and_judge_models():
    spec = {"engine": {"model": "m1"}, "verifier": {"embedding_model": "/models/e",
                                                    "judge_engine": {"model": "j", "base_url": "http://x/v1"}}}
    assert sorted(v for _, v in model_sources(spec)) == ["/models/e", "http://x/v1", "j", "m1"]


def test_worker_refuses_a_job_whose_secret_was_lost(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    job, _ = store.create("ingest", {"inputs": ["x"], "output": "y", "hf_token": REDACTED}, "alice", None)
    store.transition(job.id, "running", expect=("queued",))
    assert run_job(store, job.id) == 1
    failed = store.get(job.id)
    assert failed.state == "failed" and "hf_token" in failed.error and "submit it again" in failed.error


def test_state_folder_exists_with_an_external_database(tmp_path, monkeypatch):
    s = Settings(data_root=tmp_path / "data", db_url=f"sqlite:///{tmp_path / 'other.db'}").resolved()
    assert (s.data_root / ".k2forge").is_dir() and s.db_url.endswith("other.db")


def test_meta_that_is_not_json_names_the_record():
    with pytest.raises(SchemaError, match=r"rows.parquet row 3: field 'meta' holds a value that is not JSON"):
        normalize_doc({"text": "t", "domain": "web", "meta": {"when": dt.datetime(2020, 1, 1)}}, "rows.parquet row 3")
