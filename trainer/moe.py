"""DeepSeekMoE feed-forward: sigmoid top-k router with aux-loss-free bias, stacked experts, shared experts.

Routing (DeepSeek-V3 / Kimi K2, SPEC §1):
    s      = sigmoid(x W_gate^T)                      (N, E)   fp32
    choice = s + b                                    b: fp32 buffer `e_score_correction_bias`, never trained
    [n_group > 1: keep the topk_group groups whose sum of top-2 `choice` is largest, mask the rest]
    idx    = top-k(choice)                            (N, k)
    gates  = s[idx] / sum s[idx] * routed_scaling_factor   (unbiased scores)
    y      = shared(x) + sum_k gates_k * expert_{idx_k}(x)   no token dropping

Experts are stacked tensors `gate_up_proj` [E, 2I, H] (gate rows first, then up) and `down_proj` [E, H, I]
(the transformers 5.x in-memory layout). Tokens are sorted by expert so that each expert sees one contiguous
segment: on CUDA one grouped GEMM (`torch.nn.functional.grouped_mm`) covers all segments; on CPU we loop over
the non-empty segments (grouped_mm has no working CPU backward in torch 2.13).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import ModelConfig


RECOMPUTING = [False]  # set while activation checkpointing recomputes a block's forward (trainer/model.py)


@contextlib.contextmanager
def recomputing():
    """Marks an activation-checkpoint recompute: forward side effects that must happen once are skipped."""
    RECOMPUTING[0] = True
    try:
        yield
    finally:
        RECOMPUTING[0] = False


class Fp32Buffers:
    """Mixin: the buffers named in `fp32_buffers` stay float32 through `model.to(bf16)` / `.half()`.

    The routing bias moves in steps of gamma = 0.001, below bf16's resolution near 1; loads are counts; and the
    QK-Clip protocol fixes max_logits to fp32. Device moves still apply.
    """

    fp32_buffers: tuple[str, ...] = ()

    def _apply(self, fn, recurse=True):
        originals = {name: self._buffers[name] for name in self.fp32_buffers}
        super()._apply(fn, recurse)
        for name, orig in originals.items():
            moved = self._buffers[name]
            if moved is not None and moved.dtype != torch.float32:
                # re-derive from the fp32 original so no precision is lost in a round trip
                self._buffers[name] = orig.to(device=moved.device, dtype=torch.float32)
        return self


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)): the dense MLP of the first layers and the shared experts."""

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Router(Fp32Buffers, nn.Module):
    """Sigmoid scores, top-k on biased scores, gates from the unbiased ones."""

    fp32_buffers = ("e_score_correction_bias",)

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.n_experts = config.n_routed_experts
        self.n_group, self.topk_group = config.n_group, config.topk_group
        self.norm_topk_prob = config.norm_topk_prob
        self.routed_scaling_factor = config.routed_scaling_factor
        self.weight = nn.Parameter(torch.empty(self.n_experts, config.hidden_size))
        # A buffer, not a Parameter: no optimizer touches it; the balancing rule (trainer/balance.py) does.
        self.register_buffer("e_score_correction_bias", torch.zeros(self.n_experts, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (N, H) -> scores (N, E) fp32, expert indices (N, k), gates (N, k) fp32."""
        scores = torch.sigmoid(F.linear(x.float(), self.weight.float()))  # (N, E)
        choice = scores.detach() + self.e_score_correction_bias  # selection only: no gradient through it
        if self.n_group > 1:
            choice = self._limit_to_groups(choice)
        idx = torch.topk(choice, self.top_k, dim=-1).indices  # (N, k)
        gates = scores.gather(1, idx)  # (N, k) unbiased
        if self.norm_topk_prob:
            gates = gates / (gates.sum(dim=-1, keepdim=True) + 1e-20)
        return scores, idx, gates * self.routed_scaling_factor

    def _limit_to_groups(self, choice: torch.Tensor) -> torch.Tensor:
        n = choice.shape[0]
        grouped = choice.view(n, self.n_group, -1)  # (N, G, E/G)
        group_score = grouped.topk(2, dim=-1).values.sum(dim=-1)  # (N, G): sum of the top-2 per group
        keep_groups = group_score.topk(self.topk_group, dim=-1).indices  # (N, topk_group)
        keep = torch.zeros_like(group_score, dtype=torch.bool).scatter_(1, keep_groups, True)  # (N, G)
        return grouped.masked_fill(~keep[..., None], float("-inf")).view(n, -1)


def _use_grouped_mm(x: torch.Tensor, gate_up: torch.Tensor) -> bool:
    # The CUDA grouped GEMM wants bf16 operands with 16-byte aligned rows.
    return x.is_cuda and hasattr(F, "grouped_mm") and x.shape[-1] % 8 == 0 and gate_up.shape[1] % 16 == 0


def grouped_expert_mlp(x_sorted: torch.Tensor, counts: torch.Tensor, gate_up: torch.Tensor,
                       down: torch.Tensor) -> torch.Tensor:
    """SwiGLU of each expert over its contiguous segment of tokens.

    x_sorted (M, H) sorted by expert; counts (E,) tokens per expert; gate_up (E, 2I, H); down (E, H, I).
    """
    if _use_grouped_mm(x_sorted, gate_up):
        offs = torch.cumsum(counts, 0).to(torch.int32)  # end offset of each expert's segment
        # grouped_mm computes a[seg_g] @ b[g]; b is (E, K, N), so pass the transposed weights (no copy).
        h = F.grouped_mm(x_sorted.bfloat16(), gate_up.bfloat16().transpose(-2, -1), offs=offs)  # (M, 2I)
        g, u = h.chunk(2, dim=-1)
        y = F.grouped_mm((F.silu(g) * u), down.bfloat16().transpose(-2, -1), offs=offs)  # (M, H)
        return y.to(x_sorted.dtype)
    out = x_sorted.new_empty(x_sorted.shape)
    start = 0
    for e, n in enumerate(counts.tolist()):  # CPU only: one host read of E counts per layer
        if n == 0:
            continue
        seg = x_sorted[start:start + n]  # (n, H)
        g, u = F.linear(seg, gate_up[e]).chunk(2, dim=-1)  # (n, I) each
        out[start:start + n] = F.linear(F.silu(g) * u, down[e])
        start += n
    return out


class MoE(Fp32Buffers, nn.Module):
    """Routed + shared experts. Keeps per-expert token loads (training forwards) for the bias update."""

    fp32_buffers = ("expert_load",)

    def __init__(self, config: ModelConfig):
        super().__init__()
        e, h, i = config.n_routed_experts, config.hidden_size, config.moe_intermediate_size
        self.n_experts, self.top_k = e, config.num_experts_per_tok
        self.seq_aux_alpha = config.seq_aux_alpha
        self.gate = Router(config)
        self.experts = nn.Module()
        self.experts.gate_up_proj = nn.Parameter(torch.empty(e, 2 * i, h))  # [gate rows | up rows]
        self.experts.down_proj = nn.Parameter(torch.empty(e, h, i))
        self.shared_experts = SwiGLU(h, i * config.n_shared_experts) if config.n_shared_experts else None
        # Summed over micro-batches until the bias update (trainer/balance.py); float so it can be all-reduced.
        self.register_buffer("expert_load", torch.zeros(e, dtype=torch.float32), persistent=False)
        self.aux_loss: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, H) -> (B, T, H)."""
        b, t, hdim = x.shape
        flat = x.reshape(-1, hdim)  # (N, H)
        scores, idx, gates = self.gate(flat)  # (N, E), (N, k), (N, k)
        flat_idx = idx.reshape(-1)  # (N*k,) expert of each (token, slot)
        order = torch.argsort(flat_idx, stable=True)  # group (token, slot) pairs by expert
        token_of = order // self.top_k  # (N*k,) source token of each sorted row
        # scatter_add rather than bincount: bincount syncs with the host on CUDA to size its output
        counts = torch.zeros(self.n_experts, dtype=torch.long, device=flat_idx.device).scatter_add_(
            0, flat_idx, torch.ones_like(flat_idx))  # (E,) tokens per expert
        y = grouped_expert_mlp(flat[token_of], counts, self.experts.gate_up_proj, self.experts.down_proj)
        y = y * gates.reshape(-1)[order, None].to(y.dtype)  # (N*k, H) weighted by its gate
        out = torch.zeros_like(flat).index_add_(0, token_of, y.to(flat.dtype))  # (N, H)
        if self.shared_experts is not None:
            out = out + self.shared_experts(flat)
        if self.training and not RECOMPUTING[0]:  # an activation-checkpoint recompute must not count twice
            with torch.no_grad():
                self.expert_load += counts.to(torch.float32)
        self.aux_loss = self._seq_aux_loss(scores.view(b, t, -1), idx.view(b, t, -1)) if self.seq_aux_alpha else None
        return out.view(b, t, hdim)

    def _seq_aux_loss(self, scores: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """DeepSeek-V3 eqs. 17-20: alpha * sum_i f_i P_i per sequence, averaged over the batch.

        scores (B, T, E) unbiased sigmoid; idx (B, T, k). f_i = E/(k T) * #tokens routed to i;
        P_i = mean_t s_i,t / sum_j s_j,t.
        """
        b, t, e = scores.shape
        hits = torch.zeros_like(scores).scatter_(-1, idx, 1.0)  # (B, T, E) one-hot of selected experts
        f = hits.sum(dim=1) * (e / (self.top_k * t))  # (B, E), no gradient (indicator)
        p = (scores / scores.sum(dim=-1, keepdim=True)).mean(dim=1)  # (B, E)
        return self.seq_aux_alpha * (f * p).sum(dim=-1).mean()

    @torch.no_grad()
    def apply_bias_update(self, load: torch.Tensor, gamma: float) -> None:
        """b -= gamma for overloaded experts, b += gamma for underloaded ones; equal load: unchanged."""
        self.gate.e_score_correction_bias += gamma * torch.sign(load.mean() - load)
        self.expert_load.zero_()
