"""The demo report: facts gathered from the outputs ON DISK (not from what the steps said), written three ways.

OUTPUT/report/report.json  every number the report shows (tests compare it with the shards themselves)
OUTPUT/report/report.md    Markdown, images as PNG files beside it
OUTPUT/report/report.html  self-contained: the same PNGs inline as base64, no external assets

Sections: per stage counts and timings; fidelity score distributions and rejection reasons; three before/after
rewrite examples (one rejected, with its reason); the token mix (raw vs synthetic per domain); training (loss
curve, max attention logit per layer against tau, expert load); the sample from the export; artifact locations.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from corpus.layout import INDEX, REJECTS, STATS, find_meta
from corpus.schema import scores_dict
from corpus.shards import atomic_write_json, atomic_write_text

EXAMPLE_CHARS = 700


def _rows(d: Path, pattern: str = "part-*.parquet") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for p in sorted(d.glob(pattern)):
        rows.extend(pq.read_table(p).to_pylist())
    return rows


def _count(d: Path, pattern: str = "*.parquet") -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(d.glob(pattern)) if not p.name.startswith("_"))


# ------------------------------------------------------------------------------------------------ facts
def stage_table(out: Path, state: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stage: what went in, what came out (counted from the files), seconds."""
    st = state["stages"]
    packed = json.loads(find_meta(out / "packed", INDEX).read_text())
    manifest = json.loads((out / "mixture.json").read_text())
    tr = st["train"]["summary"]
    rows = [
        ("ingest", "4 sample files", f"{_count(out / 'raw')} documents"),
        ("rephrase", f"{st['rephrase']['summary']['stats'].get('docs_in', 0)} knowledge documents",
         f"{_count(out / 'rephrase')} accepted rewrites, {_count(find_meta(out / 'rephrase', REJECTS))} rejected"),
        ("verify", f"{st['verify']['summary']['rows']} labelled pairs (shipped test split)",
         f"{st['verify']['summary']['faithful_accepted']}/{st['verify']['summary']['faithful']} faithful accepted, "
         f"{st['verify']['summary']['unfaithful_rejected']}/{st['verify']['summary']['unfaithful']} corrupted "
         f"rejected"),
        ("mathnotes", f"{st['mathnotes']['summary']['stats'].get('docs_in', 0)} math documents",
         f"{_count(out / 'mathnotes')} accepted notes/translations, "
         f"{_count(find_meta(out / 'mathnotes', REJECTS))} rejected"),
        ("dedup", f"{st['dedup']['summary']['docs_in']} documents",
         f"{_count(out / 'dedup', 'part-*.parquet')} documents ({st['dedup']['summary']['exact_removed']} exact, "
         f"{st['dedup']['summary']['near_removed']} near duplicates removed)"),
        ("pack", f"{packed['total_docs']} documents", f"{packed['total_tokens']:,} tokens in "
                                                      f"{len(packed['shards'])} token shards"),
        ("mix", f"{len(manifest['sources'])} sources", f"{manifest['allotted_tokens']:,} tokens allotted, "
                                                       f"{manifest['num_samples']} samples of {manifest['seq_len']}"),
        ("train", f"{tr['tokens_seen']:,} tokens seen", f"{tr['step']} steps, final loss {tr['final_loss']:.3f}"),
        ("eval", "held-out split", f"eval loss {st['eval']['summary']['eval_loss']:.3f} over "
                                   f"{st['eval']['summary']['eval_tokens']:,} tokens"),
        ("export", "final checkpoint", f"{len(st['export']['summary']['files'])} files (deepseek_v3)"),
        ("sample", repr(st["sample"]["summary"]["prompt"]),
         f"{st['sample']['summary']['new_tokens']} new tokens"),
    ]
    return [{"stage": n, "input": i, "output": o, "seconds": st[n]["seconds"]} for n, i, o in rows]


def counts(out: Path) -> dict[str, int]:
    """Row and token counts read from the shards themselves."""
    packed = json.loads(find_meta(out / "packed", INDEX).read_text())
    return {"raw_docs": _count(out / "raw"), "rephrase_accepted": _count(out / "rephrase"),
            "rephrase_rejected": _count(find_meta(out / "rephrase", REJECTS)), "mathnotes_accepted": _count(out / "mathnotes"),
            "mathnotes_rejected": _count(find_meta(out / "mathnotes", REJECTS)),
            "dedup_docs": _count(out / "dedup", "part-*.parquet"), "packed_docs": packed["total_docs"],
            "packed_tokens": packed["total_tokens"]}


