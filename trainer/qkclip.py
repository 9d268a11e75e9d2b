"""QK-Clip (Kimi K2, Algorithm 1): cap the per-head max attention logit at tau by rescaling W_q / W_k rows.

For every attention layer (see trainer/protocol.py) and head h with S_max[h] > tau, gamma = tau / S_max[h]:
  q_b_proj rows of head h, nope part  *= sqrt(gamma)
  kv_b_proj rows of head h, k_nope part *= sqrt(gamma)
  q_b_proj rows of head h, rope part  *= gamma
The shared k_rope (kv_a_proj_with_mqa) and the value rows stay untouched, so every term of the logit
(q_nope.k_nope and q_rope.k_rope) is scaled by exactly gamma and the same batch now peaks at tau.

Heads with S_max <= tau are untouched bit for bit: rows are selected with `torch.where(clip, scaled, w)`, which
returns the original bits (a multiply by 1.0 would also be exact for finite fp32/bf16, but `where` makes the
guarantee independent of dtype and of NaN/-0 corner cases). Everything runs on the device with no host sync
and no data-dependent Python control flow: the stats stay device tensors until the caller logs them. Under
torch.distributed, S_max of ALL layers is all-reduced with MAX in one collective per step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from trainer.protocol import q_projection


@dataclass
class ClipStats:
    """Per-step QK-Clip statistics, as device tensors (no host sync until `to_host`).

    max_logits: [L, H] max logit per layer and head seen during the step (after the all-reduce), before clipping;
      layers with fewer heads are padded with -inf. clipped: [L, H] bool, heads rescaled (or that would have
    been, with qk_clip off). gamma: [L, H] factor applied to the logit (1 where untouched).
    """

    layer_names: list[str]
    max_logits: torch.Tensor
    clipped: torch.Tensor
    gamma: torch.Tensor
    tau: float
    applied: bool

    @property
    def heads_clipped(self) -> torch.Tensor:
        """[L] number of heads above tau per layer."""
        return self.clipped.sum(dim=1)

    @property
    def layer_max_logit(self) -> torch.Tensor:
        """[L] max logit per layer."""
        return self.max_logits.amax(dim=1)

    def to_host(self) -> dict[str, float]:
        """Flat scalars for a logger (one device-to-host copy): global max logit, clipped heads, per-layer values."""
        ml, cl = self.max_logits.detach().cpu(), self.clipped.cpu()
        seen = int(torch.isfinite(ml).sum())  # heads that saw a forward (padding and unused heads are -inf)
        total = int(cl.sum())
        out = {"qk_clip/max_logit": float(ml.max()) if ml.numel() else float("-inf"),
               "qk_clip/heads_clipped": float(total),
               "qk_clip/frac_heads_clipped": total / max(seen, 1)}
        for name, m, c in zip(self.layer_names, ml.amax(dim=1).tolist(), cl.sum(dim=1).tolist()):
            out[f"qk_clip/max_logit/{name}"] = m
            out[f"qk_clip/heads_clipped/{name}"] = float(c)
        return out


def gather_max_logits(layers, process_group=None) -> torch.Tensor:
    """[L, H] max logits of all layers, all-reduced with MAX across ranks in ONE collective.

    Layers may have different head counts; shorter rows are padded with -inf (never clipped).
    """
    rows = [layer.max_logits.detach().float() for _, layer in layers]
    width = max(r.numel() for r in rows)
    stacked = torch.full((len(rows), width), float("-inf"), device=rows[0].device)
    for i, r in enumerate(rows):
        stacked[i, : r.numel()] = r
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(stacked, op=dist.ReduceOp.MAX, group=process_group)
    return stacked


def clip_factors(max_logits: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(clip mask, gamma) from max logits: gamma = tau / S where S > tau, else exactly 1.

    NaN or -inf (no forward seen) never clip: the comparison is False for both.
    """
    clip = max_logits > tau
    # clamp keeps the division finite for unclipped heads; their gamma is replaced by 1 anyway.
    gamma = torch.where(clip, tau / max_logits.clamp(min=tau), torch.ones_like(max_logits))
    return clip, gamma


def _scale_rows_(weight: torch.Tensor, n_heads: int, split: tuple[int, int], clip: torch.Tensor,
                 first: torch.Tensor, second: torch.Tensor) -> None:
    """In place: head h's block [first part | second part] *= (first[h], second[h]) where clip[h].

    `weight` is [n_heads * (d1 + d2), in]; the head-major view is (n_heads, d1 + d2, in).
    """
    d1, d2 = split
    # per-row factors of the head-major layout: row h*(d1+d2)+j belongs to head h (never view(d, H, in))
    factor = torch.cat([first[:, None].expand(n_heads, d1), second[:, None].expand(n_heads, d2)], dim=1)
    factor, rows_clip = factor.reshape(-1, 1), clip[:, None].expand(n_heads, d1 + d2).reshape(-1, 1)  # (R, 1)
    if hasattr(weight, "device_mesh"):  # FSDP2 DTensor: rows stay sharded, the per-row factors are replicated
        from torch.distributed.tensor import DTensor, Replicate
        rep = [Replicate()] * weight.device_mesh.ndim
        factor, rows_clip = (DTensor.from_local(t, weight.device_mesh, rep, run_check=False)
                             for t in (factor, rows_clip))
    scaled = (weight.float() * factor).to(weight.dtype)
    weight.copy_(torch.where(rows_clip, scaled, weight))


@torch.no_grad()
def apply_qk_clip_(layer, clip: torch.Tensor, gamma: torch.Tensor) -> None:
    """Rescale one layer's q and k_nope rows for the heads in `clip` (1-D over its heads)."""
    h, nope, rope, vdim = layer.n_heads, layer.qk_nope_head_dim, layer.qk_rope_head_dim, layer.v_head_dim
    clip, gamma = clip[:h], gamma[:h].float()
    root = gamma.sqrt()
    ones = torch.ones_like(gamma)
    _scale_rows_(q_projection(layer).weight, h, (nope, rope), clip, root, gamma)   # q^C by sqrt, q^R by gamma
    _scale_rows_(layer.kv_b_proj.weight, h, (nope, vdim), clip, root, ones)        # k^C by sqrt, v untouched


@torch.no_grad()
def qk_clip_(layers, tau: float = 100.0, apply: bool = True, process_group=None) -> ClipStats | None:
    """Clip every layer in `layers` ((name, module) pairs), reset their max_logits to -inf, return the stats.

    With apply=False (vanilla Muon) the weights are left alone but the stats are still recorded and reset,
    so max-logit growth can be compared between Muon and MuonClip.
    """
    if not layers:
        return None
    if not tau > 0:
        raise ValueError(f"qk_clip tau must be > 0, got {tau}")
    max_logits = gather_max_logits(layers, process_group)
    clip, gamma = clip_factors(max_logits, float(tau))
    if apply:
        for i, (_, layer) in enumerate(layers):
            apply_qk_clip_(layer, clip[i], gamma[i])
    for _, layer in layers:
        layer.max_logits.fill_(float("-inf"))
    return ClipStats([n for n, _ in layers], max_logits, clip, gamma, float(tau), apply)
