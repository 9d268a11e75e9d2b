"""The demo's stages: each builds the ordinary job spec of one package and calls its run function.

Nothing here re-implements a job: ingest, rephrase, mathnotes, dedup, pack, mix and train are the registered job
kinds (corpus.spec.JOB_KINDS), called with their specs exactly as the CLI, the REST API and Ray runs call them.
The remaining steps (eval, export, sample) call the trainer's library functions and transformers.
Each stage function takes the `Ctx` and returns a JSON-able summary that the pipeline records and the report reads.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pyarrow.parquet as pq

from api.demo.config import DEMO_YAML, DemoConfig, packed_origins, resolve_mixture
from corpus.shards import atomic_write_json, atomic_write_text
from corpus.spec import job_kind


@dataclass
class Ctx:
    out: Path
    cfg: DemoConfig
    emit: Callable[[dict], None]
    results: dict[str, dict[str, Any]]      # summaries of the stages so far (run or reused)

    def path(self, name: str) -> Path:
        return self.out / name


def run_job(kind: str, fields: dict[str, Any], emit: Callable[[dict], None]) -> dict[str, Any]:
    """Validate `fields` with the job kind's spec (same errors as the CLI) and run it."""
    from corpus.spec import parse_spec
    spec_cls, run = job_kind(kind)
    return run(parse_spec(spec_cls, fields, where=f"demo {kind} spec"), emit)


def shards_of_domain(shard_dir: Path, domain: str) -> list[str]:
    """The document shards in `shard_dir` that hold at least one document of `domain`."""
    from corpus.shards import expand_inputs
    found = []
    for p in expand_inputs(shard_dir):
        col = pq.read_table(p, columns=["domain"]).column("domain").to_pylist()
        if domain in col:
            found.append(str(p))
    return found


# ------------------------------------------------------------------------------------------------------ corpus
def ingest(ctx: Ctx) -> dict[str, Any]:
    from corpus.samples import sample_files
    res = run_job("ingest", {"inputs": [str(p) for p in sample_files()], "output": str(ctx.path("raw"))}, ctx.emit)
    return {**_pick(res, "rows_in", "rows_out", "chars", "shards"), "outputs": res["outputs"]}


def select_docs(ctx: Ctx, domain: str, ids: list[str] | None) -> list[str]:
    """Input shards for a rewriting job: the raw shards of `domain`, or one shard of the chosen ids, in order."""
    shards = shards_of_domain(ctx.path("raw"), domain)
    if ids is None:
        return shards
    import pyarrow as pa

    from corpus.shards import read_shard, write_table
    table = pa.concat_tables([read_shard(p) for p in shards])
    pos = {d: i for i, d in enumerate(table.column("id").to_pylist())}
    missing = [d for d in ids if d not in pos]
    if missing:
        raise ValueError(f"{DEMO_YAML} sizes.{ctx.cfg.size}: document id(s) {missing} are not {domain} "
                         f"documents of the samples")
    out = ctx.path("selected") / f"{domain}-00000.parquet"
    write_table(out, table.take([pos[d] for d in ids]))
    return [str(out)]


def rephrase(ctx: Ctx) -> dict[str, Any]:
    inputs = select_docs(ctx, "knowledge", ctx.cfg.rephrase_docs)
    res = run_job("rephrase", {**ctx.cfg.rephrase, "inputs": inputs, "output": str(ctx.path("rephrase")),
                               "domains": ["knowledge"]}, ctx.emit)
    return {"stats": res["stats"], "outputs": res["outputs"], "rejects": res["rejects"]}


#: one labelled row per corruption type and as many faithful ones, from the shipped TEST split (never tuned on)
VERIFY_SAMPLE_FAITHFUL = 7


def verify_sample(ctx: Ctx) -> dict[str, Any]:
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
    sample = ctx.path("verify") / "sample.jsonl"
    atomic_write_text(sample, "".join(json.dumps({k: v for k, v in r.items() if k != "_line"}, ensure_ascii=False)
                                      + "\n" for r in rows))
    verdicts_path = ctx.path("verify") / "verdicts.jsonl"
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


def mathnotes(ctx: Ctx) -> dict[str, Any]:
    inputs = select_docs(ctx, "math", ctx.cfg.mathnotes_docs)
    res = run_job("mathnotes", {**ctx.cfg.mathnotes, "inputs": inputs, "output": str(ctx.path("mathnotes")),
                                "domains": ["math"]}, ctx.emit)
    return {"stats": res["stats"], "outputs": res["outputs"], "rejects": res["rejects"],
            "routing": res.get("routing", [])}


def dedup(ctx: Ctx) -> dict[str, Any]:
    # raw and synthetic together: a rewrite that copies its source, or two near-identical rewrites, go here
    inputs = [str(ctx.path(d)) for d in ("raw", "rephrase", "mathnotes")]
    res = run_job("dedup", {"inputs": inputs, "output": str(ctx.path("dedup"))}, ctx.emit)
    return {**_pick(res, "docs_in", "docs_out", "exact_removed", "near_removed", "threshold"),
            "outputs": res["outputs"]}


