"""trainer.loop on a real packed corpus with the tiny model on CPU: bit-exact resume, the WSD schedule, metrics
and plots, NaN handling (fault injected by a named subclass), and bad input refused before the first step."""
import json
import math

import pytest
import torch

from tests.trainer.test_data import VOCAB, build_corpus
from trainer import checkpoint
from trainer.config import ConfigError
from trainer.data import DataError
from trainer.launch import run_train
from trainer.loop import Trainer, TrainingError, lr_at
from trainer.metrics import read_metrics
from trainer.spec import TrainSpec


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("loop"))


def _spec(manifest, out, **kw):
    base = dict(manifest=str(manifest), output=str(out), model={"vocab_size": VOCAB}, steps=10, warmup_steps=3,
                decay_steps=4, lr=3e-3, micro_batch_size=2, grad_accum=2, seq_len=32, cpu_threads=1, plots=False,
                eval_batches=2)
    base.update(kw)
    return TrainSpec(**base)


def test_interrupted_and_resumed_run_matches_uninterrupted_bit_for_bit(manifest, tmp_path):
    full = run_train(_spec(manifest, tmp_path / "full"))
    first = run_train(_spec(manifest, tmp_path / "split", stop_at_step=5))
    assert first["step"] == 5 and not first["finished"]
    second = run_train(_spec(manifest, tmp_path / "split"))
    assert second["resumed_from"] == 5 and second["finished"]
    a = [r["loss"] for r in read_metrics(tmp_path / "full" / "metrics.jsonl", "train")]
    b = [r["loss"] for r in read_metrics(tmp_path / "split" / "metrics.jsonl", "train")]
    assert len(a) == 10 and a == b  # exact float equality, every step
    assert a[-1] < a[0]
    wa = checkpoint.load_model(checkpoint.latest(tmp_path / "full"))[0].state_dict()
    wb = checkpoint.load_model(checkpoint.latest(tmp_path / "split"))[0].state_dict()
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # the router biases moved (aux-loss-free balancing ran) and were restored with the rest
    biases = [k for k in wa if k.endswith("e_score_correction_bias")]
    assert biases and any(wa[k].abs().sum() > 0 for k in biases)
    assert full["eval_loss"] == second["eval_loss"]


def test_wsd_schedule():
    s = TrainSpec(manifest="m", output="o", steps=100, warmup_steps=10, decay_steps=20, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(1, s) == pytest.approx(0.1) and lr_at(10, s) == 1.0
    assert lr_at(11, s) == 1.0 and lr_at(80, s) == 1.0
    assert lr_at(90, s) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_at(100, s) == pytest.approx(0.1)
    lrs = [lr_at(i, s) for i in range(80, 101)]
    assert all(x >= y for x, y in zip(lrs, lrs[1:]))
    k2 = TrainSpec(manifest="m", output="o", steps=3000)  # defaults: K2's 300 warm-up steps, decay to 0.1x
    assert lr_at(299, k2) < k2.lr and lr_at(300, k2) == k2.lr and lr_at(3000, k2) == pytest.approx(0.1 * k2.lr)
    short = TrainSpec(manifest="m", output="o", steps=100)  # default warm-up: at most 10% of a short run
    assert short.warmup == 10 and lr_at(10, short) == short.lr and lr_at(100, short) < short.lr
    # a warm-up that eats the whole run would drop the decay phase: refused, naming the parameter
    with pytest.raises(ValueError, match=r"warmup_steps=100 must be < steps=100"):
        TrainSpec(manifest="m", output="o", steps=100, warmup_steps=100)


def test_metrics_plots_and_checkpoint_rotation(manifest, tmp_path):
    res = run_train(_spec(manifest, tmp_path / "r", steps=4, ckpt_every=1, keep_last=2, eval_every=2,
                          plots=True))
    rows = read_metrics(tmp_path / "r" / "metrics.jsonl")
    train = [r for r in rows if r["type"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if r["type"] == "eval"] == [2, 4]
    r = train[-1]
    assert len(r["max_logit"]) == 3 and len(r["heads_clipped"]) == 3 and len(r["expert_imbalance"]) == 2
    assert r["tokens"] == 4 * 2 * 2 * 32 and r["tokens_per_s"] > 0 and r["mfu"] is None  # no MFU on CPU
    assert all(math.isfinite(x) for x in r["max_logit"]) and all(x >= 1.0 for x in r["expert_imbalance"])
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "r")] == ["step-00000003", "step-00000004"]
    for name in ("loss.png", "max_logits.png", "expert_load.png"):
        assert (tmp_path / "r" / name).read_bytes()[:4] == b"\x89PNG"
    assert res["eval_loss"] is not None and (tmp_path / "r" / "spec.yaml").exists()


class NaNInjectingTrainer(Trainer):
    """Fault injection: poisons one weight with inf just before the forward of step `bad_step`."""

    bad_step = 3

    def _local_batch(self):
        if self.step + 1 == self.bad_step:
            with torch.no_grad():
                self.model.model.layers[0].mlp.up_proj.weight[0, 0] = float("inf")
        return super()._local_batch()


