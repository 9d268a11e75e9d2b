"""Spec field markers (corpus.fields): which fields carry which role, the walks over a validated spec (nested specs,
lists, dicts, Optional and unions), replace, the validation hook, and every job kind's spec marking its paths."""
from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from corpus.fields import (PATHS, ModelSource, PathIn, PathOut, Role, Secret, SecretEnv, field_roles, loc_parts,
                           replace, roles_of, validate, values, walk)
from corpus.spec import JOB_KINDS, Spec, resolve


class Engine(Spec):
    kind: Literal["x"] = "x"
    model: ModelSource | None = None
    tokenizer: PathIn | None = None
    api_key: Secret | None = None
    api_key_env: SecretEnv = "KEY"
    device: str = "cpu"


class Verifier(Spec):
    embedding_model: ModelSource | None = None
    judge_engine: Engine | None = None
    checks: list[str] = ["length"]


class Job(Spec):
    inputs: list[PathIn]
    output: PathOut
    styles_file: PathIn | None = None
    mixture: PathIn | Verifier = "m.yaml"
    named: dict[str, PathIn] = {}
    engine: Engine = Field(default_factory=Engine)
    verifier: Verifier = Field(default_factory=Verifier)
    eos_token: str = "<|endoftext|>"
    title: str = "not a path"


def _job() -> Job:
    return Job.model_validate({
        "inputs": ["a", "b/*.parquet"], "output": "out", "named": {"k": "n"},
        "engine": {"model": "m1", "tokenizer": "tok.json", "api_key": "sk-1"},
        "verifier": {"embedding_model": "e", "judge_engine": {"model": "j", "api_key_env": "JUDGE_KEY"}}})


def test_roles_are_found_in_lists_optionals_unions_and_annotated_metadata():
    assert roles_of(list[PathIn]) == {Role.PATH_IN}
    assert roles_of(PathOut | None) == {Role.PATH_OUT}
    assert roles_of(dict[str, list[Secret]]) == {Role.SECRET}
    assert roles_of(str, [Role.MODEL_SOURCE]) == {Role.MODEL_SOURCE}
    assert roles_of(Annotated[list[str], "other metadata"]) == frozenset()
    assert roles_of(list[str] | int) == frozenset()
    roles = field_roles(Job)
    assert roles["inputs"] == {Role.PATH_IN} and roles["output"] == {Role.PATH_OUT}
    assert roles["mixture"] == {Role.PATH_IN} and roles["engine"] == frozenset() == roles["eos_token"]
    assert Role.PATH_IN.is_path and Role.PATH_OUT.is_path and not Role.SECRET_ENV.is_path


def test_walk_finds_exactly_the_marked_values_of_a_nested_spec():
    found = list(walk(_job()))
    assert found == [
        ("spec.inputs[0]", Role.PATH_IN, "a"), ("spec.inputs[1]", Role.PATH_IN, "b/*.parquet"),
        ("spec.output", Role.PATH_OUT, "out"), ("spec.mixture", Role.PATH_IN, "m.yaml"),
        ("spec.named.k", Role.PATH_IN, "n"),
        ("spec.engine.model", Role.MODEL_SOURCE, "m1"), ("spec.engine.tokenizer", Role.PATH_IN, "tok.json"),
        ("spec.engine.api_key", Role.SECRET, "sk-1"), ("spec.engine.api_key_env", Role.SECRET_ENV, "KEY"),
        ("spec.verifier.embedding_model", Role.MODEL_SOURCE, "e"),
        ("spec.verifier.judge_engine.model", Role.MODEL_SOURCE, "j"),
        ("spec.verifier.judge_engine.api_key_env", Role.SECRET_ENV, "JUDGE_KEY")]
    assert values(_job(), *PATHS)[-1] == ("spec.engine.tokenizer", "tok.json")
    assert values(_job(), Role.SECRET_ENV) == [("spec.engine.api_key_env", "KEY"),
                                               ("spec.verifier.judge_engine.api_key_env", "JUDGE_KEY")]


def test_a_sub_spec_in_a_marked_union_field_is_walked_as_a_spec():
    job = Job.model_validate({"inputs": ["a"], "output": "o", "mixture": {"embedding_model": "e2"}})
    assert values(job, Role.PATH_IN) == [("spec.inputs[0]", "a")]
    assert ("spec.mixture.embedding_model", "e2") in values(job, Role.MODEL_SOURCE)


def test_explicit_walks_skip_defaults_at_every_level():
    job = Job.model_validate({"inputs": ["a"], "output": "o", "engine": {"tokenizer": "t"}})
    assert list(walk(job, explicit=True)) == [("spec.inputs[0]", Role.PATH_IN, "a"),
                                              ("spec.output", Role.PATH_OUT, "o"),
                                              ("spec.engine.tokenizer", Role.PATH_IN, "t")]
    assert ("spec.engine.api_key_env", "KEY") in values(job, Role.SECRET_ENV)       # defaults without it