def pack(ctx: Ctx) -> dict[str, Any]:
    res = run_job("pack", {"inputs": [str(ctx.path("dedup"))], "output": str(ctx.path("packed"))}, ctx.emit)
    return {**_pick(res, "shards", "total_docs", "total_tokens", "tokenizer", "dtype"), "outputs": res["outputs"]}


def mix(ctx: Ctx) -> dict[str, Any]:
    import yaml
    shards = packed_origins(ctx.path("packed"), ctx.path("dedup"))
    mixture, notes = resolve_mixture(ctx.cfg.mixture, shards)
    seq_len = ctx.cfg.train.get("seq_len")
    if seq_len:       # samples of the manifest = samples the trainer draws
        mixture["seq_len"] = int(seq_len)
    atomic_write_text(ctx.path("mixture.yaml"), "# resolved from api/demo/mixture.yaml by `k2forge demo`\n"
                      + yaml.safe_dump(mixture, sort_keys=False))
    res = run_job("mix", {"mixture": str(ctx.path("mixture.yaml")), "output": str(ctx.path("mixture.json"))},
                  ctx.emit)
    manifest = json.loads(ctx.path("mixture.json").read_text())
    return {"budget_tokens": manifest["budget_tokens"], "allotted_tokens": manifest["allotted_tokens"],
            "sources": len(manifest["sources"]), "notes": notes, "warnings": manifest.get("warnings", []),
            "outputs": res.get("outputs", [str(ctx.path("mixture.json"))])}


# ------------------------------------------------------------------------------------------------------ model
def train(ctx: Ctx) -> dict[str, Any]:
    fields = {**ctx.cfg.train, "manifest": str(ctx.path("mixture.json")), "output": str(ctx.path("train"))}
    return run_job("train", fields, ctx.emit)


def evaluate(ctx: Ctx) -> dict[str, Any]:
    from trainer.loop import evaluate_checkpoint
    tr = ctx.cfg.train
    res = evaluate_checkpoint(ctx.results["train"]["checkpoint"], str(ctx.path("mixture.json")),
                              batch_size=int(tr.get("micro_batch_size", 4)), max_batches=int(tr.get("eval_batches", 4)),
                              seq_len=tr.get("seq_len"))
    atomic_write_json(ctx.path("eval.json"), res)
    return {**res, "outputs": [str(ctx.path("eval.json"))]}


def export(ctx: Ctx) -> dict[str, Any]:
    from corpus.embedded import embedded_model_dir
    from trainer.checkpoint import load_model
    from trainer.export import export_hf
    model, meta = load_model(ctx.results["train"]["checkpoint"])
    out = export_hf(model, model.config, ctx.path("export"), tokenizer_dir=embedded_model_dir(), overwrite=True)
    files = sorted(p.name for p in out.iterdir())
    return {"step": meta["step"], "files": files, "outputs": [str(out)]}


def sample(ctx: Ctx) -> dict[str, Any]:
    """A seeded sampled continuation of the prompt by the EXPORTED model, loaded by transformers alone (no k2forge
    code). Sampled, not greedy: greedy decoding of a model this small loops on one token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    t0 = time.perf_counter()
    d = str(ctx.path("export"))
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    ids = tok(ctx.cfg.sample.prompt, return_tensors="pt")
    torch.manual_seed(0)
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=ctx.cfg.sample.max_new_tokens, do_sample=True, temperature=0.8,
                             top_k=40,
                             pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    new = gen[0, ids["input_ids"].shape[1]:]
    res = {"prompt": ctx.cfg.sample.prompt, "completion": tok.decode(new, skip_special_tokens=True),
           "new_tokens": int(new.numel()), "model_class": type(model).__name__,
           "model_type": model.config.model_type, "seconds": round(time.perf_counter() - t0, 2)}
    atomic_write_json(ctx.path("sample.json"), res)
    return {**res, "outputs": [str(ctx.path("sample.json"))]}


def _pick(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: d.get(k) for k in keys}


#: the chain, in order: (name, function, one line saying what it does)
STAGES: list[tuple[str, Callable[[Ctx], dict[str, Any]], str]] = [
    ("ingest", ingest, "bundled samples -> document shards"),
    ("rephrase", rephrase, "knowledge documents -> verified rewrites in several styles (chunk-wise AR)"),
    ("verify", verify_sample, "the verifier on a shipped labelled sample: faithful restylings vs one-fact corruptions"),
    ("mathnotes", mathnotes, "math documents -> learning notes (non-English ones translated)"),
    ("dedup", dedup, "raw + synthetic -> exact and near duplicates removed"),
    ("pack", pack, "documents -> token shards (SmolLM2 tokenizer)"),
    ("mix", mix, "demo mixture over four domains, raw vs synthetic -> manifest"),
    ("train", train, "tiny Kimi-K2-style MoE with MuonClip"),
    ("eval", evaluate, "held-out loss of the final checkpoint"),
    ("export", export, "checkpoint -> Hugging Face deepseek_v3 directory"),
    ("sample", sample, "generate from the export with transformers"),
]
