"""QK-Clip: exact per-head rescaling against a plain reference, exactness of the clip on a real MLA forward,
the attention protocol, the single MAX all-reduce under torch.distributed, and the integration in MuonClip.step.

`MiniMLA` is a minimal but real MLA block (low-rank q and kv, RMSNorm, interleaved RoPE on q_rope and ONE
shared k_rope, causal softmax) implementing the protocol of trainer/protocol.py; the same checks run on the
project's model in test_hf_trainer.py.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainer.muonclip import MuonClip
from trainer.protocol import check_layer, find_qk_clip_layers, q_projection
from trainer.qkclip import apply_qk_clip_, clip_factors, qk_clip_
from tests.trainer.gloo import gloo_group


def _rope(x: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Interleaved RoPE over (..., T, d): rotates adjacent pairs (x0, x1), (x2, x3), ..."""
    t, d = x.shape[-2], x.shape[-1]
    inv = theta ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    ang = torch.arange(t, dtype=torch.float32)[:, None] * inv[None, :]  # (T, d/2)
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


class MiniMLA(nn.Module):
    """Multi-head latent attention following the QK-Clip protocol (q_lora_rank=None uses q_proj)."""

    def __init__(self, hidden=32, n_heads=4, q_lora_rank=16, kv_lora_rank=16, nope=8, rope=4, v=6):
        super().__init__()
        self.n_heads, self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim = n_heads, nope, rope, v
        if q_lora_rank is None:
            self.q_proj = nn.Linear(hidden, n_heads * (nope + rope), bias=False)
        else:
            self.q_a_proj = nn.Linear(hidden, q_lora_rank, bias=False)
            self.q_a_layernorm = nn.RMSNorm(q_lora_rank)
            self.q_b_proj = nn.Linear(q_lora_rank, n_heads * (nope + rope), bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(hidden, kv_lora_rank + rope, bias=False)
        self.kv_a_layernorm = nn.RMSNorm(kv_lora_rank)
        self.kv_b_proj = nn.Linear(kv_lora_rank, n_heads * (nope + v), bias=False)
        self.o_proj = nn.Linear(n_heads * v, hidden, bias=False)
        self.softmax_scale = (nope + rope) ** -0.5
        self.register_buffer("max_logits", torch.full((n_heads,), float("-inf")), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h, dn, dr, dv = self.n_heads, self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim
        q_in = x if hasattr(self, "q_proj") else self.q_a_layernorm(self.q_a_proj(x))
        q = q_projection(self)(q_in).view(b, t, h, dn + dr).transpose(1, 2)  # (B, H, T, dn+dr)
        q_nope, q_rope = q.split([dn, dr], dim=-1)
        ckv, k_rope = self.kv_a_proj_with_mqa(x).split([self.kv_a_layernorm.normalized_shape[0], dr], dim=-1)
        kv = self.kv_b_proj(self.kv_a_layernorm(ckv)).view(b, t, h, dn + dv).transpose(1, 2)
        k_nope, v = kv.split([dn, dv], dim=-1)
        q_rope, k_rope = _rope(q_rope), _rope(k_rope[:, None])  # k_rope: (B, 1, T, dr), shared by all heads
        scores = (q_nope @ k_nope.mT + q_rope @ k_rope.mT) * self.softmax_scale  # (B, H, T, T)
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))  # never (1 - mask) * -inf: 0 * inf = NaN
        if self.training:
            self.max_logits.copy_(torch.maximum(self.max_logits, scores.detach().amax(dim=(0, 2, 3))))
        out = F.softmax(scores, dim=-1) @ v  # (B, H, T, dv)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, h * dv))


