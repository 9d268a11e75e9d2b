"""Data parallelism for the training loop: the process group and FSDP2 (`fully_shard`) sharding.

The loop (trainer/loop.py) is the same in every case; this module only joins the process group and shards the
model (the launchers that start the workers, torchrun or Ray Train, are in trainer/launch.py):
- `context(device)`: joins the process group torchrun or Ray created (env RANK/WORLD_SIZE/LOCAL_RANK), nccl on
  CUDA and gloo on CPU, and picks the device. A single process stays undistributed.
- `shard(model)`: FSDP2 per transformer block (MTP modules included), then the root (parameters become DTensors
  sharded on dim 0; buffers such as router biases and max_logits stay replicated). Gradients are
  reduce-scattered as averages. On CUDA the default mixed-precision policy (`mixed_precision`) all-gathers
  bf16 parameters for compute and reduce-scatters fp32 gradients onto fp32 master shards. The loop builds the
  model on the meta device, shards it, materialises each rank's shard and initialises only that (seeded per
  dim-0 block: the same weights as an unsharded init), so no rank ever holds the full model; MuonClip splits
  Newton-Schulz over the ranks (trainer/muonclip.py) and checkpoints are sharded DCP directories that reload at
  any world size (trainer/checkpoint.py).
  Cross-rank agreement of the things FSDP does not shard: QK-Clip max logits are all-reduced with MAX by the
  optimizer (trainer/qkclip.py), MoE expert loads with SUM by the router-bias hook (trainer/balance.py), so
  every rank applies identical clips and bias updates.
- `weight_checksum(model)`: every rank writes `ranks/rank-{r}.json` (its losses and this checksum of the full
  weights) so agreement between ranks can be checked.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _pick_device(pref: str, local_rank: int) -> torch.device:
    if pref == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but torch sees no CUDA device")
    if pref == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def context(device: str = "auto") -> DistContext:
    """Join the process group described by the environment (or the one Ray Train made); pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev)
    return DistContext(0, 1, 0, dev)


def mixed_precision(mode: str, device: torch.device):
    """FSDP2 MixedPrecisionPolicy for TrainSpec.fsdp_mixed_precision, or None (fp32 all-gathers and reductions).

    bf16: each unit's parameters are all-gathered in bf16 and forward/backward run on bf16 copies (half the
    all-gather bytes), gradients are cast to fp32 before the reduce-scatter, so the sharded parameters, their
    gradients and the optimizer (Muon's momentum and update) stay fp32 master weights. Forward inputs are not
    cast (cast_forward_inputs=False): the blocks' activations are bf16 already (bf16 embeddings) and the shared
    AttnMask must reach every layer as the same object (its masks are built once per forward).
    """
    if mode not in ("auto", "bf16", "off"):
        raise ValueError(f"fsdp_mixed_precision must be 'auto', 'bf16' or 'off', got {mode!r}")
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    from torch.distributed.fsdp import MixedPrecisionPolicy
    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, cast_forward_inputs=False)


def shard(model: torch.nn.Module, mp_policy=None) -> torch.nn.Module:
    """FSDP2: each block is one all-gather unit, the root holds embeddings, final norm and head; `mp_policy`
    (see mixed_precision) applies to every unit."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    mp = mp_policy or MixedPrecisionPolicy()  # the default policy: no casts
    for layer in model.blocks():
        fully_shard(layer, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    return model


def weight_checksum(model: torch.nn.Module) -> float:
    """Sum of every full (unsharded) parameter in float64: equal on all ranks iff they hold the same model."""
    total = 0.0
    for p in model.parameters():
        full = p.full_tensor() if hasattr(p, "full_tensor") else p
        total += float(full.detach().double().sum())
    return total
