"""Checkpoints of a training run: everything needed to continue bit for bit, written atomically, last N kept.

Layout: `{run}/checkpoints/step-{step:08d}/` with
  model.pt    full (unsharded) model state dict: weights and persistent buffers (router biases included)
  optim.pt    MuonClip state dict (momentum buffers, AdamW moments and step counts, param groups)
  rng.pt      torch CPU (and CUDA) RNG states
  meta.json   {"format", "step", "model_config", "preset", "sampler" (MixtureData state), "tokens_seen", ...}
A checkpoint directory is built under a temp name and renamed into place, so it either exists complete or not
at all; `latest` only considers directories with a meta.json. Under FSDP2 every rank takes part in gathering the
full state dicts (collectives) and rank 0 writes them; on load every rank reads the files.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

CKPT_FORMAT = "k2forge-train-ckpt/1"
_PREFIX = "step-"


class CheckpointError(ValueError):
    """A checkpoint cannot be used for this run (other config, damaged files)."""


def ckpt_root(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = ckpt_root(run_dir)
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith(_PREFIX) and (p / "meta.json").is_file()]
    return sorted(done, key=lambda p: int(p.name[len(_PREFIX):]))


def latest(run_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Unsharded model and optimizer state dicts on CPU (a collective under FSDP2: call on every rank)."""
    if not _distributed():
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=opts), get_optimizer_state_dict(model, optimizer, options=opts)


def save(run_dir: str | os.PathLike, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         meta: dict[str, Any], keep_last: int, rank: int = 0) -> Path | None:
    """Write checkpoint `step` (rank 0 writes; all ranks must call), then drop all but the last `keep_last`."""
    model_sd, optim_sd = full_state(model, optimizer)
    final = ckpt_root(run_dir) / f"{_PREFIX}{step:08d}"
    if rank != 0:
        return final
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        torch.save(model_sd, tmp / "model.pt")
        torch.save(optim_sd, tmp / "optim.pt")
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, tmp / "rng.pt")
        (tmp / "meta.json").write_text(json.dumps({"format": CKPT_FORMAT, "step": step, **meta}, indent=1) + "\n")
        if final.exists():  # a rerun of the same step: replace it, never leave a mix of both
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable meta.json ({e})") from None
    if meta.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r} is not a k2forge training checkpoint")
    return meta


def check_compatible(path: str | os.PathLike, meta: dict[str, Any], model_config: dict[str, Any],
                     preset: str) -> None:
    """Raise CheckpointError naming the fields when the checkpoint was trained with another model shape."""
    from trainer.config import ModelConfig
    # fields added since the checkpoint was written take their defaults (an older run resumes unchanged)
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    saved = {**defaults, **(meta.get("model_config") or {})}
    model_config = {**defaults, **model_config}
    diff = sorted(k for k in set(saved) | set(model_config) if saved.get(k) != model_config.get(k))
    if diff:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs run {model_config.get(k)!r}" for k in diff[:6])
        raise CheckpointError(f"{path}: checkpoint from another model config (preset {meta.get('preset')!r}, "
                              f"this run {preset!r}); differs in {detail}")


def load(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict:
    """Restore model (and optimizer, RNG) from `path` in place; return its meta. Call on every rank."""
    path = Path(path)
    meta = read_meta(path)
    try:
        model_sd = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
        optim_sd = torch.load(path / "optim.pt", map_location="cpu", weights_only=True) if optimizer else None
        rng = torch.load(path / "rng.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as e:
        raise CheckpointError(f"{path}: damaged checkpoint file ({e})") from None
    if _distributed():
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                             set_optimizer_state_dict)
        opts = StateDictOptions(full_state_dict=True)
        set_model_state_dict(model, model_sd, options=opts)
        if optimizer is not None:
            set_optimizer_state_dict(model, optimizer, optim_sd, options=opts)
    else:
        model.load_state_dict(model_sd)
        if optimizer is not None:
            optimizer.load_state_dict(optim_sd)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return meta


def load_model(path: str | os.PathLike, device: str = "cpu"):
    """(model, meta) from a checkpoint alone, for eval and export."""
    from trainer.config import ModelConfig
    from trainer.model import K2ForCausalLM

    meta = read_meta(path)
    model = K2ForCausalLM(ModelConfig.from_dict(meta["model_config"]), init_weights=False)
    sd = torch.load(Path(path) / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(sd)
    return model.to(device), meta
