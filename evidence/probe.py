"""`k2forge evidence rephrase-vs-repeat`: Kimi K2's Table 1 in miniature, from the project's own stages.

A pipeline (pipeline.runner) of registered steps, built from the spec by `definition`:

    world            evidence.world: N fictional people -> raw passages, control paraphrases, Q/A pairs, eval
                     questions
    rephrase         rephrase.run.run_rephrase on the raw passages: V style-diverse, chunk-wise, verified variants
                     each (only when an arm trains on rephrasings)
    data             a byte-level BPE trained on the generator's training texts (raw, control, Q/A), shared by all
                     arms; evidence.arms: per arm a document shard -> corpus pack -> corpus mix at the same budget
    train-ARM-seed-S trainer.launch.run_train, the same model, steps and seeds for every arm, from scratch; then
                     evidence.qa: QA exact match / ranked accuracy on held-out questions, held-out paraphrase loss
    report           evidence.report: results.json, report.md, the plot

Everything lands under `output/` (spec.yaml, world/, rephrase/, tokenizer/, arms/<arm>/, runs/<arm>/seed-<s>/,
report) with the runner's state in `.k2forge/pipeline.json`; results.json names each artifact. A rerun into the
same folder resumes per step: a step whose fields of the spec and inputs are unchanged is reused (each step's
spec holds only the probe fields it reads, so changing e.g. `seeds` reruns the trainings and the report, not the
rephrasing); an interrupted rephrase step resumes like any rephrase job; a training reruns from scratch. A folder
written by the probe before it was a pipeline (spec.yaml, no pipeline state) is cleared first; any other
non-empty folder is refused (pipeline.runner.PipelineError). Before training, every arm's manifest must allot the
same tokens and samples, and no eval question may appear in any packed training shard (decoded back to text):
either failure stops the probe (ProbeError, naming the arm and the reason); a failing step's own error is raised.
"""
from __future__ import annotations

import contextvars
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import Field

from corpus.events import Log, OnEvent
from corpus.fields import PathOut
from corpus.shards import atomic_write_json
from corpus.spec import Spec, save_spec
from evidence import arms as A
from evidence.spec import ARM_NAMES, RephraseVsRepeatSpec
from evidence.world import (ATTRIBUTES, Person, chance, control_paraphrases, eval_questions, heldout_paraphrase,
                            make_people, qa_train_docs, raw_passage)
from pipeline.definition import Definition, StepDef
from pipeline.registry import StepContext, register_step
from pipeline.runner import StepFailed, run_pipeline, state_path

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


# -- the pipeline ---------------------------------------------------------------------------------------------

PIPELINE = "evidence-rephrase-vs-repeat"
#: the probe fields each step reads (its spec holds only these, the rest at their defaults, so that a changed
#: field reruns the steps that read it and those below them); the report reads them all
_WORLD = ("size", "entities", "seed", "qa_train_fraction")
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "world": _WORLD,
    "rephrase": _WORLD + ("variants", "engine", "verifier", "rephrase"),
    "data": _WORLD + ("variants", "passes", "qa_epochs", "arms", "train", "vocab_size"),
    "train": _WORLD + ("train", "answer_tokens"),
}
#: `make_stage` of the running probe (tests' scripted engine), seen by the rephrase step
_make_stage: contextvars.ContextVar[Callable[[Any], Any] | None] = contextvars.ContextVar("make_stage",
                                                                                        default=None)


class ProbeStepSpec(Spec):
    """A step of the probe: the probe fields it reads (`probe.output` is the probe's folder) and what it writes."""
    probe: RephraseVsRepeatSpec
    output: PathOut = Field(description="the folder (or file) this step writes")


class ProbeRunSpec(ProbeStepSpec):
    """One training run and its eval: an arm, a training seed."""
    arm: str = Field(pattern="^(" + "|".join(ARM_NAMES) + ")$", description="the arm to train")
    seed: int


def _people(spec: RephraseVsRepeatSpec) -> list[Person]:
    return make_people(spec.people, spec.seed, spec.qa_train_fraction)


def _needs_rephrase(arms: list[str]) -> bool:
    return any(A.ARMS[a][0] == "rephrase" for a in arms)


def world_step(spec: ProbeStepSpec, ctx: StepContext) -> dict[str, Any]:
    world = {k: str(v) for k, v in write_world(Path(spec.output), _people(spec.probe), spec.probe.seed).items()}
    return {"world": world, "outputs": list(world.values())}


def rephrase_step(spec: ProbeStepSpec, ctx: StepContext) -> dict[str, Any]:
    """The yield summary of the rephrase job on the world's raw passages (its shards under `outputs`)."""
    people = _people(spec.probe)
    ctx.emit(Log(f"rephrase: {len(people)} passages x {spec.probe.n_variants} variants"))
    raw = Path(ctx.records["world"]["summary"]["world"]["raw"])
    _, summary = rephrase_stage(spec.probe, raw, Path(spec.output), people, _make_stage.get())
    return summary