def fidelity(out: Path) -> dict[str, Any]:
    """Score lists of accepted rewrites (worst chunk) and of rejected ones (failing chunk), plus reasons."""
    res: dict[str, Any] = {}
    for job in ("rephrase", "mathnotes"):
        acc: dict[str, list[float]] = {}
        rej: dict[str, list[float]] = {}
        for r in _rows(out / job):
            for k, v in scores_dict((r.get("fidelity") or {}).get("scores")).items():
                acc.setdefault(k, []).append(v)
        for r in _rows(find_meta(out / job, REJECTS)):
            for k, v in scores_dict(r.get("scores")).items():
                rej.setdefault(k, []).append(v)
        stats = json.loads(find_meta(out / job, STATS).read_text())
        res[job] = {"accepted_scores": acc, "rejected_scores": rej,
                    "rejected_by_reason": stats.get("rejected_by_reason", {}),
                    "failed_attempts_by_reason": stats.get("failed_attempts_by_reason", {}),
                    "variants": stats.get("variants", 0), "accepted": stats.get("variants_accepted", 0),
                    "attempts_hist": stats.get("attempts_hist", {}), "tokens_out": stats.get("tokens_out", 0),
                    "tokens_per_s": stats.get("tokens_per_s"), "yield": stats.get("yield"),
                    "yield_by_style": stats.get("yield_by_style", {})}
    return res


def _clip(text: str, n: int = EXAMPLE_CHARS) -> str:
    text = text or ""
    return text if len(text) <= n else text[:n].rstrip() + " [...]"


def examples(out: Path) -> list[dict[str, Any]]:
    """Three before/after examples: up to two accepted rewrites (a rephrasing and a learning note when both
    exist), the rest rejected ones with their reasons (verifier verdicts first, one per job and reason)."""
    parents = {r["id"]: r for r in _rows(out / "raw", "*.parquet")}
    accepted = [(job, r) for job in ("rephrase", "mathnotes") for r in _rows(out / job)]
    picked = [next((jr for jr in accepted if jr[0] == job), None) for job in ("rephrase", "mathnotes")]
    picked = [jr for jr in picked if jr is not None]
    picked += [jr for jr in accepted if jr not in picked][:max(0, 2 - len(picked))]
    ex = [{"kind": "accepted", "job": job, "task": r["task"], "style": r["style"], "parent_id": r["parent_id"],
           "before": _clip(parents.get(r["parent_id"], {}).get("text", "")), "after": _clip(r["text"]),
           "reasons": [], "scores": scores_dict((r.get("fidelity") or {}).get("scores"))}
          for job, r in picked[:2]]
    for job, r in _pick_rejected(out, 3 - len(ex)):
        ex.append({"kind": "rejected", "job": job, "task": r["task"], "style": r["style"],
                   "parent_id": r["parent_id"], "before": _clip(r["source"]), "after": _clip(r["rewrite"]),
                   "reasons": list(r["reasons"] or []), "scores": scores_dict(r.get("scores")),
                   "chunk": r["chunk"], "attempts": r["attempts"]})
    return ex


def _pick_rejected(out: Path, n: int) -> list[tuple[str, dict[str, Any]]]:
    """n rejected rows, verifier verdicts (with a rewrite) first, varied: alternating jobs, new reasons first."""
    from rephrase.generate import reason_key
    per_job = []
    for job in ("rephrase", "mathnotes"):
        rows = sorted(_rows(find_meta(out / job, REJECTS)), key=lambda r: (r["status"] != "rejected", not r["rewrite"]))
        per_job.append([(job, r) for r in rows])
    queue = [jr for group in zip(*per_job) for jr in group]            # alternate the jobs ...
    queue += [jr for group in per_job for jr in group[min(map(len, per_job)):]]   # ... then the rest
    picked, seen = [], set()
    for fresh_only in (True, False):
        for job, r in queue:
            key = (job, reason_key((r["reasons"] or ["unknown"])[0]))
            if len(picked) >= n or (fresh_only and key in seen) or any(p is r for _, p in picked):
                continue
            seen.add(key)
            picked.append((job, r))
    return picked


def token_mix(out: Path) -> list[dict[str, Any]]:
    manifest = json.loads((out / "mixture.json").read_text())
    return [{"name": s["name"], "domain": s["domain"], "kind": s["provenance"]["kind"],
             "summary": s["provenance"].get("summary", ""), "available_tokens": s["available_tokens"],
             "allotted_tokens": s["allotted_tokens"], "fraction": s["fraction"], "epochs": s["epochs"],
             "capped": s["capped"]} for s in manifest["sources"]]


