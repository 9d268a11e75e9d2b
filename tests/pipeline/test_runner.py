"""The pipeline runner: run order, validation before anything runs, resume, failure of one step, clean reruns,
folder safety, events; with recording test steps (tests/pipeline/steps.py), plus the corpus demo as a pipeline
against the numbers the hand-written chain of corpus/demo.py produced before it became one."""
from __future__ import annotations

import json

import pytest

from corpus.events import Log, Progress
from corpus.spec import SpecError
from pipeline import registry
from pipeline.definition import load_definition, resolve
from pipeline.runner import PipelineError, StepFailed, run_pipeline, state_path
from tests.pipeline import steps as test_steps


@pytest.fixture(autouse=True)
def write_step(monkeypatch):
    monkeypatch.setattr(registry, "STEPS", dict(registry.STEPS))     # registrations end with the test
    registry.register_step("test.write", "tests.pipeline.steps:WriteSpec", "tests.pipeline.steps:write")
    test_steps.CALLS.clear()
    yield
    test_steps.CALLS.clear()
    test_steps.FAILING.clear()


def _step(name, text="x", inputs=(), depends=(), **extra):
    spec = {"output": f"${{output}}/{name}.txt", "text": text,
            "inputs": [f"${{steps.{i}.output}}" for i in inputs], **extra.pop("spec", {})}
    return {"name": name, "kind": "test.write", "spec": spec, "depends": list(depends), **extra}


def _chain(b_text="b", **b_extra):
    """a -> b -> c, plus d on its own."""
    return {"name": "chain", "steps": [_step("a", "a"), _step("b", b_text, inputs=["a"], **b_extra),
                                       _step("c", "c", inputs=["b"]), _step("d", "d")]}


def _ran():
    return [name for name, _ in test_steps.CALLS]


# ------------------------------------------------------------------------------------------------ order, validation
def test_depends_and_references_order_the_steps_ties_in_definition_order(tmp_path):
    defn, _ = load_definition({"steps": [_step("c", inputs=["b"]), _step("x"), _step("b", depends=["a"]),
                                         _step("a")]})
    order = [s.name for s in resolve(defn, tmp_path)]
    assert order == ["x", "a", "b", "c"]
    run_pipeline({"steps": [_step("c", inputs=["b"]), _step("b", "B", inputs=["a"]), _step("a", "A")]}, tmp_path / "o")
    assert _ran() == ["a", "b", "c"]
    assert (tmp_path / "o" / "c.txt").read_text() == "xBA"        # c read b's output, which read a's


def test_a_cycle_is_an_error_naming_it_and_nothing_runs(tmp_path):
    defn = {"steps": [_step("a", depends=["c"]), _step("b", inputs=["a"]), _step("c", depends=["b"])]}
    with pytest.raises(SpecError, match=r"cycle: a -> c -> b -> a"):
        run_pipeline(defn, tmp_path / "o")
    assert _ran() == [] and not (tmp_path / "o").exists()


def test_every_bad_step_is_named_before_anything_runs(tmp_path):
    defn = {"name": "bad", "steps": [
        _step("ok"),
        _step("typo", spec={"txet": "x"}),                              # a field the spec does not have
        _step("lost", depends=["nowhere"]),                             # an unknown step
        _step("ref", spec={"text": "${steps.ghost.output}"}),           # a reference to an unknown step
        _step("param", spec={"text": "${params.missing}"}),
        {"name": "kindless", "kind": "no-such-kind", "spec": {}},
        {"name": "dedup", "kind": "dedup", "spec": {"inputs": [], "output": "${output}/d", "threshold": 7}}]}
    with pytest.raises(SpecError) as e:
        run_pipeline(defn, tmp_path / "o")
    msg = str(e.value)
    for part in ("step 'lost': depends: unknown step(s) nowhere", "step 'ref': spec.text: ${steps.ghost.output}: "
                 "no step 'ghost'", "step 'param': spec.text: ${params.missing}: no parameter 'missing'"):
        assert part in msg
    assert _ran() == [] and not (tmp_path / "o").exists()
    defn["steps"] = [s for s in defn["steps"] if s["name"] in ("ok", "typo", "kindless", "dedup")]
    with pytest.raises(SpecError) as e:          # spec-level errors, all steps at once
        run_pipeline(defn, tmp_path / "o")
    msg = str(e.value)
    assert "step 'typo' (test.write): spec.txet: Extra inputs are not permitted" in msg
    assert "step 'kindless': kind: unknown step kind 'no-such-kind'" in msg
    assert "step 'dedup' (dedup): spec.threshold" in msg
    assert _ran() == []


