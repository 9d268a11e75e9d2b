"""Model behaviour against naive references: masks, RoPE, MLA, routing, grouped experts, max logits, training."""
import math

import pytest
import torch
import torch.nn.functional as F

from trainer.balance import update_router_biases
from trainer.config import preset
from trainer.model import MLA, AttnMask, K2ForCausalLM
from trainer.moe import MoE, Router
from trainer.rope import apply_rope_interleaved, inv_frequencies, rope_cos_sin
from tests.trainer.gloo import gloo_group

VOCAB = 256


def make_model(seed=0, **overrides):
    torch.manual_seed(seed)
    model = K2ForCausalLM(preset("tiny", vocab_size=VOCAB, **overrides))
    with torch.no_grad():  # non-trivial routing bias so the bias path matters
        for moe in model.moe_layers():
            moe.gate.e_score_correction_bias.normal_(0, 0.05)
    return model


def test_shapes_and_shifted_loss():
    model = make_model().eval()
    ids = torch.randint(0, VOCAB, (2, 12))
    labels = ids.clone()
    labels[0, 5] = -100
    out = model(ids, labels=labels)
    assert out.logits.shape == (2, 12, VOCAB)
    ref = F.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(out.loss, ref)
    assert out["loss"] is out.loss and out.aux_loss is None


def test_causality_future_tokens_do_not_change_past_logits():
    model = make_model().eval()
    ids = torch.randint(0, VOCAB, (1, 16))
    changed = ids.clone()
    changed[0, 10:] = (changed[0, 10:] + 7) % VOCAB
    a, b = model(ids).logits, model(changed).logits
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-6)
    assert not torch.allclose(a[:, 10:], b[:, 10:], atol=1e-3)


def test_document_masking_isolates_documents():
    model = make_model().eval()
    doc_a, doc_b = torch.randint(0, VOCAB, (1, 7)), torch.randint(0, VOCAB, (1, 9))
    packed = torch.cat([doc_a, doc_b], dim=1)
    doc_ids = torch.tensor([[0] * 7 + [1] * 9])
    packed_logits = model(packed, doc_ids=doc_ids).logits
    # RoPE is relative, so doc B at offset 7 must see exactly what it sees alone.
    assert torch.allclose(packed_logits[:, 7:], model(doc_b).logits, atol=1e-5)
    assert torch.allclose(packed_logits[:, :7], model(doc_a).logits, atol=1e-5)
    without_mask = model(packed).logits
    assert not torch.allclose(without_mask[:, 7:], packed_logits[:, 7:], atol=1e-3)


def test_left_padding_is_ignored():
    model = make_model().eval()
    real = torch.randint(0, VOCAB, (1, 8))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), real], dim=1)
    mask = torch.tensor([[0] * 3 + [1] * 8])
    out = model(padded, attention_mask=mask).logits
    assert torch.isfinite(out).all()
    assert torch.allclose(out[:, 3:], model(real).logits, atol=1e-5)


def naive_rope(x, positions, theta):
    """DeepSeek-V3 reference style: adjacent pairs as complex numbers times exp(i * pos * freq)."""
    d = x.shape[-1]
    freqs = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    out = torch.empty_like(x, dtype=torch.float64)
    for t, pos in enumerate(positions.tolist()):
        for p in range(d // 2):
            z = complex(x[..., t, 2 * p].item(), x[..., t, 2 * p + 1].item()) * complex(
                math.cos(pos * freqs[p]), math.sin(pos * freqs[p]))
            out[..., t, 2 * p], out[..., t, 2 * p + 1] = z.real, z.imag
    return out


def test_rope_interleaved_matches_naive_reference():
    torch.manual_seed(1)
    x = torch.randn(1, 1, 6, 8)
    positions = torch.arange(6) + 3
    inv_freq, factor = inv_frequencies(8, 50000.0, None)
    cos, sin = rope_cos_sin(inv_freq, factor, positions, torch.float32)
    ours = apply_rope_interleaved(x, cos[None], sin[None])
    assert torch.allclose(ours.double(), naive_rope(x[0, 0], positions, 50000.0)[None, None], atol=1e-5)


def test_yarn_changes_frequencies_and_softmax_scale():
    yarn = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "mscale": 1.0,
            "mscale_all_dim": 1.0}
    plain, scaled = make_model(), make_model(rope_scaling=yarn)
    assert not torch.allclose(plain.inv_freq, scaled.inv_freq)
    assert torch.allclose(plain.inv_freq[0], scaled.inv_freq[0])  # high frequencies are extrapolated as is
    m = 0.1 * math.log(4.0) + 1.0
    assert scaled.attention_layers()[0].softmax_scale == pytest.approx(24 ** -0.5 * m * m)
    assert plain.attention_layers()[0].softmax_scale == pytest.approx(24 ** -0.5)


