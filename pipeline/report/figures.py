"""The report's PNG figures: fidelity score distributions and the token mix are drawn here; the training
plots (loss, max attention logit per layer against tau, expert load) are the trainer's own, copied beside them.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from corpus.shards import atomic_path
from trainer.plots import pyplot, save_png

TRAIN_PLOTS = ("loss", "max_logits", "expert_load")


def fidelity_figure(fid: dict[str, Any], path: Path) -> Path | None:
    """One panel per score name: histograms of accepted (worst chunk) vs rejected (failing chunk) values."""
    names = sorted({k for job in fid.values() for part in ("accepted_scores", "rejected_scores")
                    for k in job[part]})
    if not names:
        return None
    plt = pyplot()
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for part, label, color in (("accepted_scores", "accepted", "tab:green"),
                                   ("rejected_scores", "rejected", "tab:red")):
            vals = [v for job in fid.values() for v in job[part].get(name, [])]
            if vals:
                ax.hist(vals, bins=15, alpha=0.6, label=f"{label} ({len(vals)})", color=color)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("fidelity scores (rephrase + mathnotes)")
    fig.tight_layout()
    out = save_png(fig, path, dpi=100)
    plt.close(fig)
    return out


def token_mix_figure(mix: list[dict[str, Any]], path: Path) -> Path:
    """Allotted tokens per domain, stacked raw vs synthetic."""
    plt = pyplot()
    domains = sorted({s["domain"] for s in mix})
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bottom = [0.0] * len(domains)
    for kind, color in (("raw", "tab:gray"), ("synthetic", "tab:blue"), ("mixed", "tab:purple")):
        vals = [sum(s["allotted_tokens"] for s in mix if s["domain"] == d and s["kind"] == kind) for d in domains]
        if any(vals):
            ax.bar(domains, vals, bottom=bottom, label=kind, color=color)
            bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set(ylabel="allotted tokens", title="token mix: raw vs synthetic per domain")
    ax.legend()
    out = save_png(fig, path, dpi=100)
    plt.close(fig)
    return out


def draw_figures(facts: dict[str, Any], train_dir: Path, out_dir: Path) -> dict[str, Path]:
    """name -> PNG path in out_dir for every figure that could be drawn."""
    images: dict[str, Path] = {}
    fid = fidelity_figure(facts["fidelity"], out_dir / "fidelity.png")
    if fid is not None:
        images["fidelity"] = fid
    images["token_mix"] = token_mix_figure(facts["token_mix"], out_dir / "token_mix.png")
    for name in TRAIN_PLOTS:
        src = train_dir / f"{name}.png"
        if src.exists():
            with atomic_path(out_dir / src.name) as tmp:
                shutil.copyfile(src, tmp)
            images[name] = out_dir / src.name
    return images