def data_step(spec: ProbeStepSpec, ctx: StepContext) -> dict[str, Any]:
    """Tokenizer, every arm at the same budget, the leak check, and the training plan (steps) in `budget`."""
    p, out = spec.probe, Path(spec.probe.output)
    people = _people(p)
    world = {k: Path(v) for k, v in ctx.records["world"]["summary"]["world"].items()}
    rephrasings = None
    if _needs_rephrase(p.arms):
        rephrasings, _ = A.collect_rephrasings(ctx.records["rephrase"]["summary"]["outputs"], people)
    fields = p.train_fields()
    texts = [raw_passage(x) for x in people] + [d["text"] for d in qa_train_docs(people)]
    texts += [t for x in people for t in control_paraphrases(x, p.seed, p.n_variants)]
    tok_path = train_tokenizer(texts, out / "tokenizer" / "tokenizer.json",
                               p.vocab_size or int(fields["model"].get("vocab_size", 1024)))
    arms, budget = build_arms(p, out, people, world, rephrasings, tok_path)
    leaks = leak_check({**{n: a["packed"] for n, a in arms.items()}, "_qa": budget["qa_packed"]},
                       eval_questions(people), tok_path)
    if any(leaks.values()):
        raise ProbeError(f"eval questions found in training shards: {leaks}")
    batch = int(fields["micro_batch_size"]) * int(fields.get("grad_accum", 1))
    steps = max(1, next(iter(arms.values()))["samples"] // batch)   # the whole equal budget, never past it
    budget.update(steps=steps, global_batch=batch, train_tokens=steps * batch * budget["seq_len"])
    return {"arms": arms, "budget": budget, "leak_check": leaks, "tokenizer": str(tok_path),
            "outputs": [str(tok_path)] + [a["manifest"] for a in arms.values()]}


def train_step(spec: ProbeRunSpec, ctx: StepContext) -> dict[str, Any]:
    """Train one arm with one seed from scratch for the planned steps, evaluate it into eval.json; its runs row."""
    import torch

    from corpus.tokenizer import load_tokenizer
    from evidence.qa import evaluate_run
    from trainer.launch import run_train
    p, data = spec.probe, ctx.records["data"]["summary"]
    people = _people(p)
    fields = p.train_fields()
    device = "cuda" if fields.get("device", "auto") != "cpu" and torch.cuda.is_available() else "cpu"
    steps = data["budget"]["steps"]
    run_dir = Path(spec.output)
    shutil.rmtree(run_dir, ignore_errors=True)
    ctx.emit(Log(f"train {spec.arm} seed {spec.seed}: {steps} steps"))
    t0 = time.perf_counter()
    summary = run_train(p.train_spec(data["arms"][spec.arm]["manifest"], str(run_dir), seed=spec.seed, steps=steps))
    t_train = time.perf_counter() - t0
    ev = evaluate_run(summary["checkpoint"], load_tokenizer(data["tokenizer"]), people, eval_questions(people),
                      p.seed, p.answer_tokens, device)
    atomic_write_json(run_dir / "eval.json", ev)
    log.info("%s seed %d: qa_exact %.3f qa_ranked %.3f heldout_value_loss %.3f", spec.arm, spec.seed,
             ev["qa_exact"], ev["qa_ranked"], ev["heldout_value_loss"])
    return {"seed": spec.seed, **{m: ev[m] for m in ("qa_exact", "qa_ranked", "qa_exact_seen", "qa_ranked_seen")},
            "heldout_loss": ev["heldout_loss"], "heldout_value_loss": ev["heldout_value_loss"],
            "final_train_loss": summary["final_loss"], "tokens_seen": summary["tokens_seen"],
            "steps": summary["step"], "train_seconds": round(t_train, 1), "eval": str(run_dir / "eval.json"),
            "checkpoint": summary["checkpoint"]}


def report_step(spec: ProbeStepSpec, ctx: StepContext) -> dict[str, Any]:
    """results.json, report.md and the plot from the other steps' summaries; the results (the probe's return)."""
    from evidence.report import write_report
    p, rec = spec.probe, ctx.records
    people = _people(p)
    data = rec["data"]["summary"]
    runs = {arm: [{k: v for k, v in rec[_run_name(arm, s)]["summary"].items() if k != "outputs"}
                  for s in p.train_seeds] for arm in p.arms}
    yield_ = rec["rephrase"]["summary"] if _needs_rephrase(p.arms) else None
    train_eval = sum(rec[_run_name(a, s)]["seconds"] for a in p.arms for s in p.train_seeds)
    seconds = {**({"rephrase": yield_["seconds"]} if yield_ else {}), "data": rec["data"]["seconds"],
               "train_eval": round(train_eval, 1),   # total: the steps' own seconds, whichever run did them
               "total": round(rec["world"]["seconds"] + (rec["rephrase"]["seconds"] if yield_ else 0)
                              + rec["data"]["seconds"] + train_eval, 1)}
    results = {"format": "k2forge-evidence-rephrase-vs-repeat/1", "spec": json.loads(p.model_dump_json()),
               "people": len(people), "eval_people": sum(1 for x in people if not x.qa_train),
               "questions": len(eval_questions(people)), "chance": chance(people), "budget": data["budget"],
               "yield": yield_, "arms": data["arms"], "leak_check": data["leak_check"], "runs": runs,
               "seconds": seconds, "tokenizer": data["tokenizer"], "world": rec["world"]["summary"]["world"]}
    write_report(results, Path(p.output))
    results["outputs"] = [results["report"], results["results"], results["plot"]]   # the run-function contract
    return results


def _run_name(arm: str, seed: int) -> str:
    return f"train-{arm}-seed-{seed}"


for _name in ("world", "rephrase", "data", "train", "report"):
    register_step(f"evidence.probe-{_name}", "evidence.probe:" + ("ProbeRunSpec" if _name == "train" else
                                                                   "ProbeStepSpec"), f"evidence.probe:{_name}_step")


def definition(spec: RephraseVsRepeatSpec) -> Definition:
    """The probe as a pipeline definition: concrete steps (no references) in run order."""
    out = Path(spec.output)
    full = spec.model_dump(mode="json")

    def step(name: str, kind: str, fields: tuple[str, ...] | None, output: Path, depends: list[str], about: str,
             **extra: Any) -> StepDef:
        probe = {k: v for k, v in full.items() if fields is None or k in fields}
        return StepDef(name=name, kind=f"evidence.probe-{kind}", depends=depends, about=about,
                       spec={"probe": {**probe, "output": spec.output}, "output": str(output), **extra})

    rephrase = _needs_rephrase(spec.arms)
    steps = [step("world", "world", STEP_FIELDS["world"], out / "world", [], "fictional people -> passages, Q/A")]
    if rephrase:
        steps.append(step("rephrase", "rephrase", STEP_FIELDS["rephrase"], out / "rephrase", ["world"],
                          f"{spec.n_variants} verified rephrasings per passage"))
    steps.append(step("data", "data", STEP_FIELDS["data"], out / "arms", ["world"] + ["rephrase"] * rephrase,
                      "tokenizer; every arm packed and mixed at one budget; leak check"))
    runs = [_run_name(a, s) for a in spec.arms for s in spec.train_seeds]
    steps += [step(_run_name(a, s), "train", STEP_FIELDS["train"], out / "runs" / a / f"seed-{s}", ["data"],
                   f"train {a} (seed {s}) and evaluate", arm=a, seed=s)
              for a in spec.arms for s in spec.train_seeds]
    steps.append(step("report", "report", None, out / "report.md", ["world", "data"] + ["rephrase"] * rephrase + runs,
                      "results.json, report.md, plot"))
    return Definition(name=PIPELINE, about="K2 Table 1 in miniature: rephrasing vs repetition", steps=steps)


def run_rephrase_vs_repeat(spec: RephraseVsRepeatSpec, on_event: OnEvent | None = None, *,
                           make_stage: Callable[[Any], Any] | None = None, fresh: bool = False) -> dict[str, Any]:
    """Run (or resume) the probe (see the module docstring); returns the results (also in results.json).
    `make_stage(rephrase_spec)` replaces the rephrase job's RewriteStage (tests: one with a scripted engine);
    `fresh` deletes an earlier run of the probe in `spec.output` first (a benchmark times every step)."""
    out = Path(spec.output)
    if _pre_pipeline_folder(out):
        shutil.rmtree(out)          # the probe's folder from before it was a pipeline: nothing in it can be reused
    token = _make_stage.set(make_stage)
    try:
        res = run_pipeline(definition(spec), out, fresh=fresh, on_event=on_event)
    except StepFailed as e:         # the step's own error (ProbeError, SpecError, the engine's), as before
        save_spec(spec, out / "spec.yaml", PIPELINE)
        raise (e.__cause__ or e) from None
    finally:
        _make_stage.reset(token)
    save_spec(spec, out / "spec.yaml", PIPELINE)
    return res["steps"]["report"]["summary"]


def _pre_pipeline_folder(out: Path) -> bool:
    """A folder the probe wrote before it was a pipeline: its spec.yaml, no pipeline state."""
    import yaml
    if state_path(out).exists() or not (out / "spec.yaml").is_file():
        return False
    try:
        return (yaml.safe_load((out / "spec.yaml").read_text()) or {}).get("kind") == PIPELINE
    except (yaml.YAMLError, AttributeError):
        return False