def test_replace_maps_marked_values_into_a_copy():
    job = _job()
    new = replace(job, PATHS, lambda loc, role, v: f"/root/{v}" if role is Role.PATH_IN else f"/out/{v}")
    assert new.inputs == ["/root/a", "/root/b/*.parquet"] and new.output == "/out/out"
    assert new.named == {"k": "/root/n"} and new.engine.tokenizer == "/root/tok.json"
    assert new.engine.model == "m1" and new.engine.api_key == "sk-1" and new.title == "not a path"
    assert job.inputs == ["a", "b/*.parquet"] and job.engine.tokenizer == "tok.json"      # untouched
    assert new.verifier is job.verifier                          # no path below it: shared, not copied
    assert replace(job, {Role.SECRET}, lambda loc, role, v: v) is job
    seen = []
    replace(job, {Role.SECRET, Role.SECRET_ENV}, lambda loc, role, v: seen.append((loc, role)) or v)
    assert seen == [("spec.engine.api_key", Role.SECRET), ("spec.engine.api_key_env", Role.SECRET_ENV),
                    ("spec.verifier.judge_engine.api_key_env", Role.SECRET_ENV)]


def test_validate_hands_each_given_marked_value_to_the_hook_before_model_validators():
    calls: list[tuple[Role, str, str]] = []

    def hook(role: Role, value: str, name: str) -> str:
        calls.append((role, value, name))
        return value.upper() if role.is_path else value

    class Checked(Job):
        def model_post_init(self, context: Any) -> None:
            assert all(p.isupper() for p in self.inputs), "a model validator saw an unhooked path"

    job = validate(Checked, {"inputs": ["a"], "output": "o", "engine": {"model": "m"}}, hook)
    assert job.inputs == ["A"] and job.output == "O" and job.engine.model == "m" and job.mixture == "m.yaml"
    assert calls == [(Role.PATH_IN, "a", "inputs"), (Role.PATH_OUT, "o", "output"),
                     (Role.MODEL_SOURCE, "m", "model")]        # defaults (mixture, api_key_env) are not validated
    assert Job.model_validate({"inputs": ["a"], "output": "o"}).inputs == ["a"]    # no hook without validate()

    def refuse(role: Role, value: str, name: str) -> str:
        raise ValueError(f"{name}: no")

    with pytest.raises(ValidationError) as e:
        validate(Job, {"inputs": ["a", "b"], "output": "o"}, refuse)
    assert [err["loc"] for err in e.value.errors()] == [("inputs", 0), ("inputs", 1), ("output",)]


def test_markers_leave_the_json_schema_plain():
    props = Job.model_json_schema()["properties"]
    assert props["inputs"] == {"items": {"type": "string"}, "title": "Inputs", "type": "array"}
    assert props["output"] == {"title": "Output", "type": "string"}


def test_loc_parts():
    assert loc_parts("spec.inputs[0]") == ["spec", "inputs", 0]
    assert loc_parts("spec.mixture.sources[1].paths[0]") == ["spec", "mixture", "sources", 1, "paths", 0]
    assert loc_parts("spec") == ["spec"]


@pytest.mark.parametrize("kind", sorted(JOB_KINDS))
def test_every_job_kind_marks_its_output_and_inputs(kind):
    cls = resolve(JOB_KINDS[kind][0])
    roles = field_roles(cls)
    assert roles["output"] == {Role.PATH_OUT}, kind
    if kind != "rephrase-vs-repeat":                 # the probe generates its corpus: it reads no input path
        assert any(Role.PATH_IN in r for r in roles.values()), kind
    for name, field in cls.model_fields.items():     # a path-named plain string field would escape confinement
        plain = not roles[name] and field.annotation in (str, str | None, list[str], list[str] | None)
        if plain and (name in ("inputs", "output", "tokenizer", "manifest") or name.endswith(("_file", "_dir"))):
            pytest.fail(f"{kind}: field {name} looks like a path but carries no marker")


def test_the_rewrite_specs_mark_nested_engine_and_verifier_fields():
    from rephrase.spec import RephraseSpec
    spec = RephraseSpec.model_validate({"inputs": ["d"], "output": "o", "styles_file": None,
                                        "verifier": {"embedding_model": "/models/e"}})
    found = dict(values(spec, Role.MODEL_SOURCE, Role.PATH_IN, Role.PATH_OUT))
    assert found["spec.inputs[0]"] == "d" and found["spec.output"] == "o"
    assert found["spec.verifier.embedding_model"] == "/models/e"


class _Unmarked(BaseModel):
    path: str


def test_an_unmarked_model_walks_to_nothing():
    assert list(walk(_Unmarked(path="/etc/passwd"))) == []
