"""`k2forge train evidence` as a pipeline (pipeline/definitions/muonclip-evidence.yaml): K2 Figure 2 in miniature.

The corpus, the config, the verdict rules and the reasoning behind them are trainer/evidence.py's; this module
holds the two registered steps (the sample corpus, the verdict) and `run_evidence`, which runs the definition
fresh into OUT and returns what evidence.json holds: {config, seconds, verdict, plot, series}. The click command
is attached to the `train` group by api/cli.py (trainer sits below the pipeline layer).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click
from pydantic import Field

from corpus.fields import PathIn, PathOut
from corpus.shards import atomic_write_json
from corpus.spec import Spec
from pipeline.registry import StepContext
from pipeline.runner import run_pipeline, state_path

DEFINITION = Path(__file__).resolve().parent / "definitions" / "muonclip-evidence.yaml"


class SampleCorpusSpec(Spec):
    output: PathOut = Field(description="folder for the tokenizer, document and token shards, mixture.json")
    seq_len: int = Field(ge=1)
    total_tokens: int = Field(ge=1)


class VerdictSpec(Spec):
    muon: PathIn = Field(description="the vanilla Muon run")
    muonclip: PathIn = Field(description="the MuonClip run")
    config: dict[str, Any] = Field(description="the runs' config (qk_clip_tau is the verdict's tau)")
    output: PathOut = Field(description="evidence.json")
    plot: PathOut = Field(description="the max-logit comparison plot (PNG)")


def sample_corpus(spec: SampleCorpusSpec, ctx: StepContext) -> dict[str, Any]:
    from trainer.evidence import build_sample_corpus
    manifest = build_sample_corpus(spec.output, seq_len=spec.seq_len, total_tokens=spec.total_tokens)
    return {"manifest": str(manifest), "outputs": [str(manifest)]}


def muonclip_verdict(spec: VerdictSpec, ctx: StepContext) -> dict[str, Any]:
    """evidence.json and the plot from the two runs' metrics."""
    from trainer.evidence import verdict
    from trainer.metrics import read_metrics
    from trainer.plots import plot_comparison
    series = {name: read_metrics(Path(d) / "metrics.jsonl", "train")
              for name, d in (("muon", spec.muon), ("muonclip", spec.muonclip))}
    tau = float(spec.config["qk_clip_tau"])
    plot = plot_comparison({"Muon (no QK-Clip)": series["muon"], "MuonClip": series["muonclip"]}, tau, spec.plot)
    result = {"config": spec.config,
              "seconds": {name: round(ctx.records[name]["seconds"], 1) for name in series},
              "verdict": verdict(series["muon"], series["muonclip"], tau), "plot": str(plot),
              "series": {k: [{"step": r["step"], "loss": r["loss"], "max_logit_max": r["max_logit_max"],
                              "heads_clipped_total": r["heads_clipped_total"]} for r in rows]
                         for k, rows in series.items()}}
    atomic_write_json(spec.output, result)
    return {**result, "outputs": [spec.output, str(plot)]}


def run_evidence(out: str | Path, steps: int | None = None, config: dict[str, Any] | None = None) -> dict:
    """Build the sample corpus, train vanilla Muon and MuonClip, write evidence.json and the comparison plot.
    Always a fresh run (OUT is cleared first, if a pipeline or an earlier evidence run made it), never a resume."""
    from trainer.evidence import EVIDENCE_CONFIG
    cfg = {**EVIDENCE_CONFIG, **(config or {})}
    if steps is not None:
        cfg["steps"] = steps
    budget = cfg["steps"] * cfg["micro_batch_size"] * cfg["grad_accum"] * cfg["seq_len"]  # exactly the run's
    out = Path(out)
    if (out / "evidence.json").exists() and not state_path(out).exists():
        shutil.rmtree(out)          # an evidence folder from before this was a pipeline
    res = run_pipeline(DEFINITION, out, params={"config": cfg, "budget": budget}, fresh=True)
    return {k: v for k, v in res["steps"]["verdict"]["summary"].items() if k != "outputs"}


@click.command("evidence")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output directory")
@click.option("--steps", type=click.IntRange(1), help="steps per run (default: the recorded config's)")
def evidence_cmd(out, steps) -> None:
    """K2 Figure 2 in miniature: vanilla Muon vs MuonClip max logits on CPU (plot + JSON in OUT)."""
    from pipeline.runner import PipelineError, StepFailed
    try:
        res = run_evidence(out, steps=steps)
    except (PipelineError, StepFailed) as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps(res["verdict"], indent=2))