def test_registered_step_names_need_a_dot():
    with pytest.raises(ValueError, match="needs a dot"):
        registry.register_step("write", "tests.pipeline.steps:WriteSpec", "tests.pipeline.steps:write")


def test_references_whole_values_params_and_paths(tmp_path):
    defn = {"params": {"t": {"text": "from-params"}, "n": 3},
            "steps": [{"name": "a", "kind": "test.write", "defaults": "${params.t}",
                       "spec": {"output": "${output}/a-${params.n}.txt"}}]}
    res = run_pipeline(defn, tmp_path / "o", params={"n": 4})
    assert (tmp_path / "o" / "a-4.txt").read_text() == "from-params"
    assert res["steps"]["a"]["summary"]["text"] == "from-params"
    with pytest.raises(SpecError, match=r"the path reference \$\{output\} must start the value"):
        run_pipeline({"steps": [_step("a", spec={"output": "x/${output}/a"})]}, tmp_path / "p")
    with pytest.raises(SpecError, match="duplicate|more than once"):
        run_pipeline({"steps": [_step("a"), _step("a")]}, tmp_path / "q")


# ------------------------------------------------------------------------------------------------ resume
def test_second_run_reuses_and_a_changed_spec_reruns_that_step_and_its_dependents(tmp_path):
    out = tmp_path / "o"
    first = run_pipeline(_chain(), out)
    assert _ran() == ["a", "b", "c", "d"] and first["ran"] == ["a", "b", "c", "d"]
    test_steps.CALLS.clear()
    again = run_pipeline(_chain(), out)
    assert _ran() == [] and again["reused"] == ["a", "b", "c", "d"]
    assert again["steps"] == first["steps"]
    changed = run_pipeline(_chain(b_text="B2"), out)
    assert _ran() == ["b", "c"] and changed["reused"] == ["a", "d"]
    # their old outputs went first (the test step, like a job, keeps a file it finds)
    assert (out / "b.txt").read_text() == "B2a" and (out / "c.txt").read_text() == "cB2a"
    state = json.loads(state_path(out).read_text())
    assert state["pipeline"] == "chain" and {r["status"] for r in state["steps"].values()} == {"done"}
    assert state["steps"]["b"]["digest"] != first["steps"]["b"]["digest"]
    assert state["steps"]["c"]["digest"] != first["steps"]["c"]["digest"]   # its input's digest is part of it


def test_a_step_rerun_for_lost_state_reruns_its_dependents(tmp_path):
    out = tmp_path / "o"
    run_pipeline(_chain(), out)
    state = json.loads(state_path(out).read_text())
    del state["steps"]["a"]                       # as if a had been interrupted
    state_path(out).write_text(json.dumps(state))
    test_steps.CALLS.clear()
    run_pipeline(_chain(), out)
    assert _ran() == ["a", "b", "c"]              # d does not depend on a


def test_failure_stops_its_dependents_records_it_and_a_rerun_continues(tmp_path):
    out = tmp_path / "o"
    events = []
    with pytest.raises(StepFailed) as e:
        run_pipeline(_chain(spec={"fail": True}), out, on_event=events.append)
    assert e.value.failed == {"b": "RuntimeError: b failed on purpose"} and e.value.skipped == ["c"]
    assert isinstance(e.value.__cause__, RuntimeError)
    assert _ran() == ["a", "b", "d"]              # c depends on b; d does not and ran
    state = json.loads(state_path(out).read_text())
    assert state["steps"]["b"]["status"] == "failed" and "on purpose" in state["steps"]["b"]["error"]
    assert "c" not in state["steps"] and state["steps"]["d"]["status"] == "done"
    assert any(isinstance(ev, Log) and ev.level == "error" and "b failed" in ev.message for ev in events)
    assert any(isinstance(ev, Log) and "c not run" in ev.message for ev in events)
    test_steps.CALLS.clear()
    res = run_pipeline(_chain(), out)
    assert _ran() == ["b", "c"] and res["reused"] == ["a", "d"]


