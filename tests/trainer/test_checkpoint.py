"""trainer.checkpoint: atomic save (a crash mid-write leaves no checkpoint and no temp dir), keep-last-N,
exact round trip of model/optimizer/RNG (sharded DCP format, and the earlier full-state format), load_model for
eval/export, and refusal of a checkpoint from another model config. Resharding across world sizes:
tests/trainer/test_sharded.py."""
import pytest
import torch

from trainer import checkpoint
from trainer.balance import update_router_biases
from trainer.config import preset
from trainer.model import K2ForCausalLM
from trainer.muonclip import MuonClip


def _trained(seed=0, **over):
    torch.manual_seed(seed)
    cfg = preset("tiny", vocab_size=128, **over)
    model = K2ForCausalLM(cfg, attn_impl="dense")
    opt = MuonClip.from_model(model, lr=1e-2)
    x = torch.randint(0, 128, (2, 17))
    model(x, labels=x).loss.backward()
    opt.step()
    update_router_biases(model)
    return cfg, model, opt


def test_round_trip_is_exact(tmp_path):
    cfg, model, opt = _trained()
    meta = {"model_config": cfg.to_dict(), "preset": "tiny"}
    path = checkpoint.save(tmp_path, 1, model, opt, meta, keep_last=3)
    rng_before = torch.get_rng_state()
    torch.rand(5)  # move the RNG; load must restore it
    _, model2, opt2 = _trained(seed=1)
    got = checkpoint.load(path, model2, opt2)
    assert got["step"] == 1 and torch.equal(torch.get_rng_state(), rng_before)
    sd1, sd2 = model.state_dict(), model2.state_dict()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    o1, o2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert o1.keys() == o2.keys()
    assert all(torch.equal(o1[k][n], o2[k][n]) for k in o1 for n in o1[k])


def test_earlier_full_state_format_still_loads(tmp_path):
    cfg, model, opt = _trained()
    path = checkpoint.ckpt_root(tmp_path) / "step-00000001"
    path.mkdir(parents=True)
    torch.save(model.state_dict(), path / "model.pt")
    torch.save(opt.state_dict(), path / "optim.pt")
    torch.save({"cpu": torch.get_rng_state()}, path / "rng.pt")
    import json
    (path / "meta.json").write_text(json.dumps({"format": checkpoint.CKPT_FORMAT, "step": 1,
                                                "model_config": cfg.to_dict(), "preset": "tiny"}))
    _, model2, opt2 = _trained(seed=1)
    checkpoint.load(path, model2, opt2)
    loaded, _ = checkpoint.load_model(path)
    sd1 = model.state_dict()
    assert all(torch.equal(sd1[k], v) for k, v in model2.state_dict().items())
    assert all(torch.equal(sd1[k], v) for k, v in loaded.state_dict().items())


def test_load_model_reads_the_sharded_format(tmp_path):
    cfg, model, opt = _trained()
    path = checkpoint.save(tmp_path, 1, model, opt, {"model_config": cfg.to_dict(), "preset": "tiny"}, 1)
    assert (path / "state").is_dir() and not (path / "model.pt").exists()
    loaded, meta = checkpoint.load_model(path)
    assert meta["step"] == 1 and all(torch.equal(model.state_dict()[k], v) for k, v in loaded.state_dict().items())


def test_crash_during_save_leaves_nothing(tmp_path, monkeypatch):
    cfg, model, opt = _trained()
    meta = {"model_config": cfg.to_dict(), "preset": "tiny"}
    checkpoint.save(tmp_path, 1, model, opt, meta, keep_last=3)
    real_save = torch.save

    def crashing_save(obj, f, *a, **k):  # fault injection: the disk "fails" after the sharded state is written
        if str(f).endswith("rng.pt"):
            raise OSError("injected: disk full")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="injected"):
        checkpoint.save(tmp_path, 2, model, opt, meta, keep_last=3)
    monkeypatch.undo()
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["step-00000001"]
    assert sorted(p.name for p in checkpoint.ckpt_root(tmp_path).iterdir()) == ["step-00000001"]


def test_keep_last(tmp_path):
    cfg, model, opt = _trained()
    meta = {"model_config": cfg.to_dict(), "preset": "tiny"}
    for step in range(1, 6):
        checkpoint.save(tmp_path, step, model, opt, meta, keep_last=2)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["step-00000004", "step-00000005"]
    assert checkpoint.latest(tmp_path).name == "step-00000005"
    assert checkpoint.latest(tmp_path / "nothing") is None


def test_other_config_is_refused(tmp_path):
    cfg, model, opt = _trained()
    path = checkpoint.save(tmp_path, 1, model, opt, {"model_config": cfg.to_dict(), "preset": "tiny"}, keep_last=1)
    meta = checkpoint.read_meta(path)
    checkpoint.check_compatible(path, meta, cfg.to_dict(), "tiny")
    other = preset("small").to_dict()
    with pytest.raises(checkpoint.CheckpointError, match="preset 'tiny', this run 'small'.*hidden_size"):
        checkpoint.check_compatible(path, meta, other, "small")
    (path / "meta.json").write_text("{not json")
    with pytest.raises(checkpoint.CheckpointError, match="unreadable meta.json"):
        checkpoint.read_meta(path)
