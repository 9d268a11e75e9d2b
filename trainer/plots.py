"""PNG plots of a run from its metrics.jsonl (matplotlib, Agg backend: no display needed).

loss.png        train loss per step, eval loss as markers
max_logits.png  max attention logit per layer per step, with the QK-Clip tau as a dashed line
expert_load.png max/mean expert load per MoE layer per step (1 = balanced)
"""
from __future__ import annotations

import os
from pathlib import Path

from corpus.shards import atomic_path
from trainer.metrics import read_metrics


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (imported only when a plot is drawn)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path: Path, dpi: int = 110) -> Path:
    """Write a figure as PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path


def plot_run(metrics_path: str | os.PathLike, out_dir: str | os.PathLike, tau: float | None) -> list[Path]:
    """Write the three plots next to the checkpoints; return their paths (none when there is no train step)."""
    plt = pyplot()
    train = read_metrics(metrics_path, "train")
    evals = read_metrics(metrics_path, "eval")
    if not train:
        return []
    out = Path(out_dir)
    steps = [r["step"] for r in train]
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [r["loss"] for r in train], label="train")
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="eval (held out)")
    ax.set(xlabel="step", ylabel="loss", title="loss")
    ax.legend()
    paths.append(save_png(fig, out / "loss.png"))
    plt.close(fig)

    paths.append(_layer_plot(plt, steps, [r["max_logit"] for r in train], out / "max_logits.png",
                             "max attention logit", "layer", tau))
    moe = [r.get("expert_imbalance") or [] for r in train]
    if any(moe):
        paths.append(_layer_plot(plt, steps, moe, out / "expert_load.png", "expert load max/mean", "MoE layer",
                                 None))
    return paths


def _layer_plot(plt, steps, per_step, path: Path, title: str, what: str, tau: float | None) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    n = max((len(v) for v in per_step), default=0)
    for i in range(n):
        ax.plot(steps, [v[i] if i < len(v) else float("nan") for v in per_step], label=f"{what} {i}")
    if tau is not None:
        ax.axhline(tau, color="k", linestyle="--", label=f"tau = {tau:g}")
    ax.set(xlabel="step", ylabel=title, title=title)
    ax.legend(fontsize=7)
    out = save_png(fig, path)
    plt.close(fig)
    return out


def plot_comparison(runs: dict[str, list[dict]], tau: float, path: str | os.PathLike) -> Path:
    """K2 Figure 2 style: max logit over steps for several runs (e.g. Muon vs MuonClip) plus their losses."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in runs.items():
        steps = [r["step"] for r in rows]
        a1.plot(steps, [r["max_logit_max"] for r in rows], label=name)
        a2.plot(steps, [r["loss"] for r in rows], label=name)
    a1.axhline(tau, color="k", linestyle="--", label=f"tau = {tau:g}")
    a1.set(xlabel="step", ylabel="max attention logit (all layers)", title="max logits")
    a2.set(xlabel="step", ylabel="train loss", title="loss")
    a1.legend()
    a2.legend()
    out = save_png(fig, Path(path))
    plt.close(fig)
    return out
