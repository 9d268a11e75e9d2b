"""Kimi-K2 / DeepSeek-V3 style decoder: MLA attention + DeepSeekMoE, readable top to bottom.

    input_ids (B, T) -> embed_tokens -> [Block] * L -> norm -> lm_head -> logits (B, T, V)
    Block: x + MLA(input_layernorm(x)); x + FFN(post_attention_layernorm(x))
    FFN: SwiGLU for layers < first_k_dense_replace, MoE after.
    MTP (DeepSeek-V3 multi-token prediction, depth k = 1..D, config.num_nextn_predict_layers):
        h^k_i = shared_head.norm(Block_k(eh_proj([enorm(embed(t_{i+k})); hnorm(h^{k-1}_i)])))   (B, T-k, H)
        mtp_logits[k-1] = lm_head(h^k)  predicts t_{i+k+1};  h^0 = norm(final hidden)
    Embedding and head are shared with the main model; each MTP block is an MoE block. This is transformers'
    MtpLayer arithmetic (use_post_norm, embeddings first), so HF's MTP drafting reads the same module.

Module and parameter names equal transformers' `DeepseekV3ForCausalLM` (experts stacked like its 5.x in-memory
layout), so export is a rename-free copy plus splitting the expert stacks into per-expert keys.

Attention masking: causal, plus optional document masking (`doc_ids` (B, T): a token attends only to earlier
tokens of the same document) and padding (`attention_mask` (B, T), 1 = real token). Every training forward
records each head's signed maximum pre-softmax logit over valid pairs into `MLA.max_logits` for QK-Clip
(the protocol in trainer/protocol.py). On CPU the logits come from the explicit score matrix; on CUDA from
FlexAttention's `AuxRequest(max_scores=True)`, so no T x T matrix is materialised there.
"""
from __future__ import annotations

import contextlib
import math
import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import ModelConfig
from trainer.moe import Fp32Buffers, MoE, SwiGLU, recomputing
from trainer.rope import apply_rope_interleaved, inv_frequencies, rope_cos_sin, softmax_scale