class MiniLM(nn.Module):
    """Embedding -> residual MLA blocks -> norm -> head; forward(input_ids, labels) returns the LM loss."""

    def __init__(self, vocab=50, hidden=32, layers=2, **mla):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(MiniMLA(hidden, **mla) for _ in range(layers))
        self.norm = nn.RMSNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, input_ids, labels=None):
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = x + layer(x)
        logits = self.lm_head(self.norm(x))
        if labels is None:
            return logits
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1))


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _reference_clip(q: torch.Tensor, kv: torch.Tensor, smax, tau, layer) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain per-head loop in float64, straight from K2 Algorithm 1."""
    q, kv = q.double().clone(), kv.double().clone()
    dn, dr, dv = layer.qk_nope_head_dim, layer.qk_rope_head_dim, layer.v_head_dim
    for h in range(layer.n_heads):
        s = float(smax[h])
        if s > tau:
            g = tau / s
            q0, k0 = h * (dn + dr), h * (dn + dv)
            q[q0:q0 + dn] *= math.sqrt(g)
            q[q0 + dn:q0 + dn + dr] *= g
            kv[k0:k0 + dn] *= math.sqrt(g)
    return q, kv


@pytest.mark.parametrize("q_lora_rank", [16, None])
def test_planted_logit_scales_only_that_head(q_lora_rank):
    torch.manual_seed(0)
    model = MiniLM(layers=2, q_lora_rank=q_lora_rank)
    layers = find_qk_clip_layers(model)
    assert [n for n, _ in layers] == ["layers.0", "layers.1"]
    layers[0][1].max_logits.copy_(torch.tensor([10.0, 99.0, 100.0, float("-inf")]))
    planted = torch.tensor([10.0, 250.0, -5.0, 100.0])  # only head 1 of layer 1 is above tau
    layers[1][1].max_logits.copy_(planted)
    before = _snapshot(model)
    stats = qk_clip_(layers, tau=100.0)

    after = _snapshot(model)
    qname = "layers.1.q_b_proj.weight" if q_lora_rank else "layers.1.q_proj.weight"
    changed = {qname, "layers.1.kv_b_proj.weight"}
    for name in before:
        if name not in changed:
            assert torch.equal(before[name], after[name]), name
    ref_q, ref_kv = _reference_clip(before[qname], before["layers.1.kv_b_proj.weight"], planted, 100.0,
                                    layers[1][1])
    for got, ref, old in ((after[qname], ref_q, before[qname]),
                          (after["layers.1.kv_b_proj.weight"], ref_kv, before["layers.1.kv_b_proj.weight"])):
        same = ref == old.double()  # rows the reference left alone must be bit-identical
        assert torch.equal(got[same], old[same])
        assert not same.all()
        torch.testing.assert_close(got.double(), ref, rtol=1e-6, atol=0)
    # head 1 of layer 1: 12 q rows (8 nope scaled by sqrt(0.4), 4 rope by 0.4) and 8 k_nope rows changed
    q_rows = (after[qname] != before[qname]).any(dim=1).nonzero().flatten().tolist()
    k_rows = (after["layers.1.kv_b_proj.weight"] != before["layers.1.kv_b_proj.weight"]).any(dim=1)
    assert q_rows == list(range(12, 24))
    assert k_rows.nonzero().flatten().tolist() == list(range(14, 22))
    assert stats.heads_clipped.tolist() == [0, 1]
    torch.testing.assert_close(stats.gamma[1, 1], torch.tensor(0.4))
    assert all(torch.isneginf(layer.max_logits).all() for _, layer in layers)


def test_clip_makes_same_batch_peak_at_tau_on_real_forward():
    torch.manual_seed(1)
    layer = MiniMLA(hidden=32, n_heads=4)
    with torch.no_grad():  # large up-projections give logits in the hundreds, like a run that needs clipping
        layer.q_b_proj.weight.mul_(40.0)
        layer.kv_b_proj.weight.mul_(40.0)
    x = torch.randn(2, 12, 32)
    layer.train()
    out0 = layer(x)
    s0 = layer.max_logits.clone()
    tau = float(s0.sort().values[1:3].mean())  # two heads above tau, two below
    clip, _ = clip_factors(s0, tau)
    assert clip.sum() == 2
    qk_clip_([("attn", layer)], tau=tau)
    out1 = layer(x)
    s1 = layer.max_logits
    # score = q_nope.k_nope * sqrt(g)^2 + q_rope.k_rope * g: every term scales by g, so the max lands on tau
    torch.testing.assert_close(s1[clip], torch.full_like(s1[clip], tau), rtol=1e-5, atol=0)
    torch.testing.assert_close(s1[~clip], s0[~clip], rtol=1e-6, atol=0)
    v_heads = out1.shape  # outputs change (clipped heads attend differently) but stay finite
    assert torch.isfinite(out1).all() and v_heads == out0.shape


def test_unclipped_heads_and_non_finite_maxima_are_untouched():
    torch.manual_seed(2)
    layer = MiniMLA()
    layer.max_logits.copy_(torch.tensor([float("nan"), float("-inf"), 100.0, -1e9]))
    before = _snapshot(layer)
    stats = qk_clip_([("attn", layer)], tau=100.0)
    after = _snapshot(layer)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert stats.heads_clipped.tolist() == [0]
    assert torch.equal(stats.gamma, torch.ones(1, 4))


def test_vanilla_muon_mode_records_but_does_not_clip():
    torch.manual_seed(3)
    layer = MiniMLA()
    layer.max_logits.copy_(torch.tensor([500.0, 1.0, 2.0, 3.0]))
    before = _snapshot(layer)
    stats = qk_clip_([("attn", layer)], tau=100.0, apply=False)
    assert all(torch.equal(before[k], v) for k, v in _snapshot(layer).items())
    assert stats.clipped.tolist() == [[True, False, False, False]] and not stats.applied
    host = stats.to_host()
    assert host["qk_clip/max_logit"] == 500.0 and host["qk_clip/heads_clipped"] == 1.0
    assert host["qk_clip/frac_heads_clipped"] == 0.25 and host["qk_clip/max_logit/attn"] == 500.0
    assert torch.isneginf(layer.max_logits).all()


def test_protocol_validation_names_layer_and_field():
    layer = MiniMLA()
    layer.kv_b_proj = nn.Linear(16, 4 * 13, bias=False)  # wrong head block: 13 rows instead of 8+6
    with pytest.raises(ValueError, match=r"'blk'.*kv_b_proj.weight must be 2-D with 56 rows"):
        check_layer("blk", layer)
    layer = MiniMLA()
    layer.max_logits = torch.zeros(4, dtype=torch.float16)
    with pytest.raises(ValueError, match="max_logits must be a float32"):
        find_qk_clip_layers(nn.Sequential(layer))
    assert find_qk_clip_layers(nn.Linear(3, 3)) == []
    with pytest.raises(ValueError, match="tau must be > 0"):
        qk_clip_([("a", MiniMLA())], tau=0.0)


def test_clip_code_compiles_without_graph_breaks():
    torch.manual_seed(4)
    layer, ref = MiniMLA(), MiniMLA()
    ref.load_state_dict(layer.state_dict())
    s = torch.tensor([300.0, 1.0, 150.0, 3.0])

    def clip(s):
        c, g = clip_factors(s, 100.0)
        apply_qk_clip_(layer, c, g)

    torch.compile(clip, fullgraph=True, backend="eager")(s)  # fullgraph: a data-dependent branch would raise
    c, g = clip_factors(s, 100.0)
    apply_qk_clip_(ref, c, g)
    assert all(torch.equal(a, b) for a, b in zip(layer.parameters(), ref.parameters()))


def test_muonclip_step_clips_after_update_and_exposes_device_stats():
    torch.manual_seed(5)
    model = MiniLM(layers=2)
    with torch.no_grad():
        for layer in model.layers:
            layer.q_b_proj.weight.mul_(40.0)
            layer.kv_b_proj.weight.mul_(40.0)
    opt = MuonClip.from_model(model, lr=1e-3, weight_decay=0.1, qk_clip_tau=30.0)
    assert len(opt.qk_clip_layers) == 2
    ids = torch.randint(0, 50, (2, 16))
    model(ids, labels=ids).backward()
    seen = torch.stack([layer.max_logits.clone() for layer in model.layers])
    assert (seen > 30).any()
    opt.step()
    stats = opt.last_clip_stats
    assert stats.max_logits.device == seen.device and torch.equal(stats.max_logits, seen)
    assert torch.equal(stats.clipped, seen > 30)
    with torch.no_grad():
        model(ids)
    after = torch.stack([layer.max_logits for layer in model.layers])
    # the update moved the weights a little, then the clip pulled every head that was above tau back to it
    assert after[seen > 30].max() < 30 * 1.1, after
    assert after.max() < seen.max() / 2


def _dist_worker(rank: int, world: int, init_file: str) -> None:
    import torch.distributed as dist
    with gloo_group(rank, world, init_file):
        torch.manual_seed(0)
        model = MiniLM(layers=2)  # identical weights on both ranks
        local = {0: ([150.0, 10.0, 50.0, 90.0], [1.0, 2.0, 3.0, 4.0]),
                 1: ([20.0, 300.0, 50.0, 120.0], [1.0, 2.0, 3.0, 400.0])}[rank]
        for layer, vals in zip(model.layers, local):
            layer.max_logits.copy_(torch.tensor(vals))
        before = _snapshot(model)
        calls = []
        real_all_reduce = dist.all_reduce

        def counting_all_reduce(tensor, *a, **kw):  # a spy, not a fake: forwards to the real collective
            calls.append(tuple(tensor.shape))
            return real_all_reduce(tensor, *a, **kw)

        dist.all_reduce = counting_all_reduce
        try:
            stats = qk_clip_(find_qk_clip_layers(model), tau=100.0)
        finally:
            dist.all_reduce = real_all_reduce
        assert calls == [(2, 4)], calls  # ONE collective for all layers
        assert stats.max_logits.tolist() == [[150.0, 300.0, 50.0, 120.0], [1.0, 2.0, 3.0, 400.0]]
        for i, layer in enumerate(model.layers):
            ref_q, ref_kv = _reference_clip(before[f"layers.{i}.q_b_proj.weight"],
                                            before[f"layers.{i}.kv_b_proj.weight"], stats.max_logits[i], 100.0, layer)
            torch.testing.assert_close(layer.q_b_proj.weight.double(), ref_q, rtol=1e-6, atol=0)
            torch.testing.assert_close(layer.kv_b_proj.weight.double(), ref_kv, rtol=1e-6, atol=0)


def test_distributed_max_is_one_all_reduce_and_ranks_agree(tmp_path):
    import torch.multiprocessing as mp
    mp.spawn(_dist_worker, args=(2, str(tmp_path / "pg_init")), nprocs=2, join=True)


def test_whole_step_compiles_in_one_graph_and_matches_eager():
    torch.manual_seed(6)
    eager, compiled = MiniLM(layers=2), MiniLM(layers=2)
    compiled.load_state_dict(eager.state_dict())
    opt_e = MuonClip.from_model(eager, lr=1e-2, weight_decay=0.1, qk_clip_tau=0.05)
    opt_c = MuonClip.from_model(compiled, lr=1e-2, weight_decay=0.1, qk_clip_tau=0.05)
    # fullgraph: no .item(), no data-dependent Python branch anywhere in Muon, AdamW or QK-Clip
    step = torch.compile(opt_c.step, fullgraph=True, backend="eager")
    for _ in range(2):
        ids = torch.randint(0, 50, (2, 8))
        for m in (eager, compiled):
            m.zero_grad()
            m(ids, labels=ids).backward()
        opt_e.step()
        step()
        assert opt_c.last_clip_stats is not None and opt_c.last_clip_stats.clipped.any()
        assert torch.equal(opt_c.last_clip_stats.clipped, opt_e.last_clip_stats.clipped)
        for a, b in zip(eager.parameters(), compiled.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # compiled scalar math may differ by ulps
