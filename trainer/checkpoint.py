"""Checkpoints of a training run: everything needed to continue bit for bit, written atomically, last N kept.

Layout: `{run}/checkpoints/step-{step:08d}/` with
  state/      torch.distributed.checkpoint (DCP) of {"model": weights and persistent buffers (router biases
              included), "optim": MuonClip state (momentum buffers, AdamW moments and step counts)}, keyed by
              parameter names: every rank writes only its own shards (no gather to rank 0), and a load
              reshards to whatever world size the resuming run has (1, 2, 4, ... ranks; tests/trainer/
              test_sharded.py checks 2 -> 4 -> 1 against one process)
  rng.pt      torch CPU (and CUDA) RNG states (equal on every rank: all seed alike)
  meta.json   {"format", "step", "model_config", "preset", "sampler" (MixtureData state), "tokens_seen", ...}
A checkpoint directory is built under a temp name and renamed into place by rank 0 after every rank has
written, so it either exists complete or not at all; `latest` only considers directories with a meta.json.
Checkpoints of the earlier format (model.pt / optim.pt full state dicts) still load.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from trainer.config import ModelConfig
from trainer.model import K2ForCausalLM

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


def _dcp(fn, state: dict, path: Path) -> None:
    """dcp.save / dcp.load of `state` at `path`; in one process when torch.distributed is not initialised
    (DCP then warns on every call that it assumes one process: it is one, so that warning is dropped)."""
    with warnings.catch_warnings():
        if not _distributed():
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        fn(state, checkpoint_id=str(path), no_dist=not _distributed())


def _barrier() -> None:
    if _distributed():
        torch.distributed.barrier()


def _write_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Every rank writes its shards of model + optimizer state to the DCP directory `path` (a collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict
    model_sd, optim_sd = get_state_dict(model, optimizer)
    _dcp(dcp.save, {"model": model_sd, "optim": optim_sd}, path)


def save(run_dir: str | os.PathLike, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         meta: dict[str, Any], keep_last: int, rank: int = 0) -> Path | None:
    """Write checkpoint `step` (all ranks must call; each writes its shards), then keep the last `keep_last`."""
    final = ckpt_root(run_dir) / f"{_PREFIX}{step:08d}"
    tmp = final.with_name(f".{final.name}.tmp")  # one name on every rank: they write into the same dir
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a crashed save
        tmp.mkdir(parents=True)
    _barrier()
    try:
        _write_state(model, optimizer, tmp / "state")
        _barrier()
        if rank == 0:
            rng = {"cpu": torch.get_rng_state()}
            if torch.cuda.is_available():
                rng["cuda"] = torch.cuda.get_rng_state_all()
            torch.save(rng, tmp / "rng.pt")
            (tmp / "meta.json").write_text(json.dumps({"format": CKPT_FORMAT, "step": step, **meta}, indent=1)
                                           + "\n")
            if final.exists():  # a rerun of the same step: replace it, never leave a mix of both
                shutil.rmtree(final)
            os.replace(tmp, final)
    finally:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
    _barrier()
    if rank == 0:
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
    """Restore model (and optimizer, RNG) from `path` in place, resharded to this run; return its meta.
    Call on every rank."""
    path = Path(path)
    meta = read_meta(path)
    try:
        if (path / "model.pt").exists():
            _load_full(path, model, optimizer)
        else:
            _load_sharded(path, model, optimizer)
        rng = torch.load(path / "rng.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged checkpoint ({e})") from None
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return meta


def _load_sharded(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_model_state_dict, set_state_dict
    if optimizer is None:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict
        state = {"model": get_model_state_dict(model)}
        _dcp(dcp.load, state, path / "state")
        set_model_state_dict(model, state["model"])
        return
    # the target layout is this run's (its world size, its shards): DCP reads the pieces each rank needs
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    _dcp(dcp.load, state, path / "state")
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])


def _load_full(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    """The earlier format: full state dicts in model.pt / optim.pt."""
    model_sd = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    optim_sd = torch.load(path / "optim.pt", map_location="cpu", weights_only=True) if optimizer else None
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


def load_model(path: str | os.PathLike, device: str = "cpu"):
    """(model, meta) from a checkpoint alone, for eval and export (one process; any saving world size)."""
    meta = read_meta(path)
    model = K2ForCausalLM(ModelConfig.from_dict(meta["model_config"]), init_weights=False)
    if (Path(path) / "model.pt").exists():
        _load_full(Path(path), model, None)
    else:
        _load_sharded(Path(path), model, None)
    return model.to(device), meta
