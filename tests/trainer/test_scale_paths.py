"""Scale paths of the loop: chunked cross-entropy (exact against the full-logits CE), the FSDP2 mixed-precision
policy (bf16 compute, fp32 reduction and master weights; 2 gloo ranks), and the step-end GPU sync being opt-in."""
import os

import pytest
import torch
import torch.nn.functional as F

from trainer.config import preset
from trainer.distributed import mixed_precision
from trainer.loop import sync_step_end
from trainer.model import K2ForCausalLM, chunked_cross_entropy
from trainer.spec import TrainSpec
from tests.trainer.gloo import gloo_group

VOCAB = 256


def _grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("chunk", [1, 3, 7, 10, 64, 1000])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("ignore", [False, True])
def test_chunked_ce_equals_full_ce_and_grads(chunk, reduction, ignore):
    g = torch.Generator().manual_seed(chunk)
    head = torch.nn.Linear(16, 97, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(97, 16, generator=g))
    h = torch.randn(3, 21, 16, generator=g)  # 63 tokens: no chunk size above divides it evenly except 1, 3, 7
    y = torch.randint(0, 97, (3, 21), generator=g)
    if ignore:
        y[0, :5] = -100
        y[2, 11:] = -100
    results = []
    for chunked in (False, True):
        head.zero_grad()
        hh = h.clone().requires_grad_(True)
        loss = (chunked_cross_entropy(head, hh, y, chunk, reduction) if chunked else
                F.cross_entropy(head(hh).float().flatten(0, 1), y.flatten(), ignore_index=-100,
                                reduction=reduction))
        loss.backward()
        results.append((loss.detach(), hh.grad, head.weight.grad.clone()))
    (l0, gh0, gw0), (l1, gh1, gw1) = results
    def close(a, b):  # fp32: within 1e-6 of the reference's magnitude (at least 1)
        return (a - b).abs().max().item() <= 1e-6 * max(1.0, a.abs().max().item())
    assert close(l0, l1) and close(gh0, gh1) and close(gw0, gw1)
    assert gh1[0, :5].abs().max().item() == 0.0 if ignore else True  # ignored targets get no gradient


def test_chunked_ce_all_ignored_is_nan_like_torch_and_bad_args():
    head = torch.nn.Linear(4, 5, bias=False)
    h, y = torch.randn(6, 4), torch.full((6,), -100)
    assert torch.isnan(chunked_cross_entropy(head, h, y, 4)) and torch.isnan(F.cross_entropy(head(h), y))
    with pytest.raises(ValueError, match="reduction"):
        chunked_cross_entropy(head, h, y, 4, reduction="none")
    with pytest.raises(ValueError, match="chunk_tokens"):
        chunked_cross_entropy(head, h, y, 0)
    with pytest.raises(ValueError, match="loss_chunk_tokens"):
        K2ForCausalLM(preset("tiny", vocab_size=VOCAB)).set_loss_chunking(-1)