def test_mla_shapes_and_one_shared_rope_key():
    c = preset("tiny")
    attn = make_model().attention_layers()[0]
    assert attn.kv_a_proj_with_mqa.out_features == c.kv_lora_rank + c.qk_rope_head_dim
    assert attn.q_b_proj.weight.shape == (c.num_attention_heads * c.qk_head_dim, c.q_lora_rank)
    assert attn.kv_b_proj.weight.shape == (c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim),
                                           c.kv_lora_rank)
    assert attn.max_logits.shape == (c.num_attention_heads,) and attn.max_logits.dtype == torch.float32
    assert "max_logits" not in attn.state_dict()
    no_lora = make_model(q_lora_rank=None).attention_layers()[0]
    assert hasattr(no_lora, "q_proj") and not hasattr(no_lora, "q_b_proj")


def reference_max_logits(attn: MLA, x, cos, sin, valid):
    """Brute force over pairs with the module's weights: signed max of scale * q_h,i . k_h,j over valid pairs."""
    b, t, _ = x.shape
    nh, dn, dr = attn.n_heads, attn.qk_nope_head_dim, attn.qk_rope_head_dim
    q = attn.q_b_proj(attn.q_a_layernorm(attn.q_a_proj(x))).view(b, t, nh, dn + dr)
    ckv, kr = attn.kv_a_proj_with_mqa(x).split([attn.kv_lora_rank, dr], -1)
    k_nope = attn.kv_b_proj(attn.kv_a_layernorm(ckv)).view(b, t, nh, -1)[..., :dn]
    best = torch.full((nh,), -math.inf)
    for bi in range(b):
        qr = apply_rope_interleaved(q[bi, :, :, dn:].transpose(0, 1)[None], cos, sin)[0]  # (H, T, dr)
        kr_b = apply_rope_interleaved(kr[bi][None, None], cos, sin)[0, 0]  # (T, dr)
        for h in range(nh):
            for i in range(t):
                for j in range(t):
                    if valid[bi, i, j]:
                        s = q[bi, i, h, :dn] @ k_nope[bi, j, h] + qr[h, i] @ kr_b[j]
                        best[h] = max(best[h], attn.softmax_scale * s.item())
    return best


def test_max_logits_match_brute_force_over_valid_pairs_only():
    model = make_model()
    attn = model.attention_layers()[0]
    with torch.no_grad():  # make future/cross-document logits large so counting them would be visible
        attn.q_b_proj.weight.mul_(8)
    torch.manual_seed(3)
    x = torch.randn(2, 9, 64)
    doc_ids = torch.tensor([[0] * 4 + [1] * 5, [0] * 9])
    token_valid = torch.tensor([[True] * 9, [False] * 2 + [True] * 7])
    mask = AttnMask(9, x.device, doc_ids=doc_ids, token_valid=token_valid)
    cos, sin = rope_cos_sin(model.inv_freq, 1.0, torch.arange(9), torch.float32)
    attn.train()
    with torch.no_grad():
        attn(x, cos[None], sin[None], mask)
    valid = mask.valid_pairs[:, 0]
    ref = reference_max_logits(attn, x, cos[None], sin[None], valid)
    assert torch.allclose(attn.max_logits, ref, atol=1e-4)
    everything = reference_max_logits(attn, x, cos[None], sin[None], torch.ones(2, 9, 9, dtype=torch.bool))
    assert (everything > ref + 1e-3).any()  # the masked pairs really held larger logits


def test_max_logits_running_max_training_only():
    model = make_model()
    ids = torch.randint(0, VOCAB, (2, 10))
    model.eval()
    model(ids)
    assert torch.isneginf(model.attention_layers()[0].max_logits).all()  # eval forwards record nothing
    model.train()
    model(ids[:1])
    first = model.attention_layers()[0].max_logits.clone()
    model(ids[1:])
    second = model.attention_layers()[0].max_logits
    assert torch.isfinite(first).all() and (second >= first).all()


