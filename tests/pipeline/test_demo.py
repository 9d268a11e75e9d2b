"""`k2forge demo` end to end at reduced size (real SmolLM2 generation, real MiniLM verification, real training,
real transformers load of the export), plus the demo's config, mixture resolution and folder-safety rules.

The end-to-end run happens once per module: first with an injected export failure (the steps after it do not
run, every earlier step is recorded), then resumed; the tests check that the resume reused the finished steps
and that every artifact exists, parses and agrees with the report. The reduced run takes about 45 s on 2 idle cores
(two SmolLM2 loads, one document rewritten per job, 8 training steps), so it stays in the default test stage.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpus.spec import SpecError
from pipeline import registry
from pipeline.definition import load_definition, resolve
from pipeline.demo import DEFINITION, DemoError, params_of, run_demo, state_path
from pipeline.demo.config import load_config, resolve_mixture
from pipeline.runner import StepFailed, prepare_output

#: the demo's steps in run order
STEP_NAMES = ["ingest", "select-knowledge", "rephrase", "verify", "select-math", "mathnotes", "dedup", "pack", "mix",
              "train", "eval", "export", "sample", "report"]


class InjectedExportFailure(RuntimeError):
    pass


def _failing_export(spec, ctx):
    raise InjectedExportFailure("export failed on purpose")


def _rows(d: Path, pattern: str = "*.parquet") -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in d.glob(pattern) if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    mp = pytest.MonkeyPatch()
    mp.setitem(registry.STEPS, "demo.export", (registry.STEPS["demo.export"][0],
                                               "tests.pipeline.test_demo:_failing_export"))
    with pytest.raises(StepFailed) as failed:
        run_demo(out, size="small")
    mp.undo()
    assert isinstance(failed.value.__cause__, InjectedExportFailure)
    assert failed.value.skipped == ["sample", "report"]
    interrupted = json.loads(state_path(out).read_text())
    res = run_demo(out, size="small")
    return out, interrupted, res


def test_interrupted_run_resumes_at_the_failed_step(demo_run):
    out, interrupted, res = demo_run
    steps = interrupted["steps"]
    before = STEP_NAMES[:STEP_NAMES.index("export")]
    assert {n for n, r in steps.items() if r["status"] == "done"} == set(before)
    assert steps["export"]["status"] == "failed" and "export failed on purpose" in steps["export"]["error"]
    # the resume kept the recorded steps (same finish times) and ran export, sample and the report
    for name in before:
        assert res["stages"][name]["finished_at"] == steps[name]["finished_at"]
    assert set(res["stages"]) == set(STEP_NAMES) - {"report"}


def test_every_artifact_exists_and_parses(demo_run):
    out, _, res = demo_run
    for d in ("raw", "rephrase", "mathnotes", "dedup"):
        for p in (out / d).glob("*.parquet"):
            pq.read_table(p)
        assert (out / d / ".k2forge/index.json").exists()
    packed = json.loads((out / "packed" / ".k2forge/index.json").read_text())
    import numpy as np
    for sh in packed["shards"]:       # token shards: tokens x dtype bytes
        size = (out / "packed" / f"{sh['prefix']}.bin").stat().st_size
        assert size == sh["tokens"] * np.dtype(packed["dtype"]).itemsize
    manifest = json.loads((out / "mixture.json").read_text())
    assert manifest["allotted_tokens"] > 0
    metrics = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [m for m in metrics if m["type"] == "train"]
    assert len(train_rows) == load_config("small").train["steps"]
    assert all(m["loss"] > 0 for m in train_rows)
    ev = json.loads((out / "eval.json").read_text())
    assert ev["eval_loss"] > 0
    sample = json.loads((out / "sample.json").read_text())
    assert sample["model_type"] == "deepseek_v3" and sample["new_tokens"] > 0
    for key in ("html", "md", "json"):
        assert Path(res["report"][key]).stat().st_size > 0


def test_export_loads_with_transformers_and_matches_the_checkpoint(demo_run):
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.checkpoint import load_model
    out, _, res = demo_run
    hf = AutoModelForCausalLM.from_pretrained(str(out / "export"), dtype=torch.float32).eval()
    ours, _ = load_model(res["stages"]["train"]["summary"]["checkpoint"])
    ids = torch.randint(0, 1000, (1, 16))
    with torch.no_grad():
        assert (hf(ids).logits - ours.eval()(ids).logits).abs().max().item() < 1e-3


def test_every_shard_folder_loads_with_hf_datasets_both_ways(demo_run, tmp_path):
    """load_dataset("parquet", data_dir=D) and data_files="D/*.parquet" on every folder of shards the demo
    writes: documents, synthetic rows, rejects, routing, dedup's kept shards (real `datasets`, the hf extra)."""
    datasets = pytest.importorskip("datasets")
    out, _, _ = demo_run
    folders = ["raw", "selected", "rephrase", "rephrase/.k2forge/rejects", "mathnotes", "mathnotes/.k2forge/rejects",
               "mathnotes/.k2forge/routing", "dedup"]
    loaded = 0
    for rel in folders:
        d = out / rel
        assert any(d.glob("*.parquet")), f"{d}: the demo wrote no shards here"
        kinds = {"data_dir": str(d)}, {"data_files": f"{d}/*.parquet"}
        if _rows(d) == 0:   # the small demo may accept no rewrite; datasets has no empty dataset: only that error
            for kw in kinds:
                with pytest.raises(ValueError, match='Instruction "train" corresponds to no data'):
                    datasets.load_dataset("parquet", **kw, cache_dir=str(tmp_path), split="train")
            continue
        by_dir, by_glob = (datasets.load_dataset("parquet", **kw, cache_dir=str(tmp_path), split="train")
                           for kw in kinds)
        assert by_dir.num_rows == by_glob.num_rows == _rows(d), rel
        for row in by_dir:         # synthetic rows and rejects: scores are [{name, value}], not an Arrow map
            scores = (row.get("fidelity") or {}).get("scores") or row.get("scores") or []
            assert all(set(s) == {"name", "value"} for s in scores), rel
        loaded += 1
    assert loaded >= 5