def test_non_finite_loss_stops_naming_the_step_and_saves_nothing_broken(manifest, tmp_path):
    t = NaNInjectingTrainer(_spec(manifest, tmp_path / "nan", ckpt_every=1))
    with pytest.raises(TrainingError, match="step 3: non-finite"):
        t.fit()
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "nan")] == ["step-00000001", "step-00000002"]
    sd = checkpoint.load_model(checkpoint.latest(tmp_path / "nan"))[0].state_dict()
    assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())
    assert max(r["step"] for r in read_metrics(tmp_path / "nan" / "metrics.jsonl")) == 2


def test_bad_input_is_refused_before_training(manifest, tmp_path):
    with pytest.raises(ValueError, match="seq_len=32 exceeds the model's max_position_embeddings=16"):
        run_train(_spec(manifest, tmp_path / "a", model={"vocab_size": VOCAB, "max_position_embeddings": 16}))
    with pytest.raises(ConfigError, match="num_experts_per_tok=9 exceeds n_routed_experts=8"):
        run_train(_spec(manifest, tmp_path / "b", model={"vocab_size": VOCAB, "num_experts_per_tok": 9}))
    with pytest.raises(DataError, match="token id .* >= model vocab_size 256"):
        run_train(_spec(manifest, tmp_path / "c", model={"vocab_size": 256}))
    run_train(_spec(manifest, tmp_path / "d", steps=1, warmup_steps=0, decay_steps=None))
    with pytest.raises(checkpoint.CheckpointError, match="another model config.*num_attention_heads"):
        run_train(_spec(manifest, tmp_path / "d", steps=2, warmup_steps=0, decay_steps=None,
                        model={"vocab_size": VOCAB, "num_attention_heads": 2}))
    with pytest.raises(ValueError, match="already holds checkpoints"):
        run_train(_spec(manifest, tmp_path / "d", steps=2, warmup_steps=0, decay_steps=None, resume=False))
    # more steps than the manifest allots: refused before training, naming steps and what would fit
    with pytest.raises(DataError, match=r"steps=200 x 4 samples per step = 800 samples .* allots 623 .* "
                                        r"lower steps to 155.*past_budget: repeat"):
        run_train(_spec(manifest, tmp_path / "e", steps=200))
    for bad in ("a", "b", "c", "e"):
        assert not (tmp_path / bad / "checkpoints").exists() and not (tmp_path / bad / "metrics.jsonl").exists()


def test_summary_is_json(manifest, tmp_path):
    res = run_train(_spec(manifest, tmp_path / "s", steps=1, warmup_steps=0, decay_steps=None, doc_mask=False,
                          grad_accum=1))
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["step"] == res["step"] == 1
    # consumed vs planned per source, from the manifest: one step of 2 sequences of 32 tokens
    plan = {s["name"]: s for s in json.loads(manifest.read_text())["sources"]}
    assert set(res["data"]) == set(plan) and sum(d["consumed_tokens"] for d in res["data"].values()) == 2 * 32
    assert all(d["planned_epochs"] == plan[n]["epochs"] for n, d in res["data"].items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bf16 autocast, FlexAttention)")
def test_cuda_bf16_steps_report_mfu(manifest, tmp_path):
    res = run_train(_spec(manifest, tmp_path / "gpu", steps=3, decay_steps=None, device="cuda"))
    rows = read_metrics(tmp_path / "gpu" / "metrics.jsonl", "train")
    assert res["device"].startswith("cuda") and all(math.isfinite(r["loss"]) for r in rows)
    assert all(r["mfu"] is None or 0 < r["mfu"] < 1 for r in rows)


def test_mtp_trains_with_the_model(manifest, tmp_path):
    from trainer.model import K2ForCausalLM
    from trainer.muonclip import assign_optimizers
    spec = _spec(manifest, tmp_path / "mtp", steps=4, warmup_steps=1, decay_steps=None,
                 model={"vocab_size": VOCAB, "num_nextn_predict_layers": 1})
    t = Trainer(spec)
    res = t.fit()
    rows = read_metrics(tmp_path / "mtp" / "metrics.jsonl", "train")
    assert res["step"] == 4 and all(math.isfinite(r["mtp_loss"]) and r["mtp_loss"] > 0 for r in rows)
    # the MTP module is optimised (Muon for its matrices, AdamW for its norms), QK-Clipped and balanced
    kinds = assign_optimizers(t.model)
    assert kinds["model.mtp_layers.0.eh_proj.weight"][0] == "muon"
    assert kinds["model.mtp_layers.0.enorm.weight"][0] == "adamw"
    assert "model.mtp_layers.0.self_attn" in [n for n, _ in t.optimizer.qk_clip_layers]
    assert len(t.model.moe_layers()) == t.cfg.n_moe_layers + 1
    torch.manual_seed(spec.seed)
    init = K2ForCausalLM(t.cfg).state_dict()
    trained = checkpoint.load_model(checkpoint.latest(tmp_path / "mtp"))[0].state_dict()
    mtp_keys = [k for k in trained if k.startswith("model.mtp_layers.0.") and trained[k].is_floating_point()]
    assert mtp_keys and all(not torch.equal(trained[k], init[k]) for k in mtp_keys if "bias" not in k)