# The low-rank latents are normalised with eps 1e-6 in both DeepSeek-V3's reference and transformers,
# whatever rms_norm_eps says; matching it keeps exported logits identical.
LATENT_NORM_EPS = 1e-6


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in fp32 (same arithmetic as transformers' DeepseekV3RMSNorm)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()  # normalise in fp32 whatever the activation dtype
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


@dataclass
class AttnMask:
    """Which (query i, key j) pairs may interact: j <= i, same document, both real tokens."""

    seq_len: int
    device: torch.device
    doc_ids: torch.Tensor | None = None  # (B, T)
    token_valid: torch.Tensor | None = None  # (B, T) bool
    flex_block_mask: Any = None  # built on first use by the FlexAttention path, shared by all layers

    @cached_property
    def valid_pairs(self) -> torch.Tensor:
        """(B or 1, 1, T, T) bool: the pairs that count, for attention and for max logits."""
        t = self.seq_len
        m = torch.ones(t, t, dtype=torch.bool, device=self.device).tril()[None, None]  # (1, 1, T, T) causal
        if self.doc_ids is not None:
            m = m & (self.doc_ids[:, None, :, None] == self.doc_ids[:, None, None, :])
        if self.token_valid is not None:
            m = m & self.token_valid[:, None, :, None] & self.token_valid[:, None, None, :]
        return m

    @cached_property
    def softmax_allowed(self) -> torch.Tensor:
        """valid_pairs, plus the diagonal so that a padded query row is never all -inf (its output is unused)."""
        if self.token_valid is None:
            return self.valid_pairs  # every row already contains its diagonal
        eye = torch.eye(self.seq_len, dtype=torch.bool, device=self.device)[None, None]
        return self.valid_pairs | eye


_BLOCK_ELEMENTS = 1 << 16  # a generator per block of dim-0 slices holding about this many elements


def _seeded_normal_(p: torch.Tensor, std: float, seed: int, name: str) -> None:
    """p ~ N(0, std); dim-0 slices come in fixed blocks, block b drawn from a generator seeded by
    (seed, name, b), so any dim-0 shard can be drawn alone. p may be a DTensor sharded on dim 0: only the
    blocks overlapping its local rows are drawn (at most two partial blocks of waste)."""
    local, offset = p, 0
    if hasattr(p, "to_local"):
        from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
        _, global_offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
        if any(global_offset[1:]):
            raise ValueError(f"{name}: seeded init supports sharding on dim 0 only, got offset {global_offset}")
        local, offset = p.to_local(), int(global_offset[0])
    n = local.shape[0]
    if n == 0:
        return
    row_shape = tuple(local.shape[1:])
    rows = max(1, _BLOCK_ELEMENTS // max(1, math.prod(row_shape)))  # dim-0 slices per block
    base = ((seed * 1_000_003 + zlib.crc32(name.encode())) % (1 << 38)) << 24  # + block < 2**62: a valid seed
    host = torch.empty((rows, *row_shape), dtype=torch.float32)
    for b in range(offset // rows, (offset + n - 1) // rows + 1):
        g = torch.Generator().manual_seed(base + b)
        host.normal_(0.0, std, generator=g)
        lo, hi = max(b * rows, offset), min((b + 1) * rows, offset + n)  # global rows of this block we own
        local[lo - offset:hi - offset].copy_(host[lo - b * rows:hi - b * rows])


class MLA(Fp32Buffers, nn.Module):
    """Multi-head latent attention with one RoPE key shared by all heads. Satisfies QKClipAttention."""

    fp32_buffers = ("max_logits",)

    def __init__(self, config: ModelConfig, attn_impl: str = "auto"):
        super().__init__()
        self.n_heads = config.num_attention_heads
        self.qk_nope_head_dim, self.qk_rope_head_dim = config.qk_nope_head_dim, config.qk_rope_head_dim
        self.v_head_dim, self.kv_lora_rank = config.v_head_dim, config.kv_lora_rank
        self.softmax_scale = softmax_scale(config.qk_head_dim, config.rope_scaling)
        if attn_impl not in ("auto", "flex", "dense"):
            raise ValueError(f"attn_impl must be 'auto', 'flex' or 'dense', got {attn_impl!r}")
        self.attn_impl = attn_impl  # auto: FlexAttention on CUDA, explicit scores elsewhere
        h, n, dq = config.hidden_size, self.n_heads, config.qk_head_dim
        if config.q_lora_rank is None:
            self.q_proj = nn.Linear(h, n * dq, bias=False)
        else:
            self.q_a_proj = nn.Linear(h, config.q_lora_rank, bias=False)
            self.q_a_layernorm = RMSNorm(config.q_lora_rank, LATENT_NORM_EPS)
            self.q_b_proj = nn.Linear(config.q_lora_rank, n * dq, bias=False)  # rows: head-major [nope | rope]
        self.kv_a_proj_with_mqa = nn.Linear(h, self.kv_lora_rank + self.qk_rope_head_dim, bias=False)
        self.kv_a_layernorm = RMSNorm(self.kv_lora_rank, LATENT_NORM_EPS)
        self.kv_b_proj = nn.Linear(self.kv_lora_rank, n * (self.qk_nope_head_dim + self.v_head_dim),
                                   bias=False)  # rows: head-major [k_nope | v]
        self.o_proj = nn.Linear(n * self.v_head_dim, h, bias=False)
        self.register_buffer("max_logits", torch.full((n,), float("-inf")), persistent=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: AttnMask) -> torch.Tensor:
        b, t, _ = x.shape
        nh, dn, dr, dv = self.n_heads, self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim
        q = self.q_proj(x) if hasattr(self, "q_proj") else self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        q = q.view(b, t, nh, dn + dr).transpose(1, 2)  # (B, H, T, dn+dr)
        q_nope, q_rope = q.split([dn, dr], dim=-1)
        c_kv, k_rope = self.kv_a_proj_with_mqa(x).split([self.kv_lora_rank, dr], dim=-1)  # (B,T,r), (B,T,dr)
        kv = self.kv_b_proj(self.kv_a_layernorm(c_kv)).view(b, t, nh, dn + dv).transpose(1, 2)  # (B,H,T,dn+dv)
        k_nope, v = kv.split([dn, dv], dim=-1)
        q_rope = apply_rope_interleaved(q_rope, cos, sin)  # (B, H, T, dr)
        k_rope = apply_rope_interleaved(k_rope.unsqueeze(1), cos, sin)  # (B, 1, T, dr): ONE key for all heads
        q = torch.cat([q_nope, q_rope], dim=-1)  # (B, H, T, dq)
        k = torch.cat([k_nope, k_rope.expand(b, nh, t, dr)], dim=-1)  # (B, H, T, dq)
        if self._use_flex(x):
            out, head_max = _flex_attention(q, k, v, self.softmax_scale, mask, want_max=self.training)
        else:
            out, head_max = _dense_attention(q, k, v, self.softmax_scale, mask, want_max=self.training)
        if head_max is not None:
            with torch.no_grad():  # running max across micro-batches; stays on device (no host sync)
                torch.maximum(self.max_logits, head_max.detach().float(), out=self.max_logits)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, nh * dv))  # (B, T, H)

    def _use_flex(self, x: torch.Tensor) -> bool:
        return x.is_cuda if self.attn_impl == "auto" else self.attn_impl == "flex"


def _dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, mask: AttnMask,
                     want_max: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Explicit scores. q, k (B, H, T, dq); v (B, H, T, dv) -> out (B, H, T, dv), per-head max (H,) or None."""
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # (B, H, T, T)
    masked = scores.masked_fill(~mask.softmax_allowed, float("-inf"))
    head_max = None
    if want_max:
        pairs = masked if mask.token_valid is None else scores.masked_fill(~mask.valid_pairs, float("-inf"))
        head_max = pairs.amax(dim=(0, 2, 3))  # (H,) signed max over valid pairs only
    probs = torch.softmax(masked, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs, v), head_max


_COMPILED_FLEX = None


def _flex_block_mask(mask: AttnMask):
    """BlockMask for FlexAttention from the same rule as AttnMask.valid_pairs (built once per forward)."""
    from torch.nn.attention.flex_attention import create_block_mask

    doc, valid = mask.doc_ids, mask.token_valid

    def mask_mod(b, h, qi, kj):
        m = qi >= kj
        if doc is not None:
            m = m & (doc[b, qi] == doc[b, kj])
        if valid is not None:
            m = m & valid[b, qi] & valid[b, kj]
        return m

    batch = None
    for t in (doc, valid):
        if t is not None:
            batch = t.shape[0]
    return create_block_mask(mask_mod, batch, None, mask.seq_len, mask.seq_len, device=mask.device)


def _flex_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, mask: AttnMask,
                    want_max: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """FlexAttention (CUDA): block-sparse, no T x T matrix; per-row max scores come from the kernel.

    q, k (B, H, T, dq); v (B, H, T, dv). AuxOutput.max_scores is (B, H, T) in natural-log units with `scale`
    applied (the kernel's log2 statistics are converted back), i.e. max_j scale * q_i . k_j over unmasked j.
    """
    global _COMPILED_FLEX
    from torch.nn.attention.flex_attention import AuxRequest, flex_attention

    if _COMPILED_FLEX is None:
        _COMPILED_FLEX = torch.compile(flex_attention)  # uncompiled flex materialises the scores
    if mask.flex_block_mask is None:
        mask.flex_block_mask = _flex_block_mask(mask)
    if not want_max:
        return _COMPILED_FLEX(q, k, v, block_mask=mask.flex_block_mask, scale=scale), None
    out, aux = _COMPILED_FLEX(q, k, v, block_mask=mask.flex_block_mask, scale=scale,
                              return_aux=AuxRequest(max_scores=True))
    return out, aux.max_scores.amax(dim=(0, 2))  # (B, H, T) -> (H,); fully masked (padded) rows hold -inf


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int, attn_impl: str):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = MLA(config, attn_impl)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MoE(config) if config.is_moe_layer(layer_idx) else SwiGLU(config.hidden_size,
                                                                              config.intermediate_size)

    activation_checkpointing = False  # K2ForCausalLM.set_activation_checkpointing

    def forward(self, x, cos, sin, mask):
        if self.activation_checkpointing and self.training and torch.is_grad_enabled():
            # keep only the block's input; backward recomputes the rest (MoE loads are counted once, and the
            # max logits of the recompute equal the forward's, so QK-Clip sees the same values)
            from torch.utils.checkpoint import checkpoint
            return checkpoint(self._forward, x, cos, sin, mask, use_reentrant=False,
                              context_fn=lambda: (contextlib.nullcontext(), recomputing()))
        return self._forward(x, cos, sin, mask)

    def _forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class MTPLayer(Block):
    """One multi-token-prediction module: a Block plus the projections that feed it (names of the DeepSeek-V3
    checkpoint's `model.layers.{L + k - 1}.*`: enorm, hnorm, eh_proj, shared_head.norm)."""

    def __init__(self, config: ModelConfig, depth: int, attn_impl: str):
        super().__init__(config, config.num_hidden_layers + depth - 1, attn_impl)  # index >= L: always MoE
        h = config.hidden_size
        self.enorm = RMSNorm(h, config.rms_norm_eps)
        self.hnorm = RMSNorm(h, config.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * h, h, bias=False)
        self.shared_head = nn.Module()
        self.shared_head.norm = RMSNorm(h, config.rms_norm_eps)

    def forward(self, prev, emb, cos, sin, mask):  # prev, emb (B, T', H) -> (B, T', H), normed
        x = self.eh_proj(torch.cat([self.enorm(emb), self.hnorm(prev)], dim=-1))
        return self.shared_head.norm(super().forward(x, cos, sin, mask))


def chunked_cross_entropy(head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, chunk_tokens: int,
                          reduction: str = "mean", ignore_index: int = -100) -> torch.Tensor:
    """F.cross_entropy(head(hidden).float(), targets) without ever holding more than `chunk_tokens` rows of logits.

    hidden (..., H), targets (...) -> scalar. Per chunk: logits = head(h_chunk) -> fp32 -> summed CE, under
    torch.utils.checkpoint, so backward recomputes the chunk's logits instead of keeping them (peak: one chunk's
    fp32 logits and their gradient). Inputs of at most `chunk_tokens` tokens take the plain path (no recompute). mean = sum over chunks / number of non-ignored targets (NaN if none, as
    F.cross_entropy).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    h, y = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)

    def chunk_ce(hc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:  # (n, H), (n,) -> sum of n CEs (fp32)
        return F.cross_entropy(head(hc).float(), yc, ignore_index=ignore_index, reduction="sum")

    from torch.utils.checkpoint import checkpoint
    # one chunk holds all the logits anyway: recomputing it would cost a head matmul and save nothing
    recompute = torch.is_grad_enabled() and h.requires_grad and h.shape[0] > chunk_tokens
    total = None
    for s in range(0, h.shape[0], chunk_tokens):
        hc, yc = h[s:s + chunk_tokens], y[s:s + chunk_tokens]
        part = checkpoint(chunk_ce, hc, yc, use_reentrant=False) if recompute else chunk_ce(hc, yc)
        total = part if total is None else total + part
    if total is None:
        total = h.new_zeros((), dtype=torch.float32)
    return total / (y != ignore_index).sum() if reduction == "mean" else total


class ModelOutput(dict):
    """dict with attribute access, like transformers' ModelOutput (Trainer reads outputs['loss'])."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e


class Backbone(nn.Module):
    def __init__(self, config: ModelConfig, attn_impl: str):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config, i, attn_impl) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mtp_layers = nn.ModuleList(MTPLayer(config, k + 1, attn_impl)
                                        for k in range(config.num_nextn_predict_layers))


def _check_inputs(input_ids: torch.Tensor, **others: torch.Tensor | None) -> None:
    """Shape errors name the argument instead of surfacing as a broadcasting failure deep in attention."""
    if input_ids.ndim != 2 or input_ids.dtype not in (torch.long, torch.int32):
        raise ValueError(f"input_ids must be an integer tensor (batch, seq), got {input_ids.dtype} "
                         f"{tuple(input_ids.shape)}")
    for name, t in others.items():
        if t is not None and tuple(t.shape) != tuple(input_ids.shape):
            raise ValueError(f"{name} must have the shape of input_ids {tuple(input_ids.shape)}, "
                             f"got {tuple(t.shape)}")


class K2ForCausalLM(nn.Module):
    """The full model. forward(input_ids, labels=None, doc_ids=None, attention_mask=None, targets=None) ->
    .loss (training: CE + balance + MTP; eval: CE), .lm_loss (CE), .aux_loss (MoE balance), .mtp_loss, .logits,
    .mtp_logits (one (B, T-k, V) tensor per MTP depth k; [] without MTP). The router biases are not updated
    here: trainer/balance.py does that after each optimizer step."""

    def __init__(self, config: ModelConfig, attn_impl: str = "auto", init_weights: bool = True,
                 seed: int | None = None):
        super().__init__()
        self.config = config
        self.model = Backbone(config, attn_impl)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        inv_freq, self.rope_attention_factor = inv_frequencies(config.qk_rope_head_dim, config.rope_theta,
                                                               config.rope_scaling)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        if init_weights:
            self.init_weights(seed)

    @torch.no_grad()
    def init_weights(self, seed: int | None = None) -> None:
        """normal(0, initializer_range) for matrices and embeddings, ones for norm gains, zeros for biases.

        Every slice along dim 0 of a parameter (a row, or one expert of a stack) is drawn from its own generator
        seeded by (seed, parameter name, index), so a model built on the meta device, sharded (FSDP2 DTensors,
        dim 0) and then initialised holds exactly the weights of an unsharded init, at any world size, while
        each rank only ever materialises its own shard. seed None: drawn from torch's global RNG.
        """
        if seed is None:
            seed = int(torch.randint(0, 2 ** 62, (1,)).item())
        std = self.config.initializer_range
        for name, p in self.named_parameters():
            if p.ndim == 1:
                p.fill_(1.0)  # the only 1-D parameters are RMSNorm gains
            else:
                _seeded_normal_(p, std, seed, name)
        inv_freq, _ = inv_frequencies(self.config.qk_rope_head_dim, self.config.rope_theta, self.config.rope_scaling)
        self.inv_freq.copy_(inv_freq)  # recomputed so a model built on the meta device can be materialised
        for mod in self.modules():
            if isinstance(mod, MoE):
                mod.gate.e_score_correction_bias.zero_()
                mod.expert_load.zero_()
            if isinstance(mod, MLA):
                mod.max_logits.fill_(float("-inf"))

    loss_chunk_tokens = 0  # set_loss_chunking: 0 = one CE over the full (tokens, vocab) logits

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                doc_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                targets: torch.Tensor | None = None, loss_reduction: str = "mean") -> ModelOutput:
        """The one loss convention: position t is scored against targets[t] (aligned; -100 = no target); the
        loop passes a (B, T+1) window as inputs [:, :-1] and targets [:, 1:]. labels (B, T) is transformers'
        spelling of the same thing for an unshifted sequence (position t predicts labels[t+1]), so
        `model(ids, labels=ids).loss` works as it does in HF: targets = labels[:, 1:] on positions :-1 (the last
        position has no target). With a target and loss_chunk_tokens > 0 the logits are never materialised
        (.logits and .mtp_logits are None)."""
        _check_inputs(input_ids, labels=labels, doc_ids=doc_ids, attention_mask=attention_mask, targets=targets)
        if labels is not None and targets is not None:
            raise ValueError("pass labels (shifted inside) or targets (already aligned), not both")
        b, t = input_ids.shape
        if t > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {t} exceeds max_position_embeddings="
                             f"{self.config.max_position_embeddings}")
        x = self.model.embed_tokens(input_ids)  # (B, T, H)
        positions = torch.arange(t, device=input_ids.device)
        cos, sin = rope_cos_sin(self.inv_freq, self.rope_attention_factor, positions, x.dtype)  # (T, dr/2)
        cos, sin = cos[None], sin[None]  # (1, T, dr/2)
        valid = None if attention_mask is None else attention_mask.bool()
        mask = AttnMask(t, input_ids.device, doc_ids=doc_ids, token_valid=valid)  # shared by all layers
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        h = self.model.norm(x)
        hidden = [h]  # h^0, then h^k of each MTP depth: (B, T-k, H)
        for k, layer in enumerate(self.model.mtp_layers, start=1):
            if t - k < 1:
                break
            # position i combines h^{k-1}_i with token i+k (RoPE at the token's position, as transformers does)
            sub = AttnMask(t - k, input_ids.device, doc_ids=None if doc_ids is None else doc_ids[:, k:],
                           token_valid=None if valid is None else valid[:, k:])
            h = layer(h[:, :-1], self.model.embed_tokens(input_ids[:, k:]), cos[:, k:], sin[:, k:], sub)
            hidden.append(h)
        aux = self._aux_loss()
        tgt, scored = (labels[:, 1:], t - 1) if labels is not None else (targets, t)  # HF labels -> aligned
        h0 = hidden[0][:, :scored]
        chunked = tgt is not None and self.loss_chunk_tokens > 0
        logits = None if chunked else [self.lm_head(hk) for hk in hidden]  # (B, T-k, V): predicts token i+k+1
        loss = lm = mtp = None
        if tgt is not None:
            lm = self.lm_cross_entropy(h0, tgt, loss_reduction,
                                       None if chunked else logits[0][:, :h0.shape[1]])
            if len(hidden) > 1:
                mtp = self.mtp_loss(hidden[1:], tgt, None if chunked else logits[1:])
            loss = lm
            if self.training:
                extra = [x for x in (aux, mtp) if x is not None]
                loss = loss + sum(extra) if extra else loss
        return ModelOutput(loss=loss, lm_loss=lm, aux_loss=aux, mtp_loss=mtp,
                           logits=None if chunked else logits[0], mtp_logits=None if chunked else logits[1:])

    def lm_cross_entropy(self, h: torch.Tensor, targets: torch.Tensor, reduction: str = "mean",
                         logits: torch.Tensor | None = None) -> torch.Tensor:
        """CE(lm_head(h) in fp32, targets); h (B, T', H), targets (B, T'), -100 ignored. Computed in chunks of
        loss_chunk_tokens tokens (never the full logits) unless chunking is off or the logits are given."""
        if logits is None and self.loss_chunk_tokens > 0:
            return chunked_cross_entropy(self.lm_head, h, targets, self.loss_chunk_tokens, reduction)
        logits = self.lm_head(h) if logits is None else logits
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100,
                               reduction=reduction)

    def mtp_loss(self, mtp_hidden: list[torch.Tensor], targets: torch.Tensor,
                 mtp_logits: list[torch.Tensor] | None = None) -> torch.Tensor:
        """lambda / D * sum_k CE(lm_head(h^k), targets[:, k:]); targets (B, T) = the main model's targets."""
        ces = []
        for k, hk in enumerate(mtp_hidden, start=1):
            n = min(hk.shape[1], targets.shape[1] - k)
            ces.append(self.lm_cross_entropy(hk[:, :n], targets[:, k:k + n],
                                             logits=None if mtp_logits is None else mtp_logits[k - 1][:, :n]))
        return self.config.mtp_loss_weight / self.config.num_nextn_predict_layers * torch.stack(ces).sum()

    def _aux_loss(self) -> torch.Tensor | None:
        losses = [m.aux_loss for m in self.moe_layers() if m.aux_loss is not None]
        return torch.stack(losses).sum() if losses else None

    # ------------------------------------------------------------------ training-time helpers
    def set_loss_chunking(self, chunk_tokens: int) -> None:
        """Cross-entropy (LM and MTP) over chunks of `chunk_tokens` tokens, each chunk's logits recomputed in
        backward: the fp32 (tokens, vocab) logits are never materialised (0 = off). Same loss and gradients."""
        if chunk_tokens < 0:
            raise ValueError(f"loss_chunk_tokens must be >= 0, got {chunk_tokens}")
        self.loss_chunk_tokens = int(chunk_tokens)

    def set_activation_checkpointing(self, on: bool = True) -> None:
        """Activation checkpointing per block (main layers and MTP modules): training forwards keep only each
        block's input and recompute the block in backward. Same losses, gradients and router loads."""
        for block in self.blocks():
            block.activation_checkpointing = on

    def blocks(self) -> list[Block]:
        """Every transformer block: the main layers, then the MTP modules (units of sharding and compiling)."""
        return [*self.model.layers, *self.model.mtp_layers]

    def moe_layers(self) -> list[MoE]:
        return [layer.mlp for layer in self.blocks() if isinstance(layer.mlp, MoE)]

    def attention_layers(self) -> list[MLA]:
        return [layer.self_attn for layer in self.blocks()]

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Same signature as transformers' PreTrainedModel.num_parameters (Trainer calls it for FLOP counts)."""
        skip = {id(self.model.embed_tokens.weight)} if exclude_embeddings else set()
        return sum(p.numel() for p in self.parameters()
                   if id(p) not in skip and (p.requires_grad or not only_trainable))