def test_report_counts_equal_the_shards(demo_run):
    out, _, res = demo_run
    facts = json.loads(Path(res["report"]["json"]).read_text())
    c = facts["counts"]
    assert c["raw_docs"] == _rows(out / "raw") == 41
    assert c["rephrase_accepted"] == _rows(out / "rephrase")
    assert c["rephrase_rejected"] == _rows(out / "rephrase" / ".k2forge" / "rejects")
    assert c["mathnotes_accepted"] == _rows(out / "mathnotes")
    assert c["mathnotes_rejected"] == _rows(out / "mathnotes" / ".k2forge" / "rejects")
    assert c["dedup_docs"] == _rows(out / "dedup", "part-*.parquet") == c["packed_docs"]
    stats = json.loads((out / "rephrase" / ".k2forge/stats.json").read_text())
    assert stats["variants_accepted"] + stats["variants_rejected"] + stats["variants_error"] == \
        c["rephrase_accepted"] + c["rephrase_rejected"]
    md = Path(res["report"]["md"]).read_text()
    assert f"{c['raw_docs']} documents" in md
    assert f"{c['rephrase_accepted']} accepted rewrites, {c['rephrase_rejected']} rejected" in md
    assert f"{c['packed_tokens']:,} tokens" in md
    # the token mix table is the manifest's
    manifest = json.loads((out / "mixture.json").read_text())
    assert [s["name"] for s in facts["token_mix"]] == [s["name"] for s in manifest["sources"]]
    assert {s["kind"] for s in facts["token_mix"]} >= {"raw"}
    for s in manifest["sources"]:
        assert f"{s['allotted_tokens']:,}" in md


def test_verification_on_the_shipped_sample_is_in_the_report(demo_run):
    out, _, res = demo_run
    verdicts = [json.loads(line) for line in (out / "verify" / "verdicts.jsonl").read_text().splitlines()]
    labels = [json.loads(line) for line in (out / "verify" / "sample.jsonl").read_text().splitlines()]
    assert len(verdicts) == len(labels) == 14
    assert {r["corruption"] for r in labels if not r["faithful"]} == {"number", "entity", "negation", "date",
                                                                        "unit", "addition", "omission"}
    facts = json.loads(Path(res["report"]["json"]).read_text())
    v = facts["verify_sample"]
    assert v["faithful_accepted"] == sum(d["accepted"] for d, r in zip(verdicts, labels) if r["faithful"])
    assert v["unfaithful_rejected"] == sum(not d["accepted"] for d, r in zip(verdicts, labels) if not r["faithful"])
    assert all(d["reasons"] for d in verdicts if not d["accepted"])
    md = Path(res["report"]["md"]).read_text()
    assert "Verification on a labelled sample" in md and "Yield = accepted synthetic tokens" in md


