"""`k2forge evidence rephrase-vs-repeat`: Kimi K2's Table 1 in miniature, from the project's own stages.

    world      evidence.world: N fictional people -> raw passages, control paraphrases, Q/A pairs, eval questions
    rephrase   rephrase.run.run_rephrase on the raw passages: V style-diverse, chunk-wise, verified variants each
    tokenizer  a byte-level BPE trained on the generator's training texts (raw, control, Q/A), shared by all arms
    arms       evidence.arms: per arm a document shard -> corpus pack -> corpus mix at the same token budget
    train      trainer.launch.run_train, the same model, steps and seeds for every arm, from scratch
    eval       evidence.qa: QA exact match / ranked accuracy on held-out questions, held-out paraphrase loss
    report     evidence.report: results.json, report.md, the plot

Everything lands under `output/` (world/, rephrase/, tokenizer/, arms/<arm>/, runs/<arm>/seed-<s>/, report);
results.json names each artifact. Training runs are always fresh (a rerun replaces them); the rephrase stage
resumes like any rephrase job. Before training, every arm's manifest must allot the same tokens and samples,
and no eval question may appear in any packed training shard (decoded back to text): either failure stops the
probe with the arm and the reason.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from corpus.events import Log, OnEvent, Progress
from corpus.shards import atomic_write_json
from corpus.spec import save_spec
from evidence import arms as A
from evidence.spec import RephraseVsRepeatSpec
from evidence.world import (ATTRIBUTES, Person, chance, control_paraphrases, eval_questions, heldout_paraphrase,
                            make_people, qa_train_docs, raw_passage)

log = logging.getLogger(__name__)


class ProbeError(ValueError):
    """The probe's own consistency checks failed (unequal budgets, an eval question in training data)."""


def write_world(root: Path, people: list[Person], seed: int) -> dict[str, Path]:
    """The generator's outputs: raw passages and Q/A pairs as document shards, eval questions and people as JSON."""
    root.mkdir(parents=True, exist_ok=True)
    raw = A.write_docs([{"id": p.id, "text": raw_passage(p), "domain": "knowledge", "source": "evidence-raw"}
                        for p in people], root / "raw" / "raw-00000.parquet", synthetic=False)
    qa = A.write_docs(qa_train_docs(people), root / "qa" / "qa-00000.parquet", synthetic=False)
    questions = root / "eval_questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in eval_questions(people)))
    atomic_write_json(root / "people.json", [{"id": p.id, "name": p.name, "qa_train": p.qa_train,
                                              "attrs": p.attrs, "raw": raw_passage(p),
                                              "heldout": heldout_paraphrase(p, seed)} for p in people])
    return {"raw": raw.parent, "qa": qa.parent, "questions": questions, "people": root / "people.json"}


def train_tokenizer(texts: list[str], path: Path, vocab: int) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def rephrase_stage(spec: RephraseVsRepeatSpec, raw_dir: Path, out: Path, people: list[Person],
                   make_stage: Callable[[Any], Any] | None = None) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    """Run the rephrase job on the raw passages; (verified rows per person, yield summary)."""
    from rephrase.run import run_rephrase
    t0 = time.perf_counter()
    rspec = spec.rephrase_spec(str(raw_dir), str(out))
    res = run_rephrase(rspec, stage=make_stage(rspec) if make_stage else None)
    rows, dropped = A.collect_rephrasings(res["outputs"], people)
    st = res["stats"]
    counts = [len(v) for v in rows.values()]
    # the world's ground truth audits the verifier: how many of a person's six values each kept rewrite still holds
    by_id = {p.id: p for p in people}
    found = [sum(v in r["text"] for v in by_id[pid].attrs.values()) for pid, rs in rows.items() for r in rs]
    summary = {"asked": len(people) * spec.n_variants, "variants": st.get("variants"),
               "accepted": st.get("variants_accepted"), "kept": sum(counts), "dropped": dropped,
               "acceptance_rate": st.get("acceptance_rate"), "token_yield": st.get("yield"),
               "facts_verbatim": {"kept_with_all": sum(1 for f in found if f == len(ATTRIBUTES)),
                                  "mean": sum(found) / len(found) if found else None, "of": len(ATTRIBUTES)},
               "rejected_by_reason": st.get("rejected_by_reason", {}),
               "per_person": {"min": min(counts), "max": max(counts), "mean": sum(counts) / len(counts),
                              "with_none": sum(1 for c in counts if c == 0),
                              "with_all": sum(1 for c in counts if c >= spec.n_variants)},
               **_engine_of(res["outputs"] + res["rejects"]),
               "seconds": round(time.perf_counter() - t0, 1), "outputs": res["outputs"], "rejects": res["rejects"],
               "stats_path": res["stats_path"]}
    return rows, summary


