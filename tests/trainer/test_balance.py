"""Aux-loss-free balancing as an optimizer step post-hook (trainer/balance.py): the hook applies exactly the update
that a direct call after the step applies, on every step, and keeps the summed loads for the metrics."""
import torch

from trainer.balance import RouterBalancing, update_router_biases
from trainer.config import preset
from trainer.model import K2ForCausalLM
from trainer.muonclip import MuonClip

VOCAB = 128


def _model_and_opt():
    torch.manual_seed(0)
    model = K2ForCausalLM(preset("tiny", vocab_size=VOCAB), attn_impl="dense").train()
    return model, MuonClip.from_model(model, lr=1e-2)


def _biases(model):
    return torch.stack([m.gate.e_score_correction_bias.clone() for m in model.moe_layers()])


def test_post_hook_equals_a_direct_update_after_every_step():
    (hooked, opt_h), (plain, opt_p) = _model_and_opt(), _model_and_opt()
    balancer = RouterBalancing.attach(opt_h, hooked)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        ids = torch.randint(0, VOCAB, (2, 16), generator=g)
        for model, opt in ((hooked, opt_h), (plain, opt_p)):
            model(ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        loads = update_router_biases(plain)
        assert torch.equal(balancer.last_loads, loads) and loads.sum() > 0
        assert torch.equal(_biases(hooked), _biases(plain))
        assert all((m.expert_load == 0).all() for m in hooked.moe_layers())  # reset for the next step
    assert (_biases(hooked) != 0).any()
    balancer.handle.remove()  # detached: a step no longer touches the biases
    before = _biases(hooked)
    hooked(ids, labels=ids).loss.backward()
    opt_h.step()
    assert torch.equal(_biases(hooked), before)


def test_a_model_without_moe_layers_has_nothing_to_balance():
    model = K2ForCausalLM(preset("tiny", vocab_size=VOCAB, first_k_dense_replace=3))
    assert model.moe_layers() == [] and update_router_biases(model) is None