def test_report_has_examples_and_a_self_contained_html(demo_run):
    out, _, res = demo_run
    facts = json.loads(Path(res["report"]["json"]).read_text())
    c = facts["counts"]
    rejected = [e for e in facts["examples"] if e["kind"] == "rejected"]
    assert len(facts["examples"]) == min(3, c["rephrase_accepted"] + c["mathnotes_accepted"]
                                         + c["rephrase_rejected"] + c["mathnotes_rejected"])
    md = Path(res["report"]["md"]).read_text()
    for e in facts["examples"]:
        assert e["before"] and (e["kind"] == "accepted") == (not e["reasons"])
        assert e["parent_id"] in md
    if rejected:      # the reason of a rejected example is shown with it
        assert rejected[0]["reasons"][0] in md
    html = Path(res["report"]["html"]).read_text()
    srcs = re.findall(r"""(?:src|href)=['"]([^'"]+)""", html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    for name in ("loss", "max_logits", "token_mix"):
        assert name in facts["images"]
    assert facts["training"]["tau"] == load_config("small").train["qk_clip_tau"]


def test_rerun_reuses_everything_and_another_config_is_refused(demo_run):
    out, _, res = demo_run
    again = run_demo(out, size="small")
    assert again["stages"] == res["stages"]
    with pytest.raises(DemoError, match="another configuration"):
        run_demo(out, size="small", steps=3)


# ------------------------------------------------------------------------------------------------ fast tests
def test_fresh_refuses_a_folder_the_demo_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    for fresh in (True, False):
        with pytest.raises(DemoError, match="not a pipeline output folder"):
            run_demo(tmp_path, size="small", fresh=fresh)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_fresh_clears_a_demo_folder(tmp_path):
    state_path(tmp_path).parent.mkdir()
    state_path(tmp_path).write_text(json.dumps({"pipeline": "demo", "params": {"size": "other"}, "steps": {}}))
    (tmp_path / "raw").mkdir()
    state = prepare_output(tmp_path, "demo", fresh=True)
    assert state["steps"] == {} and not tmp_path.exists()


def test_fresh_clears_a_folder_of_the_demo_before_it_was_a_pipeline(tmp_path):
    out = tmp_path / "old"
    (out / "_demo").mkdir(parents=True)
    (out / "_demo" / "state.json").write_text("{}")
    (out / "raw").mkdir()
    with pytest.raises(DemoError, match="not a pipeline output folder"):
        run_demo(out, size="small", steps=1, docs=1, fresh=False)
    mp = pytest.MonkeyPatch()       # stop after ingest: only the clearing is under test
    for kind in ("demo.select", "demo.verify-sample"):
        mp.setitem(registry.STEPS, kind, (registry.STEPS[kind][0], "tests.pipeline.test_demo:_failing_export"))
    with pytest.raises(StepFailed):
        run_demo(out, size="small", fresh=True)
    mp.undo()
    assert not (out / "_demo").exists() and state_path(out).exists()


def test_the_demo_definition_resolves_at_every_size(tmp_path):
    """Every step's spec validates with the sizes' parameters; training starts over on rebuilt inputs."""
    defn, here = load_definition(DEFINITION)
    for size in ("small", "full"):
        steps = resolve(defn, tmp_path, params_of(load_config(size)), here)
        assert [s.name for s in steps] == STEP_NAMES
        by_name = {s.name: s for s in steps}
        assert by_name["train"].clean and not any(s.clean for s in steps if s.name != "train")
        assert by_name["train"].spec["steps"] == load_config(size).train["steps"]
        assert by_name["report"].upstream == set(STEP_NAMES) - {"report"}


def test_config_sizes_and_overrides():
    full, small = load_config("full"), load_config("small")
    assert small.train["steps"] < full.train["steps"]
    cfg = load_config("full", docs=3, steps=50)
    assert cfg.rephrase_docs == full.rephrase_docs[:3] and cfg.mathnotes_docs == full.mathnotes_docs[:3]
    assert cfg.train["steps"] == 50
    assert cfg.train["warmup_steps"] <= 5
    assert params_of(cfg) != params_of(full)
    with pytest.raises(SpecError, match="unknown size 'huge'"):
        load_config("huge")
    with pytest.raises(SpecError, match="--steps"):
        load_config("small", steps=0)


def test_engine_url_points_both_rewriting_jobs_at_a_server():
    cfg = load_config("small", engine_url="http://127.0.0.1:8000/v1", engine_model="big")
    for job in (cfg.rephrase, cfg.mathnotes):
        assert job["engine"]["kind"] == "openai" and job["engine"]["base_url"] == "http://127.0.0.1:8000/v1"
        assert job["engine"]["model"] == "big"
    from rephrase.spec import RephraseSpec
    RephraseSpec(**cfg.rephrase, inputs=["x.parquet"], output="o")     # a valid rephrase spec
    with pytest.raises(SpecError, match="--engine-url"):
        load_config("small", engine_model="big")


def test_cli_refuses_to_wipe_a_foreign_folder(tmp_path):
    from api.cli import main
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as e:
        main(["-q", "demo", "--size", "small", "--output", str(tmp_path), "--fresh"])
    assert e.value.code != 0 and (tmp_path / "notes.txt").exists()


def test_bad_mixture_names_the_field(tmp_path):
    bad = tmp_path / "mix.yaml"
    bad.write_text("total_tokens: 10\nsources:\n  - {name: a, from: elsewhere, domain: web, weight: 1}\n")
    with pytest.raises(SpecError, match=r"sources\.0\.from"):
        load_config("small", mixture_yaml=bad)


def test_resolve_mixture_drops_an_empty_source_and_renormalises():
    mixture = {"total_tokens": 1000, "seq_len": 8, "sources": [
        {"name": "k_raw", "from": "raw", "domain": "knowledge", "weight": 0.5},
        {"name": "k_syn", "from": "rephrase", "domain": "knowledge", "weight": 0.25},
        {"name": "notes", "from": "mathnotes", "domain": "math", "weight": 0.25}]}
    shards = [{"prefix": "/p/part-00000", "origin": "raw", "tokens": 10, "tokens_by_domain": {"knowledge": 10}},
              {"prefix": "/p/part-00001", "origin": "rephrase", "tokens": 7, "tokens_by_domain": {"knowledge": 7}},
              {"prefix": "/p/part-00002", "origin": "mathnotes", "tokens": 0, "tokens_by_domain": {}}]
    resolved, notes = resolve_mixture(mixture, shards)
    assert [s["name"] for s in resolved["sources"]] == ["k_raw", "k_syn"]
    assert resolved["sources"][1]["paths"] == ["/p/part-00001"]
    assert sum(s["weight"] for s in resolved["sources"]) == pytest.approx(1.0)
    assert any("'notes'" in n for n in notes)
    from corpus.mixture import MixtureConfig
    MixtureConfig.model_validate(resolved)   # what `corpus mix` accepts


def test_selected_documents_keep_their_order_and_unknown_ids_are_named(tmp_path):
    from corpus.samples import sample_files
    from pipeline.demo.specs import SelectSpec
    from pipeline.demo.steps import select_docs
    from pipeline.registry import StepContext, run_step
    ctx = StepContext(output=tmp_path, name="select", emit=lambda ev: None)
    raw = str(tmp_path / "raw")
    run_step("ingest", {"inputs": [str(p) for p in sample_files()], "output": raw}, ctx)

    def select(domain, ids):
        out = str(tmp_path / "selected" / f"{domain}.parquet")
        select_docs(SelectSpec(raw=raw, domain=domain, ids=ids, output=out), ctx)
        return pq.read_table(out)
    assert select("math", ["math-fr-systeme", "math-last-digit"]).column("id").to_pylist() == \
        ["math-fr-systeme", "math-last-digit"]
    every = select("knowledge", None)              # every knowledge document, in the order of the samples
    knowledge = [json.loads(x)["id"] for x in (sample_files()[1]).read_text().splitlines() if x.strip()]
    assert every.column("id").to_pylist() == knowledge
    with pytest.raises(ValueError, match=r"\['kn-nowhere'\] are not knowledge documents"):
        select("knowledge", ["kn-danube", "kn-nowhere"])
