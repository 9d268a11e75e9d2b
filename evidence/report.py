"""The probe's report: results.json, report.md (the K2-style table, the yield, the gap fill, the verdict) and a
plot (matplotlib when installed, else a hand-written SVG). Every number in the table is computed here from the
runs' eval.json files, so the report and the eval files cannot disagree.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from corpus.shards import atomic_write_json, atomic_write_text

K2_TABLE1 = {"raw_x10": 23.76, "reph_1x10": 27.39, "reph_10x1": 28.94}
LABELS = {"raw_x10": "raw x {e} epochs", "reph_1x10": "1 rephrasing x {e} epochs",
          "reph_10x1": "{v} rephrasings x {p} epoch(s)", "control_10x1": "CONTROL: {v} template paraphrases x {p} "
          "epoch(s)", "control_1x10": "CONTROL: 1 template paraphrase x {e} epochs"}


def label(arm: str, variants: int, passes: float) -> str:
    """The K2 row an arm stands for, at this run's V and passes ("raw x 10 epochs" at V = 10, one pass)."""
    return LABELS[arm].format(e=f"{variants * passes:g}", v=variants, p=f"{passes:g}")
METRICS = ("qa_exact", "qa_ranked", "qa_exact_seen", "qa_ranked_seen", "heldout_loss", "heldout_value_loss")


def summarize(values: list[float]) -> dict[str, float]:
    """mean, sample std (0 for one seed), min, max."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "min": min(vals), "max": max(vals), "n": len(vals)}


def table(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """arm -> metric -> summary over seeds, read from each run's eval.json."""
    out = {}
    for arm, runs in results["runs"].items():
        evals = [json.loads(Path(r["eval"]).read_text()) for r in runs]
        out[arm] = {m: summarize([e[m] for e in evals]) for m in METRICS}
    return out


def verdict(tab: dict[str, dict[str, dict[str, float]]], metric: str = "qa_exact") -> dict[str, Any]:
    """Does raw x10 < 1 reph x10 < 10 reph x1 hold (means), and are the gaps larger than the seed spread?"""
    def gap(a: str, b: str) -> dict[str, Any] | None:
        if a not in tab or b not in tab:
            return None
        ma, mb = tab[a][metric]["mean"], tab[b][metric]["mean"]
        spread = max(tab[a][metric]["std"], tab[b][metric]["std"])
        return {"from": a, "to": b, "delta": mb - ma, "spread": spread,
                "beyond_spread": (mb - ma) > spread if spread > 0 else None}
    steps = [g for g in (gap("raw_x10", "reph_1x10"), gap("reph_1x10", "reph_10x1")) if g]
    ctrl = gap("raw_x10", "control_10x1")
    return {"metric": metric, "llm_ordering_holds": bool(steps) and all(g["delta"] > 0 for g in steps),
            "llm_steps": steps, "control_beats_raw": None if ctrl is None else ctrl["delta"] > 0,
            "control": ctrl}


def _needed(results: dict[str, Any]) -> list[str]:
    """What filling reph_10x1 with verified rephrasings would take at the measured acceptance rate."""
    y, v = results.get("yield") or {}, results["budget"]["variants"]
    rate, asked = y.get("acceptance_rate") or 0.0, y.get("asked") or 0
    if rate >= 0.9 or not asked:
        return []
    if rate == 0:
        return [f"no variant passed verification: no number of samples of this engine fills the {v} rephrasings "
                "per passage; a stronger engine is needed (size large with vLLM or an OpenAI-compatible server)"]
    per = math.ceil(v / rate)
    cost = ""
    if y.get("seconds"):
        per_asked = asked / max(int(results["people"]), 1)       # variants asked per passage in this run
        cost = f" (~{per / per_asked * y['seconds'] / 60:.0f} min of rephrasing at this run's speed)"
    return [f"at an acceptance rate of {100 * rate:.1f}%, {v} verified rephrasings per passage need ~{per} samples "
            f"per passage{cost}, or an engine whose rewrites pass >= 90% (size large with a real model)"]


def diagnosis(results: dict[str, Any], v: dict[str, dict[str, Any]]) -> list[str]:
    """Why the LLM ordering does or does not hold, from the yield, the gap fill and the control arm."""
    out = []
    arms = results["arms"]
    if "reph_10x1" in arms:
        fill = arms["reph_10x1"]["fill"]
        share = fill.get("rephrasing", 0) / max(sum(fill.values()), 1)
        out.append(f"reph_10x1 holds {100 * share:.0f}% verified rephrasings; the rest is gap fill "
                   f"({fill.get('fill_raw', 0)} raw copies, {fill.get('fill_repeat', 0)} repeated rephrasings)"
                   + (": with this yield the LLM arms are mostly raw text, so they cannot differ much from raw_x10"
                      if share < 0.5 else ""))
        out.extend(_needed(results))
    beats = [m for m, vm in v.items() if vm["control"] is not None and vm["control"]["delta"] > 0
             and (vm["control"]["beyond_spread"] or vm["control"]["spread"] == 0)]
    if any(vm["control"] is not None for vm in v.values()):
        if beats:
            out.append(f"the control (template paraphrases) beats raw beyond the seed spread on {', '.join(beats)}: "
                       "this trainer and size show the diversity effect there, so an LLM arm that stays near raw "
                       "is the rewrites' yield or quality")
        else:
            out.append("the control does not beat raw beyond the seed spread on any metric: at this size the model "
                       "or budget is too small to show the diversity effect at all (raise passes, entities or the "
                       "model)")
    return out