def _engine_of(shards: list[str]) -> dict[str, str]:
    """The engine and model the stage recorded in its rows (what really rewrote, whatever the spec said)."""
    import pyarrow.parquet as pq
    for path in shards:
        t = pq.read_table(path, columns=["engine", "model"])
        if t.num_rows:
            return {"engine": t.column("engine")[0].as_py(), "model": t.column("model")[0].as_py()}
    return {"engine": "", "model": ""}


def build_arms(spec: RephraseVsRepeatSpec, out: Path, people: list[Person], world: dict[str, Path],
               rephrasings: dict[str, list[dict]] | None, tok: Path) -> tuple[dict[str, dict], dict[str, Any]]:
    """Pack Q/A once and every arm's documents, then mix each at the same budget; (arms, budget)."""
    seq_len = int(spec.train_fields()["seq_len"])
    qa_packed = A.pack_dir([world["qa"]], out / "arms" / "_qa" / "packed", tok)
    plans = {name: A.plan_arm(name, people, spec.n_variants, spec.n_passes, spec.seed, rephrasings)
             for name in spec.arms}
    raw_packed = A.pack_dir([world["raw"]], out / "arms" / "_raw" / "packed", tok)
    raw_tokens, qa_tokens = A.packed_tokens(raw_packed), A.packed_tokens(qa_packed)
    budget = {"bio_tokens": round(spec.n_passes * spec.n_variants * raw_tokens),
              "qa_tokens": round(spec.qa_epochs * qa_tokens), "variants": spec.n_variants, "passes": spec.n_passes,
              "raw_passage_tokens": raw_tokens, "qa_pair_tokens": qa_tokens, "seq_len": seq_len,
              "qa_packed": str(qa_packed),
              "rule": f"bio = {spec.n_passes:g} x {spec.n_variants} x raw passage tokens; qa = {spec.qa_epochs:g} x "
                      f"Q/A pair tokens; the same in every arm"}
    arms = {}
    for name, plan in plans.items():
        d = out / "arms" / name
        shutil.rmtree(d, ignore_errors=True)
        docs = A.write_docs(plan.docs, d / "docs" / f"{name}-00000.parquet", synthetic=plan.kind != "raw")
        packed = A.pack_dir([docs.parent], d / "packed", tok)
        manifest = A.mix_arm(d, "mixture", packed, qa_packed, budget["bio_tokens"], budget["qa_tokens"], seq_len,
                             spec.seed)
        bio = next(s for s in manifest["sources"] if s["name"] == "bio")
        arms[name] = {"kind": plan.kind, "docs_per_person": plan.per_person, "planned_epochs": plan.planned_epochs,
                      "docs": len(plan.docs), "fill": plan.fill, "bio_available_tokens": bio["available_tokens"],
                      "bio_epochs": bio["epochs"], "provenance": bio["provenance"]["summary"],
                      "allotted_tokens": manifest["allotted_tokens"],
                      # what the trainer's plan holds: whole samples per source (trainer/data.py)
                      "samples": sum(s["allotted_tokens"] // seq_len for s in manifest["sources"]),
                      "unique_texts_per_person": _unique_per_person(plan.docs),
                      "manifest": str(d / "mixture.json"), "docs_path": str(docs), "packed": str(packed)}
    _check_equal_budgets(arms)
    return arms, budget


def _unique_per_person(docs: list[dict]) -> float:
    by: dict[str, set[str]] = {}
    for d in docs:
        person = json.loads(d.get("meta") or "{}").get("person") or d.get("parent_id") or d["id"]
        by.setdefault(person, set()).add(d["text"])
    return sum(map(len, by.values())) / max(len(by), 1)


def _check_equal_budgets(arms: dict[str, dict]) -> None:
    got = {(a["allotted_tokens"], a["samples"]) for a in arms.values()}
    if len(got) != 1:
        raise ProbeError("arms are not at an equal budget: " + ", ".join(
            f"{n}: {a['allotted_tokens']} tokens / {a['samples']} samples" for n, a in arms.items()))


def leak_check(packed: dict[str, str], questions: list[dict], tok_path: Path) -> dict[str, int]:
    """Per packed source (arm name or _qa): eval questions found in its training shards decoded back to text."""
    from corpus.indexed import IndexedDataset
    from corpus.tokenizer import load_tokenizer
    tok = load_tokenizer(tok_path)
    qs = [q["prompt"].split("\n")[0][3:].lower() for q in questions]   # the question without "Q: "
    found = {}
    for name, d in packed.items():
        text = ""
        for bin_ in sorted(Path(d).glob("*.bin")):
            text += tok.tok.decode(IndexedDataset(str(bin_.with_suffix(""))).tokens.tolist()).lower()
        found[name] = sum(1 for q in qs if q in text)
    return found


def run_rephrase_vs_repeat(spec: RephraseVsRepeatSpec, on_event: OnEvent | None = None, *,
                           make_stage: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Run the probe end to end (see the module docstring); returns the results (also in results.json).
    `make_stage(rephrase_spec)` replaces the rephrase job's RewriteStage (tests: one with a scripted engine)."""
    from evidence.report import write_report
    emit = on_event or (lambda e: None)
    t_start = time.perf_counter()
    out = Path(spec.output)
    out.mkdir(parents=True, exist_ok=True)
    save_spec(spec, out / "spec.yaml", "evidence-rephrase-vs-repeat")
    people = make_people(spec.people, spec.seed, spec.qa_train_fraction)
    world = write_world(out / "world", people, spec.seed)
    questions = eval_questions(people)
    seconds: dict[str, float] = {}
    rephrasings, yield_ = None, None
    if any(A.ARMS[a][0] == "rephrase" for a in spec.arms):
        emit(Log(f"rephrase: {len(people)} passages x {spec.n_variants} variants"))
        rephrasings, yield_ = rephrase_stage(spec, world["raw"], out / "rephrase", people, make_stage)
        seconds["rephrase"] = yield_["seconds"]
    t0 = time.perf_counter()
    model_vocab = int(spec.train_fields()["model"].get("vocab_size", 1024))
    texts = [raw_passage(p) for p in people] + [d["text"] for d in qa_train_docs(people)]
    texts += [t for p in people for t in control_paraphrases(p, spec.seed, spec.n_variants)]
    tok_path = train_tokenizer(texts, out / "tokenizer" / "tokenizer.json", spec.vocab_size or model_vocab)
    arms, budget = build_arms(spec, out, people, world, rephrasings, tok_path)
    leaks = leak_check({**{n: a["packed"] for n, a in arms.items()}, "_qa": budget["qa_packed"]}, questions,
                       tok_path)
    if any(leaks.values()):
        raise ProbeError(f"eval questions found in training shards: {leaks}")
    seconds["data"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    runs = train_and_eval(spec, out, arms, people, questions, tok_path, budget, emit)
    seconds["train_eval"] = round(time.perf_counter() - t0, 1)
    seconds["total"] = round(time.perf_counter() - t_start, 1)
    results = {"format": "k2forge-evidence-rephrase-vs-repeat/1", "spec": json.loads(spec.model_dump_json()),
               "people": len(people), "eval_people": sum(1 for p in people if not p.qa_train),
               "questions": len(questions), "chance": chance(people), "budget": budget, "yield": yield_,
               "arms": arms, "leak_check": leaks, "runs": runs, "seconds": seconds,
               "tokenizer": str(tok_path), "world": {k: str(v) for k, v in world.items()}}
    write_report(results, out)
    results["outputs"] = [results["report"], results["results"], results["plot"]]   # the run-function contract
    emit(Progress(1, 1))
    return results


def train_and_eval(spec: RephraseVsRepeatSpec, out: Path, arms: dict[str, dict], people: list[Person],
                   questions: list[dict], tok_path: Path, budget: dict[str, Any],
                   emit: OnEvent) -> dict[str, list[dict]]:
    """Same model, same steps, same seeds for every arm; each run evaluated into its eval.json."""
    from corpus.tokenizer import load_tokenizer
    from evidence.qa import evaluate_run
    from trainer.launch import run_train
    import torch
    tok = load_tokenizer(tok_path)
    fields = spec.train_fields()
    device = "cuda" if fields.get("device", "auto") != "cpu" and torch.cuda.is_available() else "cpu"
    batch = int(fields["micro_batch_size"]) * int(fields.get("grad_accum", 1))
    samples = next(iter(arms.values()))["samples"]
    steps = max(1, samples // batch)          # the whole equal budget, never past it
    budget["steps"], budget["global_batch"] = steps, batch
    budget["train_tokens"] = steps * batch * budget["seq_len"]
    runs: dict[str, list[dict]] = {}
    for name in arms:
        for seed in spec.train_seeds:
            run_dir = out / "runs" / name / f"seed-{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            emit(Log(f"train {name} seed {seed}: {steps} steps"))
            t0 = time.perf_counter()
            summary = run_train(spec.train_spec(arms[name]["manifest"], str(run_dir), seed=seed, steps=steps))
            t_train = time.perf_counter() - t0
            ev = evaluate_run(summary["checkpoint"], tok, people, questions, spec.seed, spec.answer_tokens, device)
            atomic_write_json(run_dir / "eval.json", ev)
            runs.setdefault(name, []).append({
                "seed": seed, **{m: ev[m] for m in ("qa_exact", "qa_ranked", "qa_exact_seen", "qa_ranked_seen")},
                "heldout_loss": ev["heldout_loss"], "heldout_value_loss": ev["heldout_value_loss"],
                "final_train_loss": summary["final_loss"], "tokens_seen": summary["tokens_seen"],
                "steps": summary["step"], "train_seconds": round(t_train, 1), "eval": str(run_dir / "eval.json"),
                "checkpoint": summary["checkpoint"]})
            log.info("%s seed %d: qa_exact %.3f qa_ranked %.3f heldout_value_loss %.3f", name, seed,
                     ev["qa_exact"], ev["qa_ranked"], ev["heldout_value_loss"])
    return runs
