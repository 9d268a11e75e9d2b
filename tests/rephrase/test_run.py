"""run_rephrase end to end with the real local engine and verifier: outputs, rejects, stats, resumption, CLI, Ray.

Fault injectors (named so): a stage that crashes after its first unit, and an engine wrapper that answers with
the source passage with every number changed.
"""
import json
import re

import pyarrow.parquet as pq
import pytest
import yaml

from corpus.schema import table_from_docs
from corpus.shards import read_shard, write_table
from corpus.spec import SpecError, parse_spec
from rephrase.run import run_rephrase
from rephrase.spec import RephraseSpec
from rephrase.stage import REJECT_SCHEMA, RewriteStage

SHARDS = [
    [{"id": "nile", "domain": "knowledge", "text": "The Nile is about 6,650 km long and flows north."},
     {"id": "web1", "domain": "web", "text": "Buy cheap shoes today at our store."}],
    [{"id": "moon", "domain": "knowledge", "text": "The Moon is 384,400 km from Earth on average."}],
]


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "in"
    for i, docs in enumerate(SHARDS):
        write_table(d / f"docs-{i:05d}.parquet", table_from_docs(docs))
    return d


def make_spec(inputs, out, **kw):
    base = {"inputs": [str(inputs)], "output": str(out), "variants": 1, "attempts": 1, "seed": 5,
            "chunk_target_tokens": 24, "chunk_max_tokens": 32, "max_new_tokens": 32, "concurrency": 4,
            "styles": ["expert_notes", "encyclopedia"], "perspectives": ["neutral"],
            # One torch thread: two OpenMP threads on a shared 2-core box spin against each other.
            "engine": {"threads": 1, "batch_size": 4}}
    return parse_spec(RephraseSpec, {**base, **kw})


class SimulatedCrash(Exception):
    pass


class CrashAfterOneUnitStage(RewriteStage):
    """Fault injector: processes one unit, then crashes as a killed worker would."""

    def process(self, unit):
        if getattr(self, "units_done", 0) >= 1:
            raise SimulatedCrash(f"injected crash before {unit.id}")
        stats = super().process(unit)
        self.units_done = 1
        return stats


class CountingStage(RewriteStage):
    """The real stage, recording which units it processed."""

    def process(self, unit):
        self.processed = getattr(self, "processed", []) + [unit.id]
        return super().process(unit)


class NumberCorruptingEngine:
    """Fault injector: runs the real engine, then answers with the source passage with every digit changed."""

    def __init__(self, inner):
        self.inner = inner
        self.name, self.model = inner.name, inner.model
        self.max_concurrency, self.context_length = inner.max_concurrency, inner.context_length

    async def generate(self, req):
        comp = await self.inner.generate(req)
        source = req.messages[-1]["content"].rsplit("Text to rewrite:\n", 1)[1]
        comp.text = re.sub(r"\d", lambda m: str((int(m.group()) + 1) % 10), source)
        comp.finish_reason = "stop"
        return comp

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def prompt_tokens(self, messages):
        return self.inner.prompt_tokens(messages)

    async def aclose(self):
        await self.inner.aclose()


class CorruptingStage(RewriteStage):
    def build_engine(self):
        return NumberCorruptingEngine(super().build_engine())


def tables(out):
    names = sorted(p.name for p in out.glob("part-*.parquet"))
    return {n: (pq.read_table(out / n).to_pylist(), pq.read_table(out / ".k2forge" / "rejects" / n).to_pylist()) for n in names}


