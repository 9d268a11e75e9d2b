"""Sharded training state on CPU gloo ranks (FSDP2 DTensors), each checked against one process:

- a model built on the meta device, sharded, then initialised holds exactly the weights of an unsharded init;
- distributed Muon (experts orthogonalised where they live, 2-D matrices by an owner rank via all_to_all)
  gives the single-process MuonClip step bit for bit;
- a torch.distributed.checkpoint written by 2 ranks loads on 4 ranks and on 1 process (resharded), model
  and optimizer state equal to the single-process state, and the 4 ranks' own save loads back on 1 process.
"""
import json
import zlib

import pytest
import torch

from trainer import checkpoint
from trainer.config import preset
from trainer.model import K2ForCausalLM
from trainer.muonclip import MuonClip
from tests.trainer.gloo import gloo_group

CFG = dict(vocab_size=96, n_routed_experts=6)  # 6 experts: 3 per rank at 2 ranks, uneven (2,2,2,0) at 4
STEPS = 2


def _grads(named, step):
    """Deterministic full-size gradients per parameter name and step (the same on every rank)."""
    out = {}
    for name, p in named:
        g = torch.Generator().manual_seed(zlib.crc32(f"{name}/{step}".encode()))  # not hash(): per-process salt
        out[name] = torch.randn(p.shape, generator=g) * 0.01
    return out


def _reference(steps=STEPS):
    """One process: seeded init, `steps` MuonClip steps on the deterministic gradients."""
    model = K2ForCausalLM(preset("tiny", **CFG), seed=7)
    opt = MuonClip.from_model(model, lr=1e-2, weight_decay=0.1)
    for step in range(steps):
        for name, g in _grads(model.named_parameters(), step).items():
            dict(model.named_parameters())[name].grad = g
        opt.step()
    return model, opt


def _sharded(seed):
    from torch.distributed.fsdp import fully_shard
    with torch.device("meta"):
        model = K2ForCausalLM(preset("tiny", **CFG), init_weights=False)
    for block in model.blocks():
        fully_shard(block)
    fully_shard(model)
    model.to_empty(device="cpu")
    model.init_weights(seed)
    return model, MuonClip.from_model(model, lr=1e-2, weight_decay=0.1)


def _state_of(model, opt):
    """Full (unsharded) weights and optimizer tensors keyed by parameter name."""
    full = (lambda t: t.full_tensor() if hasattr(t, "full_tensor") else t)
    names = {id(p): n for n, p in model.named_parameters()}
    weights = {n: full(p.detach()).clone() for n, p in model.named_parameters()}
    optim = {f"{names[id(p)]}/{k}": full(v).clone() for p, st in opt.state.items() for k, v in st.items()
             if torch.is_tensor(v)}
    return weights, optim


def _max_diff(a, b):
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))[:5]
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def _sharded_steps(model, opt, steps):
    from torch.distributed.tensor import distribute_tensor
    params = dict(model.named_parameters())
    for step in steps:
        for name, g in _grads(model.named_parameters(), step).items():
            p = params[name]
            p.grad = distribute_tensor(g, p.device_mesh, p.placements)
        opt.step()


def _worker(rank, world, init_file, out, ckpt_dir, mode):
    with gloo_group(rank, world, init_file):
        ref_model, ref_opt = _reference()
        ref_w, ref_o = _state_of(ref_model, ref_opt)
        res = {}
        if mode == "train":  # world 2: meta init, distributed Muon, sharded save
            model, opt = _sharded(seed=7)
            init_w, _ = _state_of(model, opt)
            fresh = K2ForCausalLM(preset("tiny", **CFG), seed=7).state_dict()
            res["init_equal"] = all(torch.equal(init_w[n], fresh[n]) for n in init_w)
            _sharded_steps(model, opt, range(STEPS))
            w, o = _state_of(model, opt)
            res["weights_diff"], res["optim_diff"] = _max_diff(w, ref_w), _max_diff(o, ref_o)
            res["bit_identical"] = all(torch.equal(w[k], ref_w[k]) for k in w)
            meta = {"model_config": preset("tiny", **CFG).to_dict(), "preset": "tiny"}
            checkpoint.save(ckpt_dir, STEPS, model, opt, meta, keep_last=3, rank=rank)
        else:  # world 4: load the 2-rank checkpoint into another init, compare, save again at 4 ranks
            model, opt = _sharded(seed=99)
            checkpoint.load(checkpoint.latest(ckpt_dir), model, opt)
            w, o = _state_of(model, opt)
            res["weights_diff"], res["optim_diff"] = _max_diff(w, ref_w), _max_diff(o, ref_o)
            res["bit_identical"] = all(torch.equal(w[k], ref_w[k]) for k in w) and \
                all(torch.equal(o[k], ref_o[k]) for k in o)
            meta = {"model_config": preset("tiny", **CFG).to_dict(), "preset": "tiny"}
            checkpoint.save(ckpt_dir, STEPS + 1, model, opt, meta, keep_last=3, rank=rank)
            # one more step at 4 ranks (experts sharded 2, 2, 2, 0) == one more single-process step
            _sharded_steps(model, opt, [STEPS])
            w, _ = _state_of(model, opt)
            res["next_step_bit_identical"] = all(torch.equal(w[k], v) for k, v in
                                                 _state_of(*_reference(STEPS + 1))[0].items())
        if rank == 0:
            with open(out, "w") as f:
                json.dump(res, f)


def _spawn(tmp_path, world, mode):
    import torch.multiprocessing as mp
    out = tmp_path / f"{mode}.json"
    mp.spawn(_worker, args=(world, str(tmp_path / f"init-{mode}"), str(out), str(tmp_path / "run"), mode),
             nprocs=world, join=True)
    return json.loads(out.read_text())


@pytest.mark.slow
def test_sharded_init_muon_and_checkpoint_match_one_process(tmp_path):
    two = _spawn(tmp_path, 2, "train")
    assert two["init_equal"], two  # meta -> shard -> init == unsharded init, bit for bit
    # distributed Muon == the single-process step: same full matrices, same ops
    assert two["bit_identical"] and two["weights_diff"] == 0.0 and two["optim_diff"] == 0.0, two
    four = _spawn(tmp_path, 4, "reshard")  # the 2-rank checkpoint, loaded by 4 ranks
    assert four["bit_identical"] and four["weights_diff"] == 0.0 and four["optim_diff"] == 0.0, four
    assert four["next_step_bit_identical"], four
    ref_model, ref_opt = _reference()
    ref_w, ref_o = _state_of(ref_model, ref_opt)
    for step in (STEPS, STEPS + 1):  # saved by 2 ranks, and by 4 ranks: both load in one process
        model = K2ForCausalLM(preset("tiny", **CFG), seed=1)
        opt = MuonClip.from_model(model, lr=1e-2, weight_decay=0.1)
        checkpoint.load(checkpoint.ckpt_root(tmp_path / "run") / f"step-{step:08d}", model, opt)
        w, o = _state_of(model, opt)
        assert _max_diff(w, ref_w) == 0.0 and _max_diff(o, ref_o) == 0.0
