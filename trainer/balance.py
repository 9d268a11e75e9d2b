"""Aux-loss-free load balancing (DeepSeek-V3 §2.1.2) as an optimizer step post-hook.

Every training forward adds each MoE layer's per-expert token counts to `MoE.expert_load` (trainer/moe.py).
After each optimizer step the loads are summed over the data-parallel group (one all-reduce for all layers, so
every rank applies the same update) and each router bias moves by gamma towards balance
(`MoE.apply_bias_update`: b -= gamma for overloaded experts, += gamma for underloaded ones), which resets the
loads. The model holds the per-layer arithmetic; this module holds the cross-rank step and the hook (torchtitan
registers the same update with `optimizer.register_step_post_hook`), so a model forward never communicates.

    balancer = RouterBalancing.attach(optimizer, model)   # after every optimizer.step(): update_router_biases
    balancer.last_loads                                    # (L_moe, E) summed loads of the last step, or None
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from trainer.model import K2ForCausalLM


@torch.no_grad()
def update_router_biases(model: K2ForCausalLM, gamma: float | None = None) -> torch.Tensor | None:
    """One balancing step; returns the (L_moe, E) loads used (summed over ranks), then resets them. None without
    MoE layers. gamma defaults to the model config's bias_update_speed."""
    layers = model.moe_layers()
    if not layers:
        return None
    gamma = model.config.bias_update_speed if gamma is None else gamma
    loads = torch.stack([m.expert_load for m in layers])  # (L_moe, E)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(loads, op=dist.ReduceOp.SUM)
    for m, load in zip(layers, loads):
        m.apply_bias_update(load, gamma)
    return loads


class RouterBalancing:
    """`update_router_biases(model)` after every step of an optimizer; keeps the loads for metrics."""

    def __init__(self, model: K2ForCausalLM, gamma: float | None = None):
        self.model, self.gamma = model, gamma
        self.last_loads: torch.Tensor | None = None
        self.handle = None

    @classmethod
    def attach(cls, optimizer: torch.optim.Optimizer, model: K2ForCausalLM,
               gamma: float | None = None) -> "RouterBalancing":
        balancer = cls(model, gamma)
        balancer.handle = optimizer.register_step_post_hook(balancer)
        return balancer

    def __call__(self, optimizer, args, kwargs) -> None:  # the post-hook signature of torch.optim.Optimizer
        self.last_loads = update_router_biases(self.model, self.gamma)
