"""The arms of the probe: which texts each trains on, packed and mixed at one equal token budget.

Budget (K2 Table 1, "same compute"): B = P x V x (tokens of the raw passages), V = variants (10), P = passes (1 in
K2's rows; the CPU default uses 4, since 10 exposures teach a tiny model nothing extractable), plus the same
Q/A tokens in every arm. Every arm's mixture has two sources with absolute token targets, `bio` = B and
`qa` = qa_epochs x the Q/A pairs' tokens, so `corpus mix` allots the same tokens, hence the same samples and
steps, to every arm; only what `bio` holds differs:

  raw_x10       the raw passage of each person                      -> mix epochs B / raw tokens = P x V
  reph_1x10     one verified rephrasing per person                  -> ~P x V epochs (B / its tokens)
  reph_10x1     V verified rephrasings per person                   -> ~P epochs
  control_10x1  V seeded template paraphrases per person (CONTROL)  -> ~P epochs
  control_1x10  1 template paraphrase per person (CONTROL)          -> ~P x V epochs

Gap rule (rephrasing arms), stated here and counted in the report: a person's slots are its verified
rephrasings in variant order (only those that pass verification and do not contain one of the person's eval
questions); when fewer than the slots exist, slot k >= n cycles over [raw passage, v_1 ... v_n], so a person
with no verified rephrasing is trained on its raw passage (reph_1x10: slot 1 is the raw passage). Epochs then
follow from B, never the other way round, so the budget stays equal whatever the yield. Control texts come from
the world generator only and are never mixed into an LLM arm.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence.world import Person, control_paraphrases, eval_questions, raw_passage


@dataclass
class ArmPlan:
    name: str
    kind: str                      # raw | rephrase | control
    per_person: int                # documents per person in the source
    planned_epochs: float          # the K2 row's epochs (the mix decides the exact figure from the budget)
    docs: list[dict[str, Any]]
    fill: dict[str, int]           # documents by provenance: raw, rephrasing, fill_raw, fill_repeat, control


ARMS: dict[str, tuple[str, int | None, float | None]] = {
    # name -> (kind, documents per person (None = V), planned epochs (None = V))
    "raw_x10": ("raw", 1, None),
    "reph_1x10": ("rephrase", 1, None),
    "reph_10x1": ("rephrase", None, 1.0),
    "control_10x1": ("control", None, 1.0),
    "control_1x10": ("control", 1, None),
}


def collect_rephrasings(outputs: list[str], people: list[Person]) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """Verified rephrasings per person (variant order) from the rephrase stage's shards, minus any row holding one
    of that person's eval questions (a Q&A-style rewrite may word a question like the probe): (rows, dropped)."""
    import pyarrow.parquet as pq
    questions = {}
    for q in eval_questions(people):
        questions.setdefault(q["person"], []).append(q["prompt"].split("\n")[0][3:].lower())  # "Q: " stripped
    rows: dict[str, list[dict]] = {p.id: [] for p in people}
    dropped = {"leaked_eval_question": 0, "unknown_parent": 0}
    for path in outputs:
        for r in pq.read_table(path).to_pylist():
            if r["parent_id"] not in rows:
                dropped["unknown_parent"] += 1
            elif any(q in r["text"].lower() for q in questions.get(r["parent_id"], [])):
                dropped["leaked_eval_question"] += 1
            else:
                rows[r["parent_id"]].append(r)
    for v in rows.values():
        v.sort(key=lambda r: json.loads(r["meta"] or "{}").get("variant", 0))
    return rows, dropped


def _raw_doc(p: Person, slot: int, prov: str) -> dict[str, Any]:
    return {"id": f"{p.id}-raw-{slot}" if slot else p.id, "text": raw_passage(p), "domain": "knowledge",
            "source": "evidence-raw", "meta": json.dumps({"person": p.id, "slot": slot, "provenance": prov})}