def test_clean_step_starts_over_on_rebuilt_inputs_but_resumes_after_an_interruption(tmp_path):
    out = tmp_path / "o"
    defn = {"name": "clean", "steps": [_step("a", "a"), _step("t", "t", inputs=["a"], clean=True),
                                       _step("u", "u", inputs=["a"])]}

    def forget_a():                                # a reruns with the same spec: its dependents' inputs rebuilt
        state = json.loads(state_path(out).read_text())
        del state["steps"]["a"]
        state_path(out).write_text(json.dumps(state))
    run_pipeline(defn, out)
    forget_a()
    res = run_pipeline(defn, out)
    assert res["ran"] == ["a", "t", "u"]
    assert res["steps"]["t"]["summary"]["found"] is False      # clean: its old output went
    assert res["steps"]["u"]["summary"]["found"] is True       # not clean: resumes from what it wrote
    forget_a()
    test_steps.FAILING.add("t")
    with pytest.raises(StepFailed):               # t's run breaks off
        run_pipeline(defn, out)
    test_steps.FAILING.clear()
    (out / "t.txt").write_text("partial")         # what the interrupted run left
    res = run_pipeline(defn, out)                 # same inputs as its failed record: resumed, not cleared
    assert res["ran"] == ["t"] and res["steps"]["t"]["summary"]["found"] is True
    assert (out / "t.txt").read_text() == "partial"


def test_a_changed_step_never_clears_an_output_outside_the_pipeline_folder(tmp_path):
    outside = tmp_path / "elsewhere.txt"
    run_pipeline({"steps": [_step("a", "a", spec={"output": str(outside)})]}, tmp_path / "o")
    run_pipeline({"steps": [_step("a", "A", spec={"output": str(outside)})]}, tmp_path / "o")
    assert outside.read_text() == "a"             # kept (the test step keeps a file it finds)


def test_events_of_the_runner_and_of_a_job_step(tmp_path):
    from corpus.samples import sample_files
    events = []
    defn = {"steps": [{"name": "ingest", "kind": "ingest",
                       "spec": {"inputs": [str(sample_files()[0])], "output": "${output}/raw"}}, _step("w")]}
    run_pipeline(defn, tmp_path / "o", on_event=events.append)
    ours = [ev for ev in events if isinstance(ev, Progress) and ev.stage == "pipeline"]
    assert [(ev.done, ev.total, ev.unit) for ev in ours] == [(1, 2, "ingest"), (2, 2, "w")]
    forwarded = [ev for ev in events if isinstance(ev, Progress) and ev.stage != "pipeline"]
    assert forwarded and all(ev.extra["step"] == "ingest" for ev in forwarded)


# ------------------------------------------------------------------------------------------------ folders
def test_output_folder_rules(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    for fresh in (False, True):
        with pytest.raises(PipelineError, match="not a pipeline output folder"):
            run_pipeline(_chain(), foreign, fresh=fresh)
    assert (foreign / "notes.txt").read_text() == "keep"
    out = tmp_path / "o"
    run_pipeline(_chain(), out)
    with pytest.raises(PipelineError, match="holds a run of pipeline 'chain', not 'other'"):
        run_pipeline({**_chain(), "name": "other"}, out)
    test_steps.CALLS.clear()
    run_pipeline(_chain(), out, fresh=True)
    assert _ran() == ["a", "b", "c", "d"]


# ------------------------------------------------------------------------------------------------ corpus demo
#: what corpus/demo.py's hand-written chain (before it became pipeline/definitions/corpus-demo.yaml) produced on
#: the bundled samples, recorded from `k2forge corpus demo --json` at commit 0944281
BEFORE = {"ingest": {"inputs": 4, "rows_in": 41, "rows_out": 41, "chars": 30699},
          "dedup": {"docs_in": 41, "docs_out": 37, "exact_removed": 1, "near_removed": 3, "clusters": 4},
          "pack": {"total_docs": 37, "total_tokens": 8047, "tokenizer": "SmolLM2-135M-Instruct", "dtype": "uint16"},
          "mix": {"allotted_tokens": 16000, "shortfall_tokens": 0}}
BEFORE_SOURCES = {"knowledge": (6976, 2.764962), "math": (5232, 2.281727), "code": (2616, 1.890173),
                  "web": (1176, 1.0)}


def test_corpus_demo_pipeline_yields_the_numbers_of_the_old_chain(tmp_path):
    from pipeline.corpus_demo import run_corpus_demo
    res = run_corpus_demo(tmp_path / "demo")
    assert set(res["steps"]) == set(BEFORE) == set(res["seconds"])
    for step, numbers in BEFORE.items():
        assert {k: res["steps"][step][k] for k in numbers} == numbers, step
    got = {k: (v["allotted_tokens"], v["epochs"]) for k, v in res["steps"]["mix"]["sources"].items()}
    assert got == BEFORE_SOURCES
    again = run_corpus_demo(tmp_path / "demo")           # a rerun reuses every step
    assert again["steps"] == res["steps"]
    state = json.loads(state_path(tmp_path / "demo").read_text())
    assert set(state["steps"]) == {"ingest", "dedup", "check-parts", "pack", "mix"}
