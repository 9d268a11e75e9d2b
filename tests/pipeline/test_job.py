"""The `pipeline` job kind: validation resolves and validates every step (field markers see each step's paths as
they are validated), the dump validates again to the same steps without the file, and the job runs them."""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from corpus import fields
from corpus.fields import Role
from pipeline.corpus_demo import DEFINITION
from pipeline.job import PipelineSpec, run_pipeline_job


def test_a_definition_file_is_resolved_into_typed_steps_that_survive_the_dump(tmp_path):
    spec = PipelineSpec.model_validate({"output": str(tmp_path / "p"), "file": str(DEFINITION)})
    assert spec.name == "corpus-demo" and spec.file is None
    assert [s.name for s in spec.steps] == ["ingest", "dedup", "check-parts", "pack", "mix"]
    assert type(spec.steps[1].spec).__name__ == "DedupSpec"
    assert spec.steps[1].spec.inputs == [str(tmp_path / "p" / "raw")] and spec.steps[1].depends == ["ingest"]
    again = PipelineSpec.model_validate(json.loads(spec.model_dump_json()))
    assert json.loads(again.model_dump_json()) == json.loads(spec.model_dump_json())
    res = run_pipeline_job(again)
    assert res["ran"] == ["ingest", "dedup", "check-parts", "pack", "mix"] and res["outputs"] == [str(tmp_path / "p")]
    dedup = res["steps"]["dedup"]["summary"]
    assert (dedup["docs_in"], dedup["docs_out"]) == (41, 37)


def test_the_validation_hook_sees_every_steps_paths_as_they_are_validated(tmp_path):
    seen = []

    def on_value(role, value, name):
        if role.is_path:
            seen.append(value)
            return value.replace("/area", "/confined")
        return value
    data = {"output": "/area/p", "steps": [
        {"name": "ingest", "kind": "ingest", "spec": {"inputs": ["/area/in.jsonl"], "output": "${output}/raw"}},
        {"name": "dedup", "kind": "dedup", "spec": {"inputs": ["${steps.ingest.output}"], "output": "${output}/d"}}]}
    spec = fields.validate(PipelineSpec, data, on_value)
    # the pipeline output is confined first, so every reference to it resolves to the confined folder
    assert seen[0] == "/area/p" and "/area/in.jsonl" in seen
    assert spec.steps[1].spec.inputs == ["/confined/p/raw"] and spec.steps[1].spec.output == "/confined/p/d"
    assert ("spec.steps[0].spec.inputs[0]", "/confined/in.jsonl") in fields.values(spec, Role.PATH_IN)


def test_bad_pipeline_specs_name_what_is_wrong(tmp_path):
    with pytest.raises(ValidationError, match="one of them"):
        PipelineSpec.model_validate({"output": str(tmp_path), "file": str(DEFINITION), "steps": []})
    with pytest.raises(ValidationError, match=r"step 'dedup' \(dedup\): spec.threshold"):
        PipelineSpec.model_validate({"output": str(tmp_path), "steps": [
            {"name": "dedup", "kind": "dedup", "spec": {"inputs": ["x"], "output": "${output}/d", "threshold": 3}}]})