def _slot_docs(p: Person, verified: list[dict], slots: int) -> list[tuple[dict[str, Any], str]]:
    """The gap rule: verified rephrasings first, then cycle over [raw, v_1..v_n]."""
    out: list[tuple[dict[str, Any], str]] = []
    cycle = [None] + verified
    for k in range(slots):
        if k < len(verified):
            row, prov = verified[k], "rephrasing"
        else:
            row = cycle[(k - len(verified)) % len(cycle)]
            prov = "fill_raw" if row is None else "fill_repeat"
        if row is None:
            out.append((_raw_doc(p, k, prov), prov))
            continue
        doc = {**row, "id": f"{row['id']}-{k}" if prov == "fill_repeat" else row["id"],
               "meta": json.dumps({**json.loads(row["meta"] or "{}"), "slot": k, "provenance": prov})}
        out.append((doc, prov))
    return out


def plan_arm(name: str, people: list[Person], variants: int, passes: float, seed: int,
             rephrasings: dict[str, list[dict]] | None) -> ArmPlan:
    kind, per, epochs = ARMS[name]
    per = variants if per is None else per
    epochs = passes * (float(variants) if epochs is None else epochs)
    docs: list[dict[str, Any]] = []
    fill: dict[str, int] = {}
    for p in people:
        if kind == "raw":
            pairs = [(_raw_doc(p, 0, "raw"), "raw")]
        elif kind == "control":
            pairs = [({"id": f"{p.id}-control-{k}", "text": t, "domain": "knowledge", "source": "evidence-control",
                       "parent_id": p.id, "task": "control_template", "style": "template", "engine": "template",
                       "model": "evidence.world", "meta": json.dumps({"person": p.id, "slot": k})}, "control")
                     for k, t in enumerate(control_paraphrases(p, seed, per))]
        else:
            if rephrasings is None:
                raise ValueError(f"arm {name}: needs the rephrase stage's output")
            pairs = _slot_docs(p, rephrasings.get(p.id, []), per)
        for d, prov in pairs:
            docs.append(d)
            fill[prov] = fill.get(prov, 0) + 1
    return ArmPlan(name, kind, per, epochs, docs, fill)


def write_docs(docs: list[dict[str, Any]], path: Path, synthetic: bool) -> Path:
    from corpus.schema import normalize_doc, table_from_docs
    from corpus.shards import write_table
    rows = [normalize_doc(d, f"{path}:{i}", "knowledge", synthetic=synthetic) if not synthetic else _synth(d)
            for i, d in enumerate(docs)]
    write_table(path, table_from_docs(rows, synthetic=synthetic))
    return path


def _synth(d: dict[str, Any]) -> dict[str, Any]:
    """A row of the synthetic schema; raw rows (fill_raw) keep parent_id null, so pack counts them as raw."""
    keys = ("id", "text", "domain", "source", "lang", "meta", "parent_id", "task", "style", "engine", "model",
            "prompt_sha", "fidelity", "attempts")
    return {k: d.get(k) for k in keys} | {"lang": d.get("lang") or "en"}


def pack_dir(inputs: list[Path], output: Path, tokenizer: Path) -> Path:
    from corpus.pack import PackSpec, run_pack
    run_pack(PackSpec(inputs=[str(p) for p in inputs], output=str(output), tokenizer=str(tokenizer)))
    return output


def mix_arm(out: Path, name: str, bio: Path, qa: Path, bio_tokens: int, qa_tokens: int, seq_len: int,
            seed: int) -> dict[str, Any]:
    """The arm's manifest: `bio` and `qa` with absolute token targets, no eval split (the probe evaluates)."""
    import yaml

    from corpus.mixture import MixSpec, run_mix
    mixture = {"seq_len": seq_len, "seed": seed, "eval_fraction": 0.0, "shortfall": "report",
               "sources": [{"name": n, "paths": [str(p.resolve())], "domain": "knowledge", "tokens": t}
                           for n, p, t in (("bio", bio, bio_tokens), ("qa", qa, qa_tokens))]}
    (out / f"{name}.mix.yaml").write_text(yaml.safe_dump(mixture, sort_keys=False))
    res = run_mix(MixSpec(mixture=str(out / f"{name}.mix.yaml"), output=str(out / f"{name}.json")))
    if res["shortfall_tokens"]:
        raise ValueError(f"arm {name}: the mixture falls {res['shortfall_tokens']} tokens short of its budget")
    return json.loads((out / f"{name}.json").read_text())


def packed_tokens(pack_output: Path) -> int:
    from corpus.layout import INDEX, find_meta
    return int(json.loads(find_meta(pack_output, INDEX).read_text())["total_tokens"])