def test_router_bias_changes_selection_but_not_gate_values():
    c = preset("tiny")
    router = Router(c)
    torch.manual_seed(0)
    with torch.no_grad():
        router.weight.normal_(0, 0.5)
    x = torch.randn(5, c.hidden_size)
    scores, idx, gates = router(x)
    with torch.no_grad():  # a large bias forces experts 6 and 7 whatever the scores say
        router.e_score_correction_bias[6:] = 10.0
    scores_b, idx_b, gates_b = router(x)
    assert torch.equal(scores, scores_b)
    assert (idx_b.sort(dim=-1).values == torch.tensor([6, 7])).all()
    assert not torch.equal(idx.sort(-1).values, idx_b.sort(-1).values)
    expected = scores[:, 6:] / scores[:, 6:].sum(-1, keepdim=True) * c.routed_scaling_factor
    assert torch.allclose(gates_b.gather(1, idx_b.argsort(-1)), expected)  # unbiased scores, normalised
    assert torch.allclose(gates_b.sum(-1), torch.full((5,), c.routed_scaling_factor))


def test_group_limited_routing_matches_brute_force():
    c = preset("tiny", n_routed_experts=16, n_group=4, topk_group=2, num_experts_per_tok=3)
    router = Router(c)
    torch.manual_seed(0)
    with torch.no_grad():
        router.weight.normal_(0, 1.0)
        router.e_score_correction_bias.normal_(0, 0.2)
    x = torch.randn(20, c.hidden_size)
    scores, idx, _ = router(x)
    biased = scores + router.e_score_correction_bias
    for n in range(20):
        groups = biased[n].view(4, 4)
        group_score = groups.topk(2).values.sum(-1)
        keep = set(group_score.topk(2).indices.tolist())
        allowed = [e for e in range(16) if e // 4 in keep]
        best = sorted(allowed, key=lambda e: -biased[n, e].item())[:3]
        assert sorted(idx[n].tolist()) == sorted(best)


def test_moe_grouped_path_equals_per_token_reference():
    model = make_model()
    moe: MoE = model.moe_layers()[0]
    x = torch.randn(2, 7, 64)
    y = moe(x)
    flat = x.reshape(-1, 64)
    _, idx, gates = moe.gate(flat)
    ref = torch.zeros_like(flat)
    for n in range(flat.shape[0]):
        ref[n] = moe.shared_experts(flat[n])
        for slot in range(idx.shape[1]):
            e = idx[n, slot]
            g, u = (moe.experts.gate_up_proj[e] @ flat[n]).chunk(2)
            ref[n] += gates[n, slot] * (moe.experts.down_proj[e] @ (F.silu(g) * u))
    assert torch.allclose(y.reshape(-1, 64), ref, atol=1e-5)


def test_bias_update_direction_and_reset():
    model = make_model()
    model.train()
    moe = model.moe_layers()[0]
    with torch.no_grad():
        for m in model.moe_layers():
            m.gate.e_score_correction_bias.zero_()
    model(torch.randint(0, VOCAB, (2, 16)))
    load = moe.expert_load.clone()
    assert load.sum() == 2 * 16 * preset("tiny").num_experts_per_tok
    gamma = 0.01
    loads = update_router_biases(model, gamma)
    assert torch.equal(loads[0], load)
    bias = moe.gate.e_score_correction_bias
    over, under = load > load.mean(), load < load.mean()
    assert over.any() and under.any()
    assert torch.allclose(bias[over], torch.full_like(bias[over], -gamma))
    assert torch.allclose(bias[under], torch.full_like(bias[under], gamma))
    assert torch.equal(bias[load == load.mean()], torch.zeros_like(bias[load == load.mean()]))
    assert (moe.expert_load == 0).all()
    assert bias.dtype == torch.float32 and "gate.e_score_correction_bias" not in dict(moe.named_parameters())


def test_sequence_aux_loss_matches_formula_and_joins_the_loss():
    model = make_model(seq_aux_alpha=1e-2)
    model.train()
    ids = torch.randint(0, VOCAB, (2, 10))
    out = model(ids, labels=ids)
    moe = model.moe_layers()[0]
    h = torch.randn(2, 10, 64)
    moe(h)
    scores, idx, _ = moe.gate(h.reshape(-1, 64))
    e, k, t = moe.n_experts, moe.top_k, 10
    expected = 0.0
    for b in range(2):
        s, chosen = scores.view(2, t, e)[b], idx.view(2, t, k)[b]
        f = torch.stack([(chosen == i).sum() * e / (k * t) for i in range(e)]).float()
        p = (s / s.sum(-1, keepdim=True)).mean(0)
        expected += 1e-2 * (f * p).sum() / 2
    assert torch.allclose(moe.aux_loss, expected)
    ce = F.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    assert torch.allclose(out.loss, ce + out.aux_loss) and out.aux_loss > 0


def test_loss_decreases_with_adamw_on_repeated_data():
    model = make_model()
    model.train()
    torch.manual_seed(5)
    ids = torch.randint(0, VOCAB, (2, 32))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        update_router_biases(model)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(p.grad is not None for n, p in model.named_parameters() if "experts" in n)


def test_qk_clip_row_layout_scales_exactly_one_head():
    """QK-Clip's row rule (q nope and k nope rows * sqrt(gamma), q rope rows * gamma, shared k_rope untouched)
    must scale head h's logits by gamma and leave the other heads bit for bit: checks the head-major layout."""
    from trainer.protocol import find_qk_clip_layers

    model = make_model()
    model.train()
    layers = find_qk_clip_layers(model)
    assert [name for name, _ in layers] == [f"model.layers.{i}.self_attn" for i in range(3)]
    attn = layers[0][1]
    ids = torch.randint(0, VOCAB, (2, 12))
    model(ids)
    before = attn.max_logits.clone()
    h, gamma = 2, 0.25
    nh, dn, dr, dv = attn.n_heads, attn.qk_nope_head_dim, attn.qk_rope_head_dim, attn.v_head_dim
    rope_key_before = attn.kv_a_proj_with_mqa.weight.clone()
    with torch.no_grad():
        qw = attn.q_b_proj.weight.view(nh, dn + dr, -1)  # head-major rows, each head [nope | rope]
        qw[h, :dn] *= gamma ** 0.5
        qw[h, dn:] *= gamma
        attn.kv_b_proj.weight.view(nh, dn + dv, -1)[h, :dn] *= gamma ** 0.5  # each head [k_nope | v]
        attn.max_logits.fill_(float("-inf"))
    model(ids)
    after = attn.max_logits
    assert torch.allclose(after[h], before[h] * gamma, rtol=1e-5)
    others = [i for i in range(nh) if i != h]
    assert torch.equal(after[others], before[others])
    assert torch.equal(attn.kv_a_proj_with_mqa.weight, rope_key_before)


def _dense_and_flex(device):
    torch.manual_seed(0)
    cfg = preset("tiny", vocab_size=VOCAB)
    dense = K2ForCausalLM(cfg, attn_impl="dense").to(device)
    flex = K2ForCausalLM(cfg, attn_impl="flex").to(device)
    flex.load_state_dict(dense.state_dict())
    ids = torch.randint(0, VOCAB, (2, 40), device=device)
    doc = torch.tensor([[0] * 15 + [1] * 25, [0] * 40], device=device)
    valid = torch.tensor([[1] * 40, [0] * 5 + [1] * 35], device=device)
    return dense, flex, dict(input_ids=ids, doc_ids=doc, attention_mask=valid)


@pytest.mark.slow
def test_flex_attention_masks_equal_dense_on_cpu():
    """The FlexAttention block mask (the CUDA path) applies the same causal/document/padding rule as the
    dense path. CPU flex runs inference only (and compiles for a minute), hence no_grad and `slow`."""
    dense, flex, batch = _dense_and_flex("cpu")
    dense.eval(), flex.eval()
    with torch.no_grad():
        a, b = dense(**batch).logits, flex(**batch).logits
    assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1, 5:], b[1, 5:], atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (FlexAttention max_scores is CUDA-only)")
