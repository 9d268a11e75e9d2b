"""MuonClip's update rules against plain re-computations written from the formulas (SPEC §2), its AdamW groups
against torch.optim.AdamW, the parameter-grouping rules, LR scheduling and exact checkpoint/resume."""
from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from trainer.muonclip import MuonClip, assign_optimizers, newton_schulz5, param_groups

A, B, C = 3.4445, -4.7750, 2.0315


def reference_ns5(m: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """Newton-Schulz on ONE matrix, exactly as written in the spec."""
    x = m.to(dtype)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (torch.linalg.norm(x) + 1e-7)
    for _ in range(5):
        a_ = x @ x.T
        x = A * x + (B * a_ + C * a_ @ a_) @ x
    return x.T if tall else x


def reference_muon(w, grads, lr, wd, mu=0.95, nesterov=False, dtype=torch.float64):
    """W after len(grads) Muon steps on one matrix."""
    w, m = w.clone(), torch.zeros_like(w)
    for g in grads:
        m = mu * m + g
        o = reference_ns5(mu * m + g if nesterov else m, dtype).to(w.dtype) * (0.2 * math.sqrt(max(w.shape)))
        w = w - lr * (o + wd * w)
    return w


class Mats(nn.Module):
    """A wide matrix, a tall matrix (transpose path), an expert stack [E, n, m] and a fused [E, gate|up, m]."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        self.wide = nn.Parameter(torch.randn(8, 20, dtype=dtype))
        self.tall = nn.Parameter(torch.randn(24, 6, dtype=dtype))
        self.experts = nn.Parameter(torch.randn(3, 10, 7, dtype=dtype))
        self.gate_up_proj = nn.Parameter(torch.randn(2, 2 * 5, 9, dtype=dtype))


def _muon_only(model, lr, weight_decay, **kw):
    groups = param_groups(model, lr, weight_decay, nesterov=kw.get("nesterov", False))
    assert len(groups) == 1 and groups[0]["use_muon"] and groups[0]["muon_split"] == [1, 1, 1, 2]
    return MuonClip(groups, lr=lr, weight_decay=weight_decay, **kw)


@pytest.mark.parametrize("nesterov", [False, True])
def test_muon_steps_match_plain_recomputation_float64(nesterov):
    torch.manual_seed(0)
    model = Mats()
    w0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = _muon_only(model, lr=0.02, weight_decay=0.1, nesterov=nesterov, ns_dtype=torch.float64)
    grads = []
    for step in range(3):
        g = {k: torch.randn_like(v) for k, v in w0.items()}
        g["experts"][0] *= 1000.0  # one loud expert: a norm shared across the stack would break the others
        g["gate_up_proj"][1, :5] *= 1000.0  # a loud gate half: gate and up are separate matrices
        grads.append(g)
        for k, p in model.named_parameters():
            p.grad = g[k]
        opt.step()
    for k in ("wide", "tall"):
        ref = reference_muon(w0[k], [g[k] for g in grads], 0.02, 0.1, nesterov=nesterov)
        torch.testing.assert_close(getattr(model, k).detach(), ref, rtol=1e-10, atol=1e-12)
    for e in range(3):
        ref = reference_muon(w0["experts"][e], [g["experts"][e] for g in grads], 0.02, 0.1, nesterov=nesterov)
        torch.testing.assert_close(model.experts.detach()[e], ref, rtol=1e-10, atol=1e-12)
    for e in range(2):
        for rows in (slice(0, 5), slice(5, 10)):  # gate rows, then up rows: each its own 5 x 9 matrix
            ref = reference_muon(w0["gate_up_proj"][e, rows], [g["gate_up_proj"][e, rows] for g in grads], 0.02,
                                 0.1, nesterov=nesterov)
            torch.testing.assert_close(model.gate_up_proj.detach()[e, rows], ref, rtol=1e-10, atol=1e-12)


def test_muon_default_bf16_step_matches_reference_to_bf16_precision():
    torch.manual_seed(1)
    model = Mats(dtype=torch.float32)
    w0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = _muon_only(model, lr=0.02, weight_decay=0.0)
    g = {k: torch.randn_like(v) for k, v in w0.items()}
    for k, p in model.named_parameters():
        p.grad = g[k]
    opt.step()
    for k in ("wide", "tall"):  # (the fused and stacked cases are covered in float64 above)
        delta = (w0[k] - getattr(model, k).detach()) / 0.02  # = 0.2*sqrt(max(n,m)) * NS5(G)
        ref = reference_ns5(g[k], torch.bfloat16).float() * 0.2 * math.sqrt(max(w0[k].shape))
        torch.testing.assert_close(delta, ref, rtol=0.02, atol=0.02)
        # the update RMS is ~0.2 (what the 0.2*sqrt(max) factor is for), not sqrt(0.2*max)
        rms = delta.pow(2).mean().sqrt().item()
        assert 0.1 < rms < 0.3, rms


def test_newton_schulz_orthogonalises_each_matrix_of_a_stack():
    torch.manual_seed(2)
    g = torch.randn(4, 16, 32)
    g[1] *= 1e4
    sv = torch.linalg.svdvals(newton_schulz5(g).float())
    assert sv.min() > 0.5 and sv.max() < 1.3, sv  # NS5's quintic maps singular values into ~[0.7, 1.2]
    with pytest.raises(ValueError, match="matrix or a stack"):
        newton_schulz5(torch.randn(5))
    eager = newton_schulz5(g)
    compiled = torch.compile(newton_schulz5, fullgraph=True, backend="eager")(g)  # no data-dependent branches
    assert torch.equal(eager, compiled)


class Block(nn.Module):
    """Names and shapes of a DeepSeek-V3 MoE layer (HF naming), enough for the grouping rules."""

    def __init__(self, h=16, e=4):
        super().__init__()
        self.input_layernorm = nn.RMSNorm(h)
        self.q_b_proj = nn.Linear(h, h, bias=False)
        self.kv_b_proj = nn.Linear(h, h, bias=False)
        self.o_proj = nn.Linear(h, h, bias=True)
        self.gate = nn.Linear(h, e, bias=False)  # router
        self.gate.register_buffer("e_score_correction_bias", torch.zeros(e))
        self.experts_gate_up = nn.Parameter(torch.randn(e, 2 * 8, h))
        self.shared_experts = nn.ModuleDict({"gate_proj": nn.Linear(h, 8, bias=False),
                                             "down_proj": nn.Linear(8, h, bias=False)})


class Net(nn.Module):
    def __init__(self, vocab=40, h=16):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, h)
        self.block = Block(h)
        self.norm = nn.RMSNorm(h)
        self.lm_head = nn.Linear(h, vocab, bias=False)

    def forward(self, ids):
        x = self.embed_tokens(ids)
        b = self.block
        x = x + b.o_proj(b.kv_b_proj(b.q_b_proj(b.input_layernorm(x))))
        x = x + b.shared_experts["down_proj"](b.shared_experts["gate_proj"](x)) + b.gate(x).sum(-1, keepdim=True)
        x = x + torch.einsum("bth,eih->bti", x, b.experts_gate_up)[..., :16]
        return self.lm_head(self.norm(x))


def test_grouping_rules_keep_embeddings_head_norms_out_of_muon():
    kinds = {n: k for n, (k, _) in assign_optimizers(Net()).items()}
    assert kinds == {
        "embed_tokens.weight": "adamw", "norm.weight": "adamw", "lm_head.weight": "adamw",
        "block.input_layernorm.weight": "adamw", "block.o_proj.bias": "adamw",
        "block.q_b_proj.weight": "muon", "block.kv_b_proj.weight": "muon", "block.o_proj.weight": "muon",
        "block.gate.weight": "muon", "block.experts_gate_up": "muon",
        "block.shared_experts.gate_proj.weight": "muon", "block.shared_experts.down_proj.weight": "muon",
    }
    assert assign_optimizers(Net(), router_gate="adamw")["block.gate.weight"][0] == "adamw"
    groups = param_groups(Net(), lr=1e-3, weight_decay=0.1)
    assert [g["use_muon"] for g in groups] == [True, False]
    assert groups[1]["betas"] == (0.9, 0.95) and groups[1]["eps"] == 1e-8 and groups[1]["weight_decay"] == 0.1
    names = [n for g in groups for n, _ in g["params"]]
    assert not any("correction_bias" in n for n in names)  # the routing bias is a buffer, never optimised


def test_grouping_and_group_validation_errors():
    net = Net()
    net.block.bad_correction_bias = nn.Parameter(torch.zeros(4))
    with pytest.raises(ValueError, match="block.bad_correction_bias.*router bias"):
        assign_optimizers(net)
    with pytest.raises(ValueError, match="needs use_muon"):
        MuonClip(Net().parameters())
    with pytest.raises(ValueError, match="'block.input_layernorm.weight' with shape \\(16,\\)"):
        MuonClip([{"params": list(Net().named_parameters()), "use_muon": True}])
    bad_split = [{"params": [torch.nn.Parameter(torch.zeros(2, 5, 4))], "use_muon": True, "muon_split": [2]}]
    with pytest.raises(ValueError, match="muon_split=2 .* does not divide its 5 rows"):
        MuonClip(bad_split)
    with pytest.raises(ValueError, match="invalid MuonClip"):
        MuonClip(param_groups(Net(), 1e-3, 0.1), momentum=1.0)


def test_adamw_groups_equal_torch_adamw():
    torch.manual_seed(3)
    ours, ref = Net(), Net()
    ref.load_state_dict(ours.state_dict())
    init = {n: p.detach().clone() for n, p in ours.named_parameters()}
    opt = MuonClip.from_model(ours, lr=3e-3, weight_decay=0.1)
    adamw_names = {n for g in opt.param_groups if not g["use_muon"] for n in g["param_names"]}
    ref_params = dict(ref.named_parameters())
    ref_opt = torch.optim.AdamW([ref_params[n] for n in sorted(adamw_names)], lr=3e-3, betas=(0.9, 0.95),
                                eps=1e-8, weight_decay=0.1, foreach=False)
    ours_params = dict(ours.named_parameters())
    for _ in range(4):  # the same gradients for both (the Muon half of `ours` would change a real forward)
        for n, p in ours_params.items():
            p.grad = torch.randn_like(p)
            ref_params[n].grad = p.grad.clone()
        opt.step()
        ref_opt.step()
    for n in adamw_names:
        torch.testing.assert_close(ours_params[n], ref_params[n], rtol=1e-6, atol=1e-7)
        assert not torch.equal(ours_params[n], init[n])


def test_scheduler_drives_group_lr():
    torch.manual_seed(4)
    net = Net()
    opt = MuonClip.from_model(net, lr=1e-2, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.0)
    before = [p.detach().clone() for p in net.parameters()]
    net(torch.randint(0, 40, (2, 5))).sum().backward()
    opt.step()
    sched.step()
    # lr 0 from the scheduler: neither the update nor the decoupled weight decay may move anything
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def _train(model, opt, batches):
    for ids in batches:
        opt.zero_grad()
        model(ids).logsumexp(-1).mean().backward()
        opt.step()


def test_state_dict_resume_is_bit_exact():
    torch.manual_seed(5)
    batches = [torch.randint(0, 40, (2, 6)) for _ in range(4)]
    model = Net()
    opt = MuonClip.from_model(model, lr=5e-3, weight_decay=0.1, nesterov=True)
    _train(model, opt, batches[:2])
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    _train(model, opt, batches[2:])

    buf.seek(0)
    ckpt = torch.load(buf)
    resumed = Net()
    resumed.load_state_dict(ckpt["model"])
    opt2 = MuonClip.from_model(resumed, lr=5e-3, weight_decay=0.1, nesterov=True)
    opt2.load_state_dict(ckpt["opt"])
    _train(resumed, opt2, batches[2:])
    for (n, a), b in zip(model.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), n