def test_run_outputs_and_resume_after_interruption_is_identical(inputs, tmp_path):
    out_a = tmp_path / "a"
    res = run_rephrase(make_spec(inputs, out_a))
    assert [p.split("/")[-1] for p in res["outputs"]] == ["part-00000.parquet", "part-00001.parquet"]
    for name in (".k2forge/stats.json", ".k2forge/spec.yaml", ".k2forge/index.json"):
        assert (out_a / name).exists()
    stats = json.loads((out_a / ".k2forge/stats.json").read_text())
    assert stats["docs_in"] == 3 and stats["docs_skipped_domain"] == 1 and stats["variants"] == 2
    assert stats["variants_accepted"] + stats["variants_rejected"] + stats["variants_error"] == 2
    assert stats["tokens_out"] > 0 and stats["cpu_hours_per_billion_output_tokens"] > 0
    assert sum(stats["attempts_hist"].values()) == stats["chunks_in"]
    seen = set()
    for out_rows, rej_rows in tables(out_a).values():
        seen |= {r["parent_id"] for r in out_rows} | {r["parent_id"] for r in rej_rows}
        assert all(r["reasons"] for r in rej_rows), "every reject carries its reasons"
        for r in out_rows:
            assert r["task"] == "rephrase" and r["style"].endswith("/neutral") and r["fidelity"]["accepted"]
            assert r["engine"] == "local" and len(r["prompt_sha"]) == 16 and r["attempts"] >= 1
    assert seen == {"nile", "moon"}, "nothing silently dropped; the web document is skipped by domain"
    for p in res["outputs"]:
        read_shard(p)                                     # valid SYNTH_SCHEMA shards
    assert pq.read_schema(res["rejects"][0]).equals(REJECT_SCHEMA)

    out_b = tmp_path / "b"
    spec_b = make_spec(inputs, out_b)
    with pytest.raises(SimulatedCrash):
        run_rephrase(spec_b, stage=CrashAfterOneUnitStage(spec_b, "rephrase"))
    assert (out_b / "part-00000.parquet").exists() and not (out_b / "part-00001.parquet").exists()
    resumed = CountingStage(spec_b, "rephrase")
    run_rephrase(spec_b, stage=resumed)
    assert len(resumed.processed) == 1 and resumed.processed[0].startswith("part-00001"), "finished shard redone"
    assert tables(out_b) == tables(out_a), "interrupted + resumed run differs from the uninterrupted run"
    assert json.loads((out_b / ".k2forge/index.json").read_text())["total_rows"] == stats["variants_accepted"]


def test_rejects_get_number_corruptions_with_reasons(inputs, tmp_path):
    out = tmp_path / "bad"
    spec = make_spec(inputs, out, limit=1, attempts=2)
    res = run_rephrase(spec, stage=CorruptingStage(spec, "rephrase"))
    (rows, rejects), = [v for k, v in tables(out).items() if k == "part-00000.parquet"]
    assert rows == [] and len(rejects) == 1
    rej = rejects[0]
    assert rej["parent_id"] == "nile" and rej["status"] == "rejected" and rej["attempts"] == 2
    assert any(r.startswith("chunk 0: consistency:") and "num_extra" in r for r in rej["reasons"]), rej["reasons"]
    assert "6,650" in rej["source"] and "7,761" in rej["rewrite"]
    assert res["stats"]["rejected_by_reason"]["consistency"] == 1
    assert res["stats"]["failed_attempts_by_reason"]["consistency"] == 2
    assert res["stats"]["acceptance_rate"] == 0


def test_spec_validation_names_the_field(inputs, tmp_path):
    with pytest.raises(SpecError, match="variants=30"):
        make_spec(inputs, tmp_path / "x", variants=30)
    with pytest.raises(SpecError, match="chunk_max_tokens"):
        make_spec(inputs, tmp_path / "x", chunk_target_tokens=64, chunk_max_tokens=32)
    with pytest.raises(SpecError, match="unknown style"):
        make_spec(inputs, tmp_path / "x", styles=["sonnet"])
    with pytest.raises(SpecError, match="domains"):
        make_spec(inputs, tmp_path / "x", domains=["poetry"])
    with pytest.raises(SpecError, match="engine"):
        make_spec(inputs, tmp_path / "x", engine={"kind": "openai"})
    with pytest.raises(SpecError, match="also an input directory"):
        run_rephrase(make_spec(inputs, inputs))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        run_rephrase(make_spec([str(tmp_path / "nowhere")], tmp_path / "x"))


#: the fields and defaults of the one flat EngineSpec of earlier versions
LEGACY_ENGINE = {"kind": None, "model": None, "base_url": None, "api_key_env": "OPENAI_API_KEY", "max_concurrency": 8,
                 "batch_size": 8, "timeout_s": 120.0, "max_retries": 5, "requests_per_second": None, "tokenizer": None,
                 "context_length": None, "device": "auto", "dtype": "auto", "threads": None,
                 "gpu_memory_utilization": None, "max_model_len": None, "enforce_eager": False,
                 "tensor_parallel_size": 1, "pipeline_parallel_size": 1, "enable_prefix_caching": None,
                 "engine_kwargs": {}, "seed": 0}