def training(out: Path, state: dict[str, Any]) -> dict[str, Any]:
    from trainer.metrics import read_metrics
    rows = read_metrics(out / "train" / "metrics.jsonl", "train")
    tau = float(state["config"]["train"].get("qk_clip_tau", 100.0))
    layers = max((len(r.get("max_logit") or []) for r in rows), default=0)
    peak = [max((r["max_logit"][i] for r in rows if len(r.get("max_logit") or []) > i), default=None)
            for i in range(layers)]
    last = rows[-1] if rows else {}
    ev = state["stages"]["eval"]["summary"]
    manifest = json.loads((out / "mixture.json").read_text())
    return {"corpus_tokens": sum(s["available_tokens"] for s in manifest["sources"]),"steps": last.get("step"), "first_loss": rows[0]["loss"] if rows else None,
            "final_loss": last.get("loss"), "eval_loss": ev["eval_loss"], "perplexity": ev["perplexity"],
            "tau": tau, "max_logit_peak_per_layer": peak, "max_logit_last_per_layer": last.get("max_logit", []),
            "heads_clipped_total": sum(r.get("heads_clipped_total", 0) for r in rows),
            "steps_with_clipping": sum(1 for r in rows if r.get("heads_clipped_total", 0) > 0),
            "expert_imbalance_last": last.get("expert_imbalance", []),
            "tokens_per_s_median": _median([r["tokens_per_s"] for r in rows]),
            "tokens_seen": state["stages"]["train"]["summary"]["tokens_seen"]}


def _median(xs: list[float]) -> float | None:
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None


def artifacts(out: Path) -> list[dict[str, str]]:
    items = [(".k2forge/pipeline.json", "the pipeline's state: every step's spec digest, status, summary and time"),
             ("raw/", "ingested sample documents (parquet shards)"),
             ("selected/", "the sample documents chosen for rewriting (pipeline/demo/sizes.yaml), in order"),
             ("rephrase/", "accepted rewrites; .k2forge/rejects/ holds every rejected variant with its reasons"),
             ("verify/", "the shipped labelled sample and the verifier's verdicts on it (verdicts.jsonl)"),
             ("mathnotes/", "learning notes and translations; .k2forge/rejects/, .k2forge/routing/ decisions"),
             ("dedup/", "deduplicated documents; .k2forge/clusters.parquet, .k2forge/removed.parquet"),
             ("packed/", "token shards (.bin/.idx, Megatron layout) + .k2forge/index.json"),
             ("mixture.yaml", "the resolved demo mixture (corpus mix format)"),
             ("mixture.json", "mixture manifest read by the trainer (+ mixture.blend.txt for Megatron)"),
             ("train/", "checkpoints, metrics.jsonl, loss/max-logit/expert-load plots, spec.yaml"),
             ("eval.json", "held-out loss and perplexity of the final checkpoint"),
             ("export/", "Hugging Face deepseek_v3 model + tokenizer (AutoModelForCausalLM loads it)"),
             ("sample.json", "the generated sample"),
             ("report/", "this report: report.html (self-contained), report.md, report.json, PNGs")]
    return [{"path": str(out / p), "what": w} for p, w in items if (out / p.rstrip("/")).exists() or p == "report/"]


def collect(out: Path, state: dict[str, Any]) -> dict[str, Any]:
    return {"output": str(out), "size": state["config"]["size"], "stages": stage_table(out, state),
            "total_seconds": round(sum(s["seconds"] for s in state["stages"].values()), 2),
            "counts": counts(out), "fidelity": fidelity(out), "examples": examples(out),
            "token_mix": token_mix(out), "mix_notes": state["stages"]["mix"]["summary"].get("notes", []),
            "mix_warnings": state["stages"]["mix"]["summary"].get("warnings", []),
            "training": training(out, state), "sample": state["stages"]["sample"]["summary"],
            "verify_sample": state["stages"]["verify"]["summary"],
            "artifacts": artifacts(out)}


# ------------------------------------------------------------------------------------------------ write
def write_report(out: Path, state: dict[str, Any], rdir: Path | None = None) -> dict[str, str]:
    """Gather the facts, draw the figures, write report.json/.md/.html (into out/report); return their paths.
    `state`: {"config": {"size", "train"}, "stages": {name: {"summary", "seconds"}}}."""
    from pipeline.report.figures import draw_figures
    from pipeline.report.render import render_html, render_md
    rdir = rdir or out / "report"
    rdir.mkdir(parents=True, exist_ok=True)
    facts = collect(out, state)
    images = draw_figures(facts, out / "train", rdir)
    facts["images"] = {k: str(p) for k, p in images.items()}
    atomic_write_json(rdir / "report.json", facts)
    atomic_write_text(rdir / "report.md", render_md(facts, images, rdir))
    atomic_write_text(rdir / "report.html", render_html(facts, images))
    return {"html": str(rdir / "report.html"), "md": str(rdir / "report.md"), "json": str(rdir / "report.json")}
