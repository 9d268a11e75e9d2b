"""`k2forge train ...`: run (YAML spec + flags), eval, export-hf, params, bench; `evidence` (a pipeline, a layer
up) is added to this group by api/cli.py.

`run` is built from TrainSpec by corpus.clispec, so every spec field is a flag and `--config FILE` (alias of
`--spec`) reads the YAML; flags override the file. The commands import the modules that need torch (everything but the spec and the config) when they run, so
`k2forge --help` stays fast.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from corpus.clispec import spec_command
from trainer.config import preset as make_preset
from trainer.spec import TrainSpec


@click.group()
def train() -> None:
    """Pretrain the Kimi-K2-style MoE on a mixture manifest, evaluate, export to Hugging Face."""


def _run(spec: TrainSpec) -> dict:
    from trainer.launch import run_train
    from trainer.loop import TrainingError
    try:
        return run_train(spec)
    except TrainingError as e:  # NaN/Inf: one clear line naming the step, exit 1, no traceback
        raise click.ClickException(str(e)) from None


def _summarize(res: dict) -> str:
    keep = {k: res.get(k) for k in ("step", "steps", "finished", "resumed_from", "final_loss", "eval_loss",
                                    "tokens_seen", "world_size", "device", "checkpoint")}
    return json.dumps(keep, indent=2)


run = spec_command("run", TrainSpec, _run, help="Train (or resume) a run. Executor kinds: local (this process; "
                   "under torchrun: FSDP2), torchrun (spawn --executor-workers local processes), ray (Ray Train).",
                   summarize=_summarize)
run.params[0].opts.append("--config")  # `--config FILE` reads the same YAML spec as `--spec FILE`
next(p for p in run.params if p.name == "executor__kind").opts.append("--executor")  # `--executor ray`
train.add_command(run)


@train.command("eval")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.option("--manifest", help="mixture manifest; default: the one the checkpoint was trained on")
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(1))
@click.option("--batches", default=8, show_default=True, type=click.IntRange(1), help="held-out batches")
@click.option("--seq-len", type=click.IntRange(2), help="default: the training seq_len")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]))
def eval_cmd(checkpoint, manifest, batch_size, batches, seq_len, device) -> None:
    """Held-out loss and perplexity of CHECKPOINT (a checkpoints/step-* directory) on the manifest's eval split."""
    from trainer.checkpoint import read_meta
    from trainer.loop import evaluate_checkpoint
    manifest = manifest or read_meta(checkpoint).get("manifest")
    if not manifest:
        raise click.UsageError("the checkpoint names no manifest; pass --manifest")
    res = evaluate_checkpoint(checkpoint, manifest, batch_size, batches, seq_len, device)
    click.echo(json.dumps(res, indent=2))


@train.command("export-hf")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(exists=True, file_okay=False),
              help="directory with tokenizer.json; default: the tokenizer recorded in the training manifest")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "bfloat16"]))
@click.option("--overwrite", is_flag=True, help="replace OUT if it exists")
def export_hf_cmd(checkpoint, out, tokenizer_dir, dtype, overwrite) -> None:
    """Write CHECKPOINT as a transformers `deepseek_v3` model directory OUT (config, safetensors, tokenizer),
    one safetensors file per block read straight from the sharded checkpoint."""
    import torch

    from trainer.checkpoint import read_meta
    from trainer.export import export_checkpoint
    meta = read_meta(checkpoint)
    if tokenizer_dir is None:
        tok_path = (meta.get("tokenizer") or {}).get("path")
        if tok_path:
            p = Path(tok_path)
            tokenizer_dir = str(p.parent if p.is_file() else p)
    path = export_checkpoint(checkpoint, out, tokenizer_dir=tokenizer_dir, dtype=getattr(torch, dtype),
                             overwrite=overwrite, tokenizer_info=meta.get("tokenizer"))
    click.echo(json.dumps({"export": str(path), "step": meta["step"], "tokenizer": tokenizer_dir}, indent=2))


@train.command("params")
@click.option("--preset", default="tiny", show_default=True, help="model preset")
@click.option("--model", "overrides", default="{}", help="JSON of ModelConfig overrides")
def params_cmd(preset, overrides) -> None:
    """Total and per-token activated parameter counts of a preset (counted on the meta device)."""
    from trainer.params import count_params
    cfg = make_preset(preset, **json.loads(overrides))
    c = count_params(cfg)
    click.echo(json.dumps({"preset": preset, "total": c.total, "activated": c.activated,
                           "total_h": _human(c.total), "activated_h": _human(c.activated), "by_part": c.by_part},
                          indent=2))


def _human(n: int) -> str:
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.3f}{unit}"
    return str(n)


@train.command("bench", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_cmd(args) -> None:
    """Throughput, MFU and optimizer / QK-Clip share of step time (options: `k2forge train bench -- --help`)."""
    from trainer.bench import main
    main(list(args))