@pytest.mark.parametrize("padded", [False, True])
def test_model_chunked_loss_equals_full_logits_with_mtp(padded):
    """LM + MTP + balance loss through the model: same loss and every parameter gradient, logits never built."""
    torch.manual_seed(0)
    model = K2ForCausalLM(preset("tiny", vocab_size=VOCAB, num_nextn_predict_layers=1, seq_aux_alpha=1e-2)).train()
    ids = torch.randint(0, VOCAB, (2, 19), generator=torch.Generator().manual_seed(1))
    labels, mask = ids.clone(), None
    if padded:
        mask = torch.ones_like(ids)
        mask[1, :6] = 0
        labels[1, :6] = -100
    runs = []
    for chunk in (0, 5):
        model.set_loss_chunking(chunk)
        model.zero_grad()
        out = model(ids, labels=labels, attention_mask=mask)
        out.loss.backward()
        runs.append((out, _grads(model)))
    (full, g0), (chunked, g1) = runs
    assert chunked.logits is None and chunked.mtp_logits is None and full.logits.shape == (2, 19, VOCAB)
    for key in ("loss", "lm_loss", "mtp_loss"):
        # equal up to fp32 summation order (chunks add in another order): a few ulp of the loss, not an absolute
        # 1e-6 (a loss of 7.2 is 2 ulp from 7.2 + 1e-6; CI saw 1.4e-6, 3 ulp)
        bound = 4 * torch.finfo(torch.float32).eps * max(1.0, abs(full[key].item()))
        assert (full[key] - chunked[key]).abs().item() <= bound, key
    assert g0.keys() == g1.keys() and len(g0) == len(list(model.parameters()))
    worst = max((g0[n] - g1[n]).abs().max().item() for n in g0)
    assert worst <= 1e-6
    # and the reference really is the plain CE of the full logits
    ref = F.cross_entropy(full.logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
    assert (ref - full.lm_loss).abs().item() == 0.0


def test_loop_loss_with_targets_chunked_equals_full():
    from trainer.loop import window_loss
    torch.manual_seed(0)
    model = K2ForCausalLM(preset("tiny", vocab_size=VOCAB, num_nextn_predict_layers=1)).train()
    toks = torch.randint(0, VOCAB, (2, 17), generator=torch.Generator().manual_seed(2))
    docs = torch.tensor([[0] * 9 + [1] * 8, [2] * 17])
    out = []
    for chunk in (0, 7):
        model.set_loss_chunking(chunk)
        for reduction in ("mean", "sum"):
            with torch.no_grad():
                o = window_loss(model, toks, docs, torch.device("cpu"), reduction=reduction)
            out.append((o.lm_loss.item(), o.loss.item(), o.mtp_loss.item()))
    assert out[0] == pytest.approx(out[2], abs=1e-6) and out[1] == pytest.approx(out[3], rel=1e-6)


def test_spec_defaults_and_mixed_precision_policy():
    from torch.distributed.fsdp import MixedPrecisionPolicy
    spec = TrainSpec(manifest="m.json", output="o")
    assert spec.loss_chunk_tokens == 4096 and spec.fsdp_mixed_precision == "auto" and not spec.sync_timing
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    pol = mixed_precision("auto", cuda)
    assert isinstance(pol, MixedPrecisionPolicy)
    assert pol.param_dtype == torch.bfloat16 and pol.reduce_dtype == torch.float32 and not pol.cast_forward_inputs
    assert mixed_precision("auto", cpu) is None and mixed_precision("off", cuda) is None
    assert mixed_precision("bf16", cpu).param_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fsdp_mixed_precision"):
        mixed_precision("fp16", cuda)


def test_step_end_sync_only_when_timing_is_requested():
    spec = TrainSpec(manifest="m.json", output="o")
    cuda = torch.device("cuda", 0)
    assert not sync_step_end(spec, cuda) and not sync_step_end(spec, torch.device("cpu"))
    timed = spec.model_copy(update={"sync_timing": True})
    assert sync_step_end(timed, cuda) and not sync_step_end(timed, torch.device("cpu"))


# ------------------------------------------------------------------------------------ FSDP2 mixed precision
def _mp_worker(rank, world, init, out):
    import torch.distributed as dist
    from trainer import distributed
    with gloo_group(rank, world, init):
        with torch.device("meta"):
            model = K2ForCausalLM(preset("tiny", vocab_size=VOCAB), init_weights=False)
        distributed.shard(model, distributed.mixed_precision("bf16", torch.device("cpu")))
        model.to_empty(device="cpu")
        model.init_weights(0)
        model.set_loss_chunking(16)
        seen = {}
        for name in ("lm_head", "model.layers.0.self_attn.o_proj", "model.layers.1.mlp"):
            def record(mod, args, output, name=name):  # the parameters a forward really computes with
                seen.setdefault(name, sorted({str(p.dtype) for p in mod.parameters()}))  # MoE: gate + experts
            model.get_submodule(name).register_forward_hook(record)
        policies = {str(m._get_fsdp_state()._mp_policy) for m in [model, *model.blocks()]}
        from trainer.muonclip import MuonClip
        opt = MuonClip.from_model(model, lr=3e-3, weight_decay=0.0, qk_clip_tau=100.0)
        g = torch.Generator().manual_seed(0)
        batch = torch.randint(0, VOCAB, (4, 25), generator=g)  # the same batch every step: loss must fall
        mine = batch[2 * rank:2 * rank + 2]
        losses, grad_dtypes = [], set()
        for _ in range(6):
            out_ = model(mine[:, :-1], targets=mine[:, 1:])
            out_.loss.backward()
            grad_dtypes |= {p.grad.dtype for p in model.parameters()}
            opt.step()
            opt.zero_grad(set_to_none=True)
            t = out_.lm_loss.detach().float().clone()
            dist.all_reduce(t)
            losses.append(float(t) / world)
        master = {p.dtype for p in model.parameters()}
        if rank == 0:
            import json
            with open(out, "w") as f:
                json.dump({"seen": seen, "policies": sorted(policies),
                           "grad_dtypes": sorted(str(d) for d in grad_dtypes),
                           "master": sorted(str(d) for d in master), "losses": losses}, f)


@pytest.mark.slow
def test_fsdp2_bf16_policy_two_gloo_ranks(tmp_path):
    """On CPU gloo: compute sees bf16 parameters, sharded gradients and master weights are fp32, it trains."""
    import json

    import torch.multiprocessing as mp
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = tmp_path / "mp.json"
    mp.spawn(_mp_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    res = json.loads(out.read_text())
    bf16 = ["torch.bfloat16"]
    assert res["seen"] == {"lm_head": bf16, "model.layers.0.self_attn.o_proj": bf16,
                           "model.layers.1.mlp": bf16}  # the root's head, an attention block, an MoE block
    assert len(res["policies"]) == 1 and "reduce_dtype=torch.float32" in res["policies"][0]
    assert res["grad_dtypes"] == ["torch.float32"] and res["master"] == ["torch.float32"]
    assert all(map(lambda x: x == x, res["losses"])) and res["losses"][-1] < res["losses"][0] - 0.5