def test_rerun_into_an_output_of_another_spec_is_refused(inputs, tmp_path):
    out = tmp_path / "o"
    run_rephrase(make_spec(inputs, out, domains=["code"]))            # nothing eligible: no generation
    with pytest.raises(SpecError, match="fields differ: seed"):
        run_rephrase(make_spec(inputs, out, domains=["code"], seed=6))
    rows, rejects = tables(out)["part-00000.parquet"]
    assert rows == [] and rejects == []
    # a spec saved by an earlier version (the flat engine spec: every backend's fields) is the same spec
    saved = out / ".k2forge" / "spec.yaml"
    doc = yaml.safe_load(saved.read_text())
    doc["spec"]["engine"] = {**LEGACY_ENGINE, **doc["spec"]["engine"]}
    saved.write_text(yaml.safe_dump(doc))
    run_rephrase(make_spec(inputs, out, domains=["code"]))
    with pytest.raises(SpecError, match="fields differ: seed"):
        run_rephrase(make_spec(inputs, out, domains=["code"], seed=6))


def run_cli(args, capsys):
    from api.cli import main
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def test_cli_styles_verify_and_errors(tmp_path, capsys):
    code, out = run_cli(["rephrase", "styles"], capsys)
    assert code == 0 and "encyclopedia" in out and "historian" in out
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "a", "source": "The bridge opened in 1932.",
                                 "rewrite": "The bridge opened in 1932."}) + "\n" +
                     json.dumps({"id": "b", "source": "The bridge opened in 1932.",
                                 "rewrite": "The bridge opened in 1951."}) + "\n")
    verdicts = tmp_path / "v.jsonl"
    code, out = run_cli(["rephrase", "verify", "--input", str(pairs), "--output", str(verdicts)], capsys)
    assert code == 0, out
    rows = [json.loads(x) for x in verdicts.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    assert any(x.startswith("consistency:") and "1951" in x for x in rows[1]["reasons"]), rows[1]["reasons"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "x"}\n')
    code, out = run_cli(["rephrase", "verify", "--input", str(bad), "--output", str(verdicts)], capsys)
    assert code == 2 and "bad.jsonl:1" in out and "rewrite" in out
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"source": src, "rewrite": rw, "faithful": ok}) + "\n" for src, rw, ok in [
        ("The bridge opened in 1932 in Sydney.", "In 1932 the bridge in Sydney opened.", True),
        ("The bridge opened in 1932 in Sydney.", "The bridge opened in 1951 in Sydney.", False),
        ("Water boils at 100 degrees at sea level.", "At sea level, water boils at 100 degrees.", True),
        ("Water boils at 100 degrees at sea level.", "Water never boils at sea level.", False)]))
    calibrated = tmp_path / "verifier.yaml"
    code, out = run_cli(["rephrase", "calibrate", "--input", str(labelled), "--output", str(calibrated)], capsys)
    assert code == 0, out
    assert "dev: 4 rows (2 faithful)" in out and "AUROC" in out
    from corpus.spec import load_spec
    from rephrase.verify import VerifierSpec
    assert load_spec(VerifierSpec, calibrated).checks
    code, out = run_cli(["rephrase", "run", "--inputs", "x", "--output", str(tmp_path / "o"), "--variants", "0"],
                        capsys)
    assert code == 2 and "variants" in out


def test_cli_run_from_spec_file(inputs, tmp_path, capsys):
    import yaml
    spec_file = tmp_path / "job.yaml"
    spec = json.loads(make_spec(inputs, tmp_path / "cli", limit=1, max_new_tokens=16).model_dump_json())
    spec_file.write_text(yaml.safe_dump(spec))
    code, out = run_cli(["rephrase", "run", "--spec", str(spec_file), "--seed", "9"], capsys)
    assert code == 0, out
    assert "variants:" in out and "tokens:" in out
    saved = yaml.safe_load((tmp_path / "cli" / ".k2forge/spec.yaml").read_text())
    assert saved["kind"] == "rephrase" and saved["spec"]["seed"] == 9


@pytest.mark.slow
def test_ray_executor_matches_local(inputs, tmp_path):
    local = tmp_path / "local"
    run_rephrase(make_spec(inputs, local))
    on_ray = tmp_path / "ray"
    run_rephrase(make_spec(inputs, on_ray, executor={"kind": "ray", "workers": 1}))
    assert tables(on_ray) == tables(local)
