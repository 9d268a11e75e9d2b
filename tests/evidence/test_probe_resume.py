"""The probe as a pipeline (evidence.probe.definition, run by pipeline.runner): a rerun into the same folder
reuses every finished step (no engine request, no training) and returns the same results; a changed field reruns
only the steps that read it and those below them; a folder holding something else is refused."""
import json
import re
from pathlib import Path

import pytest

from corpus.events import Log
from evidence.probe import run_rephrase_vs_repeat
from evidence.spec import RephraseVsRepeatSpec
from evidence.world import make_people
from pipeline.runner import PipelineError, state_path

from .paraphrase_engine import ParaphraseEngine, ParaphraseStage


def _run(spec: RephraseVsRepeatSpec) -> tuple[dict, ParaphraseEngine, dict[str, str]]:
    """(results, the scripted engine, step -> 'running' | 'reused' from the runner's log lines)."""
    people = make_people(spec.people, spec.seed, spec.qa_train_fraction)
    engine = ParaphraseEngine(people, lambda doc, v: v % 2 == 0, spec.n_variants)
    what: dict[str, str] = {}

    def on_event(ev):
        m = isinstance(ev, Log) and re.match(r"pipeline: (\S+) (\(\S+\) running|reused)", ev.message)
        if m:
            what[m.group(1)] = "reused" if m.group(2) == "reused" else "running"
    res = run_rephrase_vs_repeat(spec, on_event, make_stage=lambda rspec: ParaphraseStage(rspec, engine))
    return res, engine, what


def test_a_rerun_reuses_every_step_and_a_changed_field_reruns_its_dependents(tmp_path):
    spec = RephraseVsRepeatSpec(output=str(tmp_path / "probe"), size="tiny", arms=["raw_x10", "reph_10x1"])
    first, engine, what = _run(spec)
    runs = ["train-raw_x10-seed-0", "train-reph_10x1-seed-0"]
    assert what == {s: "running" for s in ["world", "rephrase", "data", *runs, "report"]}
    assert len(engine.requests) == spec.people * spec.n_variants
    state = json.loads(state_path(tmp_path / "probe").read_text())
    assert state["pipeline"] == "evidence-rephrase-vs-repeat"
    assert {r["status"] for r in state["steps"].values()} == {"done"}
    ckpt = Path(first["runs"]["raw_x10"][0]["checkpoint"])
    mtime = ckpt.stat().st_mtime_ns

    second, engine, what = _run(spec)
    assert engine.requests == [] and set(what.values()) == {"reused"} and len(what) == 6
    assert second["table"] == first["table"] and second["runs"] == first["runs"] and second["yield"] == first["yield"]
    assert ckpt.stat().st_mtime_ns == mtime
    assert json.loads((tmp_path / "probe" / "results.json").read_text())["table"] == first["table"]

    # a second training seed: the world, rephrasings, data and seed-0 runs stay; the new runs and the report run
    more = spec.model_copy(update={"seeds": [0, 1]})
    third, engine, what = _run(more)
    assert engine.requests == []
    assert {s for s, w in what.items() if w == "running"} == {"train-raw_x10-seed-1", "train-reph_10x1-seed-1",
                                                              "report"}
    assert third["runs"]["raw_x10"][0] == first["runs"]["raw_x10"][0] and len(third["runs"]["raw_x10"]) == 2


def test_a_folder_that_is_not_the_probes_is_refused(tmp_path):
    out = tmp_path / "probe"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    spec = RephraseVsRepeatSpec(output=str(out), size="tiny", arms=["raw_x10"])
    with pytest.raises(PipelineError, match="not a pipeline output folder"):
        run_rephrase_vs_repeat(spec)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_folder_the_probe_wrote_before_it_was_a_pipeline_is_replaced(tmp_path):
    out = tmp_path / "probe"
    out.mkdir()
    (out / "spec.yaml").write_text("kind: evidence-rephrase-vs-repeat\nspec: {}\n")
    (out / "results.json").write_text("{}")
    spec = RephraseVsRepeatSpec(output=str(out), size="tiny", arms=["raw_x10"])
    res = run_rephrase_vs_repeat(spec)            # no rephrase arm: no engine
    assert set(res["runs"]) == {"raw_x10"} and res["yield"] is None and state_path(out).exists()
    assert json.loads((out / "results.json").read_text())["table"] == res["table"]


def test_fresh_starts_over(tmp_path):
    spec = RephraseVsRepeatSpec(output=str(tmp_path / "probe"), size="tiny", arms=["raw_x10"])
    first = run_rephrase_vs_repeat(spec)
    (tmp_path / "probe" / "world" / "stray.txt").write_text("from before")   # a reuse would keep it
    again = run_rephrase_vs_repeat(spec, fresh=True)
    assert not (tmp_path / "probe" / "world" / "stray.txt").exists() and again["table"] == first["table"]


def test_a_failed_step_raises_its_own_error_and_the_rerun_continues_from_it(tmp_path):
    spec = RephraseVsRepeatSpec(output=str(tmp_path / "probe"), size="tiny", arms=["raw_x10", "reph_10x1"])

    def broken(rspec):
        raise ConnectionError("engine down")
    with pytest.raises(ConnectionError, match="engine down"):
        run_rephrase_vs_repeat(spec, make_stage=broken)
    steps = json.loads(state_path(tmp_path / "probe").read_text())["steps"]
    assert {n: r["status"] for n, r in steps.items()} == {"world": "done", "rephrase": "failed"}
    assert "engine down" in steps["rephrase"]["error"] and (tmp_path / "probe" / "spec.yaml").exists()
    res, engine, what = _run(spec)
    assert what["world"] == "reused" and what["rephrase"] == what["report"] == "running"
    assert len(engine.requests) == spec.people * spec.n_variants and set(res["runs"]) == {"raw_x10", "reph_10x1"}