def test_flex_max_logits_equal_dense_on_cuda():
    dense, flex, batch = _dense_and_flex("cuda")
    dense.train(), flex.train()
    a, b = dense(**batch), flex(**batch)
    assert torch.allclose(a.logits[0], b.logits[0], atol=1e-4)
    for d, f in zip(dense.attention_layers(), flex.attention_layers()):
        assert torch.allclose(d.max_logits, f.max_logits, atol=1e-4)


def test_bf16_model_keeps_routing_state_fp32():
    model = make_model().to(torch.bfloat16)
    moe, attn = model.moe_layers()[0], model.attention_layers()[0]
    assert model.lm_head.weight.dtype == torch.bfloat16
    assert moe.gate.e_score_correction_bias.dtype == torch.float32
    assert moe.expert_load.dtype == torch.float32 and attn.max_logits.dtype == torch.float32
    bias = moe.gate.e_score_correction_bias.clone()
    model.train()
    ids = torch.randint(0, VOCAB, (2, 12))
    out = model(ids, labels=ids)
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(attn.max_logits).all()
    update_router_biases(model, 0.001)
    changed = moe.gate.e_score_correction_bias - bias
    assert torch.allclose(changed.abs()[changed != 0], torch.tensor(0.001))  # fp32 steps, not bf16-rounded