def write_report(results: dict[str, Any], out: Path) -> dict[str, Any]:
    tab = table(results)
    results["table"] = tab
    results["verdict"] = {m: verdict(tab, m) for m in ("qa_exact", "qa_ranked", "qa_exact_seen", "qa_ranked_seen")}
    results["diagnosis"] = diagnosis(results, results["verdict"])
    plot = out / "rephrase_vs_repeat.png"
    results["plot"] = str(plot_table(tab, plot))
    results["report"] = str(out / "report.md")
    results["results"] = str(out / "results.json")
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", markdown(results))
    return results


def _pm(s: dict[str, float], pct: bool = False) -> str:
    if s["n"] == 0:
        return "n/a"
    k = 100.0 if pct else 1.0
    return f"{k * s['mean']:.1f} ± {k * s['std']:.1f}" if pct else f"{s['mean']:.3f} ± {s['std']:.3f}"


def markdown(r: dict[str, Any]) -> str:
    tab, b = r["table"], r["budget"]
    seeds = r["spec"]["seeds"] or sorted({x["seed"] for runs in r["runs"].values() for x in runs})
    lines = [f"# Rephrasing vs repetition (K2 Table 1 in miniature) — size `{r['spec']['size']}`", "",
             "K2 column: Kimi K2 Table 1 (SimpleQA, V = 10, one pass), for the ordering only: not comparable in "
             "scale." + (f" This run: {b['passes']:g} passes (each arm sees {b['passes']:g}x the budget of K2's "
                         "row)." if b["passes"] != 1 else ""), "",
             f"{r['people']} fictional people ({r['eval_people']} eval people asked {r['questions'] // 2} questions "
             f"in a held-out wording, and the same in the Q/A-train wording: the 'seen' columns), "
             f"seeds {seeds}; every arm trains {b['steps']} steps x {b['global_batch']} x {b['seq_len']} tokens = "
             f"{b['train_tokens']} tokens of a manifest allotting the same {b['bio_tokens']} bio + "
             f"{b['qa_tokens']} Q/A tokens ({b['rule']}).", "",
             "| arm | bio source (mix provenance) | epochs | texts/person | QA exact % | QA ranked % | "
             "QA exact % (seen) | QA ranked % (seen) | held-out loss | held-out value loss | K2 SimpleQA |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for arm, t in tab.items():
        a = r["arms"][arm]
        lines.append(f"| {label(arm, b['variants'], b['passes'])} | {a['provenance']} | {a['bio_epochs']:.2f} | "
                     f"{a['unique_texts_per_person']:.2f} | {_pm(t['qa_exact'], True)} | "
                     f"{_pm(t['qa_ranked'], True)} | {_pm(t['qa_exact_seen'], True)} | "
                     f"{_pm(t['qa_ranked_seen'], True)} | {_pm(t['heldout_loss'])} | {_pm(t['heldout_value_loss'])} | "
                     f"{K2_TABLE1.get(arm, '')} |")
    ch = r["chance"]
    lines += ["", f"Chance (a constant guess, per attribute): {', '.join(f'{k} {100 * v:.0f}%' for k, v in ch.items())}"
              f"; mean ± sample std over seeds.", ""]
    lines += _yield_lines(r) + _fill_lines(r) + _verdict_lines(r) + ["", "## Artifacts", ""]
    lines += [f"- {k}: `{v}`" for k, v in (("results", r["results"]), ("plot", r["plot"]),
                                              ("tokenizer", r["tokenizer"]), *r["world"].items())]
    for arm, a in r["arms"].items():
        lines.append(f"- {arm}: manifest `{a['manifest']}`, docs `{a['docs_path']}`, runs "
                     + ", ".join(f"`{x['eval']}`" for x in r["runs"].get(arm, [])))
    lines += ["", f"Wall time: {json.dumps(r['seconds'])} s.", ""]
    return "\n".join(lines)


def _yield_lines(r: dict[str, Any]) -> list[str]:
    y = r["yield"]
    if y is None:
        return ["## Yield", "", "No LLM arm was requested: the rephrase stage did not run.", ""]
    pp = y["per_person"]
    return ["## Yield of the rephrase stage", "",
            f"Engine `{y['engine']}` ({y['model']}): {y['asked']} variants asked, {y['accepted']} passed "
            f"verification ({100 * (y['acceptance_rate'] or 0):.1f}%), {y['kept']} kept "
            f"(dropped: {y['dropped']}); per person min {pp['min']}, mean {pp['mean']:.2f}, max {pp['max']}; "
            f"{pp['with_none']} people with none, {pp['with_all']} with all. Rejections by reason: "
            f"{json.dumps(y['rejected_by_reason'])}. Stage time {y['seconds']} s.", "",
            f"Audit against the world's ground truth: {y['facts_verbatim']['kept_with_all']} of {y['kept']} kept "
            f"rephrasings hold all {y['facts_verbatim']['of']} attribute values verbatim (mean "
            + (f"{y['facts_verbatim']['mean']:.2f}" if y['facts_verbatim']['mean'] is not None else "n/a")
            + "; a reworded date counts as missing, a changed employer is a verifier false accept).", ""]


def _fill_lines(r: dict[str, Any]) -> list[str]:
    lines = ["## Gap filling (documents by provenance)", "",
             "Rule: a person's slots are its verified rephrasings in variant order; slots beyond them cycle over "
             "[raw passage, its verified rephrasings] (so a person with none trains on its raw passage). Epochs "
             "follow from the equal budget.", ""]
    for arm, a in r["arms"].items():
        lines.append(f"- {arm}: {a['docs']} documents ({a['docs_per_person']} per person): "
                     + ", ".join(f"{k} {v}" for k, v in sorted(a["fill"].items())))
    return lines + [""]


def _verdict_lines(r: dict[str, Any]) -> list[str]:
    lines = ["## Verdict", "", "A step is beyond the spread when its gap exceeds the larger seed std of its two arms.",
             ""]
    for m, v in r["verdict"].items():
        steps = "; ".join(f"{g['from']} -> {g['to']}: {100 * g['delta']:+.1f} pts (spread {100 * g['spread']:.1f})"
                          for g in v["llm_steps"]) or "no LLM arms"
        c = v["control"]
        ctrl = (f"control_10x1 vs raw_x10: {100 * c['delta']:+.1f} pts (spread {100 * c['spread']:.1f})"
                if c else "no control arm")
        lines.append(f"- {m}: ordering raw < 1 reph x10 < 10 reph x1 "
                     f"{'holds' if v['llm_ordering_holds'] else 'does NOT hold'} ({steps}); {ctrl}.")
    return lines + ["", "Diagnosis:", ""] + [f"- {d}" for d in r["diagnosis"]]


def plot_table(tab: dict[str, dict[str, dict[str, float]]], path: Path) -> Path:
    """Bars of QA exact and ranked accuracy per arm with seed spread; PNG via matplotlib, else an SVG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return write_svg(tab, path.with_suffix(".svg"))
    arms = list(tab)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, m, title in ((axes[0], "qa_exact", "QA exact match (%)"), (axes[1], "qa_ranked", "QA ranked (%)")):
        means = [100 * tab[a][m]["mean"] for a in arms]
        errs = [100 * tab[a][m]["std"] for a in arms]
        colors = ["#888" if a.startswith("control") else "#2a6fdb" for a in arms]
        ax.bar(range(len(arms)), means, yerr=errs, color=colors, capsize=4)
        ax.set_xticks(range(len(arms)), arms, rotation=20)
        ax.set_title(title)
    fig.suptitle("Rephrasing vs repetition at equal token budget (grey: template control)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_svg(tab: dict[str, dict[str, dict[str, float]]], path: Path) -> Path:
    """The QA exact bars as a plain SVG (no plotting library)."""
    arms, w, h, top = list(tab), 120, 260, 220
    peak = max([tab[a]["qa_exact"]["mean"] + tab[a]["qa_exact"]["std"] for a in arms] + [1e-9])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * len(arms) + 40}" height="{h + 40}">',
             '<text x="10" y="16" font-size="13">QA exact match per arm (mean, bar = ± std)</text>']
    for i, a in enumerate(arms):
        s = tab[a]["qa_exact"]
        bar = top * s["mean"] / peak
        x = 30 + i * w
        fill = "#888" if a.startswith("control") else "#2a6fdb"
        parts.append(f'<rect x="{x}" y="{h - bar:.1f}" width="{w - 30}" height="{bar:.1f}" fill="{fill}"/>')
        lo, hi = h - top * (s["mean"] - s["std"]) / peak, h - top * (s["mean"] + s["std"]) / peak
        cx = x + (w - 30) / 2
        parts.append(f'<line x1="{cx}" y1="{lo:.1f}" x2="{cx}" y2="{hi:.1f}" stroke="black"/>')
        parts.append(f'<text x="{x}" y="{h + 16}" font-size="11">{a}</text>')
        parts.append(f'<text x="{x}" y="{h - bar - 4:.1f}" font-size="11">{100 * s["mean"]:.1f}%</text>')
    atomic_write_text(path, "\n".join(parts + ["</svg>"]) + "\n")
    return path
