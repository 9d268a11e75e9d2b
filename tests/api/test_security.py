"""Path confinement, secret redaction, credential variables and model-source discovery as functions (no server),
all found through the spec fields' markers (corpus.fields), plus the worker's refusal to run with a secret it no
longer has."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import Field, ValidationError

from api.limits import FsBudget
from api.security import (REDACTED, PathError, check_confined, confine, confined_spec, env_names, merge_secrets,
                          missing_secrets, model_sources, split_secrets, worker_env)
from api.settings import Settings
from api.store import JobStore
from api.worker import run_job
from corpus.fields import ModelSource, PathIn, PathOut, Secret, SecretEnv
from corpus.mixture import MixSpec
from corpus.pack import PackSpec
from corpus.schema import SchemaError, normalize_doc
from corpus.spec import JOB_KINDS, Spec
from rephrase.spec import RephraseSpec
from rephrase.verify import VerifierSpec


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


class Creds(Spec):
    api_key: Secret | None = None
    api_key_env: SecretEnv = "DEFAULT_KEY"
    model: ModelSource | None = None


class TokenSpec(Spec):
    inputs: list[PathIn]
    output: PathOut
    eos_token: str = "<|endoftext|>"
    creds: Creds = Field(default_factory=Creds)
    more: list[Creds] = []


def run_never(spec, on_event=None):
    raise AssertionError("a job without its secret must not run")


def test_secrets_are_the_secret_fields_only():
    spec = TokenSpec(inputs=["a"], output="b", creds={"api_key": "sk-1", "api_key_env": "K"},
                     more=[{"api_key": "sk-2"}, {}])
    redacted, secrets = split_secrets(spec)
    assert secrets == {"spec.creds.api_key": "sk-1", "spec.more[0].api_key": "sk-2"}
    assert redacted.creds.api_key == REDACTED and redacted.more[0].api_key == REDACTED
    assert redacted.eos_token == "<|endoftext|>" and redacted.creds.api_key_env == "K"
    assert spec.creds.api_key == "sk-1"                              # the original is untouched
    assert missing_secrets(redacted) == ["spec.creds.api_key", "spec.more[0].api_key"]
    back = merge_secrets(TokenSpec.model_validate(json.loads(redacted.model_dump_json())), secrets)
    assert back == spec and missing_secrets(back) == []
    assert env_names(spec) == [("spec.creds.api_key_env", "K"), ("spec.more[0].api_key_env", "DEFAULT_KEY"),
                               ("spec.more[1].api_key_env", "DEFAULT_KEY")]
    pack = PackSpec(inputs=["x"], output="y", eos_token="<|im_end|>")
    assert split_secrets(pack) == (pack, {})                       # a tokenizer setting is not a secret


def test_model_sources_are_what_the_request_set_including_embedding_and_judge_models():
    spec = TokenSpec.model_validate({"inputs": ["a"], "output": "b", "more": [{"model": "m1"}, {}]})
    assert model_sources(spec) == [("spec.more[0].model", "m1")]
    verifier = VerifierSpec.model_validate({"embedding_model": "/models/e", "judge": True, "judge_engine": {
        "kind": "openai", "model": "j", "base_url": "http://x/v1"}})
    assert sorted(v for _, v in model_sources(verifier)) == ["/models/e", "http://x/v1", "j"]


def test_paths_are_confined_as_they_are_validated(root, tmp_path):
    spec = confined_spec(TokenSpec, {"inputs": ["raw/*.jsonl", str(root / "raw")], "output": "out"}, root)
    assert spec.inputs == [str(root / "raw" / "*.jsonl"), str(root / "raw")] and spec.output == str(root / "out")
    with pytest.raises(ValidationError) as e:
        confined_spec(TokenSpec, {"inputs": ["raw", "../outside/passwd"], "output": "/etc"}, root)
    assert [(err["loc"], err["type"]) for err in e.value.errors()] == [(("inputs", 1), "path"), (("output",), "path")]
    assert "outside the data root" in e.value.errors()[1]["msg"]


def test_a_styles_file_outside_the_root_is_refused_before_its_validator_reads_it(root, tmp_path):
    outside = tmp_path / "outside" / "styles.yaml"
    outside.write_text("styles: {leak: {name: 1}}\n")
    data = {"inputs": ["raw"], "output": "o", "styles_file": str(outside)}
    with pytest.raises(ValidationError, match="unknown field"):     # what reading it would tell a client
        RephraseSpec.model_validate(data)
    with pytest.raises(ValidationError) as e:
        confined_spec(RephraseSpec, data, root)
    assert [err["loc"] for err in e.value.errors()] == [("styles_file",)]
    assert "outside the data root" in str(e.value) and "unknown field" not in str(e.value)


def test_paths_a_validator_builds_are_confined_after_validation(root):
    inline = {"sources": [{"name": "a", "paths": ["../outside/x"], "domain": "web", "tokens": 10}]}
    with pytest.raises(PathError) as e:
        confined_spec(MixSpec, {"mixture": inline, "output": "m.json"}, root)
    assert e.value.field == "spec.mixture.sources[0].paths[0]"
    inline["sources"][0]["paths"] = ["packed/a"]
    spec = confined_spec(MixSpec, {"mixture": inline, "output": "m.json"}, root)
    assert spec.mixture.sources[0].paths == [str(root / "packed" / "a")]


def test_glob_budget_counts_each_path_once(root):
    with pytest.raises(ValidationError, match="at most 2 glob patterns"):
        confined_spec(TokenSpec, {"inputs": ["raw/*"] * 3, "output": "o"}, root, FsBudget(max_patterns=2))
    confined_spec(TokenSpec, {"inputs": ["raw/*"] * 2, "output": "o"}, root, FsBudget(max_patterns=2))


def test_the_run_time_check_sees_a_symlink_made_after_the_submit(root, tmp_path):
    spec = confined_spec(TokenSpec, {"inputs": ["raw/late"], "output": "o"}, root)
    check_confined(spec, root)
    (root / "raw" / "late").symlink_to(tmp_path / "outside")
    with pytest.raises(PathError, match=r"spec.inputs\[0\]: path .* is outside the data root"):
        check_confined(spec, root)


def test_worker_env_passes_only_allowlisted_named_credentials():
    environ = {"PATH": "/bin", "K": "sk-k", "DEFAULT_KEY": "sk-d", "HF_TOKEN": "hf", "LC_ALL": "C"}
    spec = TokenSpec(inputs=["a"], output="b", creds={"api_key_env": "K"}, more=[{"api_key_env": "HF_TOKEN"}])
    assert worker_env(environ, spec, ["K", "DEFAULT_KEY"]) == {"PATH": "/bin", "LC_ALL": "C", "K": "sk-k"}
    assert worker_env(environ, None, ["K"]) == {"PATH": "/bin", "LC_ALL": "C"}


def test_worker_refuses_a_job_whose_secret_was_lost(tmp_path, monkeypatch):
    monkeypatch.setitem(JOB_KINDS, "secretive", (f"{__name__}:TokenSpec", f"{__name__}:run_never"))
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    spec = {"inputs": ["x"], "output": str(tmp_path / "y"), "creds": {"api_key": REDACTED}}
    job, _ = store.create("secretive", spec, "alice", None)
    store.transition(job.id, "running", expect=("queued",))
    assert run_job(store, job.id) == 1
    failed = store.get(job.id)
    assert failed.state == "failed" and "spec.creds.api_key" in failed.error and "submit it again" in failed.error


def test_state_folder_exists_with_an_external_database(tmp_path, monkeypatch):
    s = Settings(data_root=tmp_path / "data", db_url=f"sqlite:///{tmp_path / 'other.db'}").resolved()
    assert (s.data_root / ".k2forge").is_dir() and s.db_url.endswith("other.db")


def test_meta_that_is_not_json_names_the_record():
    with pytest.raises(SchemaError, match=r"rows.parquet row 3: field 'meta' holds a value that is not JSON"):
        normalize_doc({"text": "t", "domain": "web", "meta": {"when": dt.datetime(2020, 1, 1)}}, "rows.parquet row 3")