def test_bad_inputs_name_the_argument():
    model = make_model().eval()
    ids = torch.randint(0, VOCAB, (2, 8))
    with pytest.raises(ValueError, match=r"doc_ids must have the shape of input_ids \(2, 8\), got \(2, 7\)"):
        model(ids, doc_ids=torch.zeros(2, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must have the shape"):
        model(ids, labels=ids[:, :4])
    with pytest.raises(ValueError, match="input_ids must be an integer tensor"):
        model(ids.float())
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=2048"):
        model(torch.zeros(1, 2049, dtype=torch.long))
    with pytest.raises(ValueError, match="attn_impl must be"):
        K2ForCausalLM(preset("tiny", vocab_size=VOCAB), attn_impl="sdpa")


def _bias_update_rank(rank, world, init_file, out_dir):
    with gloo_group(rank, world, init_file):
        model = make_model()  # same seed: same weights on both ranks
        model.train()
        torch.manual_seed(100 + rank)  # different data per rank
        model(torch.randint(0, VOCAB, (2, 16)))
        local = torch.stack([m.expert_load.clone() for m in model.moe_layers()])
        summed = update_router_biases(model, 0.01)
        bias = torch.stack([m.gate.e_score_correction_bias.clone() for m in model.moe_layers()])
        torch.save({"local": local, "summed": summed, "bias": bias}, f"{out_dir}/rank{rank}.pt")


@pytest.mark.slow
def test_bias_update_sums_loads_over_data_parallel_ranks(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_bias_update_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert not torch.equal(r0["local"], r1["local"])
    assert torch.equal(r0["summed"], r0["local"] + r1["local"]) and torch.equal(r1["summed"], r0["summed"])
    assert torch.equal(r0["bias"], r1["bias"])  # every rank applies the same update
    start = torch.stack([m.gate.e_score_correction_bias for m in make_model().moe_layers()])
    load = r0["summed"]
    assert torch.allclose(r0["bias"], start + 0.01 * torch.sign(load.mean(dim=1, keepdim=True) - load))


def test_activation_checkpointing_changes_nothing_but_memory():
    """Per-block recompute in backward: same loss, gradients, router loads (counted once) and max logits."""
    runs = []
    for ac in (False, True):
        torch.manual_seed(0)
        model = K2ForCausalLM(preset("tiny", vocab_size=VOCAB, num_nextn_predict_layers=1, seq_aux_alpha=1e-2))
        model.set_activation_checkpointing(ac)
        model.train()
        ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(1))
        docs = torch.tensor([[0] * 10 + [1] * 14, [0] * 24])
        out = model(ids, labels=ids, doc_ids=docs)
        out.loss.backward()
        runs.append((out.loss.detach(), {n: p.grad for n, p in model.named_parameters()},
                     [m.expert_load.clone() for m in model.moe_layers()],
                     [a.max_logits.clone() for a in model.attention_layers()]))
    (l0, g0, e0, m0), (l1, g1, e1, m1) = runs
    assert torch.equal(l0, l1) and g0.keys() == g1.keys() and all(torch.equal(g0[k], g1[k]) for k in g0)
    assert all(torch.equal(a, b) for a, b in zip(e0, e1)) and all(torch.equal(a, b) for a, b in zip(m0, m1))
    assert sum(float(e.sum()) for e in e1) == 2 * 24 * 2 * 2 + 2 * 23 * 2  # tokens x top-2, MTP block: T-1
