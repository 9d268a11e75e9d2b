"""The demo's registered steps (pipeline/registry.py): what the demo does besides its ordinary jobs.

ingest, rephrase, mathnotes, dedup, pack and train are job steps of pipeline/definitions/demo.yaml, run with
their specs exactly as the CLI, the REST API and Ray runs run them. The steps here pick the documents to rewrite,
run the verifier on a shipped labelled sample, resolve the demo mixture and mix, evaluate, export, sample from
the export with transformers, and write the report. Each takes its spec and the StepContext and returns a
JSON-able summary (with `outputs`) that the pipeline records and the report reads.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from corpus.shards import atomic_write_json, atomic_write_text
from pipeline.demo.config import MIXTURE_YAML, packed_origins, resolve_mixture
from pipeline.demo.specs import (DemoMixSpec, EvalSpec, ExportSpec, ReportSpec, SampleSpec, SelectSpec,
                                 VerifySampleSpec)
from pipeline.registry import StepContext, run_step


def shards_of_domain(shard_dir: Path, domain: str) -> list[str]:
    """The document shards in `shard_dir` that hold at least one document of `domain`."""
    from corpus.shards import expand_inputs
    found = []
    for p in expand_inputs(shard_dir):
        col = pq.read_table(p, columns=["domain"]).column("domain").to_pylist()
        if domain in col:
            found.append(str(p))
    return found


def select_docs(spec: SelectSpec, ctx: StepContext) -> dict[str, Any]:
    """One shard of the chosen documents of `domain` in the given order (every one of them without ids)."""
    import pyarrow as pa

    from corpus.shards import read_shard, write_table
    table = pa.concat_tables([read_shard(p) for p in shards_of_domain(Path(spec.raw), spec.domain)])
    if spec.ids is None:
        keep = [i for i, d in enumerate(table.column("domain").to_pylist()) if d == spec.domain]
    else:
        pos = {d: i for i, d in enumerate(table.column("id").to_pylist())}
        missing = [d for d in spec.ids if d not in pos]
        if missing:
            raise ValueError(f"step {ctx.name!r}: ids: document id(s) {missing} are not {spec.domain} documents "
                             f"of {spec.raw}")
        keep = [pos[d] for d in spec.ids]
    write_table(spec.output, table.take(keep))
    return {"docs": len(keep), "outputs": [spec.output]}


#: one labelled row per corruption type and as many faithful ones, from the shipped TEST split (never tuned on)
VERIFY_SAMPLE_FAITHFUL = 7


def verify_sample(spec: VerifySampleSpec, ctx: StepContext) -> dict[str, Any]:
    """`k2forge rephrase verify` on a labelled sample shipped with the project, so the report shows the verifier
    accepting faithful restylings and rejecting one-fact corruptions even when the embedded model's own rewrites
    all fail."""
    from rephrase.verify import verify_file
    from rephrase.verify.calibrate import TEST, load_rows
    rows, kinds = [], set()
    for r in load_rows(TEST):
        if r["faithful"] and sum(x["faithful"] for x in rows) < VERIFY_SAMPLE_FAITHFUL \
                and r["style"] not in {x["style"] for x in rows}:
            rows.append(r)
        elif not r["faithful"] and r["corruption"] not in kinds:
            kinds.add(r["corruption"])
            rows.append(r)
    out = Path(spec.output)
    sample = out / "sample.jsonl"
    atomic_write_text(sample, "".join(json.dumps({k: v for k, v in r.items() if k != "_line"}, ensure_ascii=False)
                                      + "\n" for r in rows))
    verdicts_path = out / "verdicts.jsonl"
    res = verify_file(sample, verdicts_path)
    verdicts = [json.loads(line) for line in verdicts_path.read_text(encoding="utf-8").splitlines()]
    table = [{"id": r["id"], "style": r["style"], "label": "faithful" if r["faithful"] else r["corruption"],
              "accepted": v["accepted"], "reasons": v["reasons"]} for r, v in zip(rows, verdicts)]
    faithful = [t for t in table if t["label"] == "faithful"]
    corrupted = [t for t in table if t["label"] != "faithful"]
    return {"rows": res["rows"], "accepted": res["accepted"], "verdicts": table,
            "faithful_accepted": sum(t["accepted"] for t in faithful), "faithful": len(faithful),
            "unfaithful_rejected": sum(not t["accepted"] for t in corrupted), "unfaithful": len(corrupted),
            "outputs": [str(sample), str(verdicts_path)]}


def mix(spec: DemoMixSpec, ctx: StepContext) -> dict[str, Any]:
    """Resolve the demo mixture against the packed shards (dropping empty sources), then the `mix` job on it."""
    import yaml
    mixture, notes = resolve_mixture(spec.mixture, packed_origins(Path(spec.packed), Path(spec.dedup)))
    if spec.seq_len:       # samples of the manifest = samples the trainer draws
        mixture["seq_len"] = spec.seq_len
    atomic_write_text(spec.resolved_file, f"# resolved from {MIXTURE_YAML.name} of pipeline/demo by `k2forge demo`\n"
                      + yaml.safe_dump(mixture, sort_keys=False))
    res = run_step("mix", {"mixture": spec.resolved_file, "output": spec.output}, ctx)
    manifest = json.loads(Path(spec.output).read_text())
    return {"budget_tokens": manifest["budget_tokens"], "allotted_tokens": manifest["allotted_tokens"],
            "sources": len(manifest["sources"]), "notes": notes, "warnings": manifest.get("warnings", []),
            "outputs": res.get("outputs", [spec.output])}


def _latest_checkpoint(train_dir: str) -> str:
    from trainer.checkpoint import latest
    ckpt = latest(train_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{train_dir}: no finished checkpoint (did the train step run?)")
    return str(ckpt)


def evaluate(spec: EvalSpec, ctx: StepContext) -> dict[str, Any]:
    from trainer.loop import evaluate_checkpoint
    res = evaluate_checkpoint(_latest_checkpoint(spec.train_dir), spec.manifest, batch_size=spec.batch_size,
                              max_batches=spec.max_batches, seq_len=spec.seq_len)
    atomic_write_json(spec.output, res)
    return {**res, "outputs": [spec.output]}


def export(spec: ExportSpec, ctx: StepContext) -> dict[str, Any]:
    from corpus.embedded import embedded_model_dir
    from trainer.checkpoint import load_model
    from trainer.export import export_hf
    model, meta = load_model(_latest_checkpoint(spec.train_dir))
    out = export_hf(model, model.config, Path(spec.output), tokenizer_dir=embedded_model_dir(), overwrite=True)
    files = sorted(p.name for p in out.iterdir())
    return {"step": meta["step"], "files": files, "outputs": [str(out)]}


def sample(spec: SampleSpec, ctx: StepContext) -> dict[str, Any]:
    """A seeded sampled continuation of the prompt by the EXPORTED model, loaded by transformers alone (no k2forge
    code). Sampled, not greedy: greedy decoding of a model this small loops on one token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(spec.export_dir)
    model = AutoModelForCausalLM.from_pretrained(spec.export_dir, dtype=torch.float32).eval()
    ids = tok(spec.prompt, return_tensors="pt")
    torch.manual_seed(0)
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=spec.max_new_tokens, do_sample=True, temperature=0.8, top_k=40,
                             pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    new = gen[0, ids["input_ids"].shape[1]:]
    res = {"prompt": spec.prompt, "completion": tok.decode(new, skip_special_tokens=True),
           "new_tokens": int(new.numel()), "model_class": type(model).__name__,
           "model_type": model.config.model_type, "seconds": round(time.perf_counter() - t0, 2)}
    atomic_write_json(spec.output, res)
    return {**res, "outputs": [spec.output]}


def report(spec: ReportSpec, ctx: StepContext) -> dict[str, Any]:
    """report.json/.md/.html from the outputs on disk and the records of the steps before it."""
    from pipeline.report.report import write_report
    stages = {name: {"summary": r["summary"], "seconds": r["seconds"]} for name, r in ctx.records.items()}
    paths = write_report(ctx.output, {"config": {"size": spec.size, "train": spec.train}, "stages": stages},
                         Path(spec.output))
    return {**paths, "outputs": list(paths.values())}
