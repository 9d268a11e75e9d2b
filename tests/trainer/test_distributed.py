"""Data parallelism with real processes on CPU (gloo): torchrun + FSDP2, and Ray Train's TorchTrainer.

Both ranks must agree on every logged loss and on the final weights (QK-Clip max logits are all-reduced with
MAX, router loads with SUM, gradients averaged by FSDP2), a torchrun run interrupted and resumed from its
(unsharded) checkpoint must continue, and 2 ranks x 2 sequences must match 1 process x 4 sequences (every rank
draws the same global batch and keeps its slice) up to float reduction order.
"""
import json

import pytest

from tests.trainer.test_data import VOCAB, build_corpus
from trainer.data import DataError
from trainer.launch import run_train
from trainer.metrics import read_metrics
from trainer.spec import TrainSpec


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("dist"))


def _spec(manifest, out, **kw):
    base = dict(manifest=str(manifest), output=str(out), model={"vocab_size": VOCAB}, steps=4, warmup_steps=1,
                decay_steps=None, lr=3e-3, micro_batch_size=2, seq_len=32, cpu_threads=1, plots=False,
                eval_batches=1, qk_clip_tau=0.05)  # tiny tau: heads get clipped, so the clip path is exercised
    base.update(kw)
    return TrainSpec(**base)


def _ranks(out):
    return [json.loads((out / "ranks" / f"rank-{r}.json").read_text()) for r in (0, 1)]


def test_bad_input_fails_before_spawning_workers(manifest, tmp_path):
    with pytest.raises(DataError, match="vocab_size 100"):
        run_train(_spec(manifest, tmp_path / "x", model={"vocab_size": 100},
                        executor={"kind": "torchrun", "workers": 2}))
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_torchrun_fsdp2_two_ranks_agree_and_resume(manifest, tmp_path, monkeypatch):
    ex = {"kind": "torchrun", "workers": 2}
    monkeypatch.chdir(tmp_path)  # a relative output dir must reach the workers (they run in another cwd)
    first = run_train(_spec(manifest, "dp", stop_at_step=2, executor=ex))
    assert first["step"] == 2 and first["world_size"] == 2
    second = run_train(_spec(manifest, "dp", executor=ex))
    assert second["resumed_from"] == 2 and second["step"] == 4
    r0, r1 = _ranks(tmp_path / "dp")
    assert r0["losses"] == r1["losses"] and r0["weight_checksum"] == r1["weight_checksum"]
    rows = read_metrics(tmp_path / "dp" / "metrics.jsonl", "train")
    assert sum(r["heads_clipped_total"] for r in rows) > 0
    single = run_train(_spec(manifest, tmp_path / "one", micro_batch_size=4))
    a = [r["loss"] for r in rows]
    b = [r["loss"] for r in read_metrics(tmp_path / "one" / "metrics.jsonl", "train")]
    assert a == pytest.approx(b, abs=2e-3) and single["step"] == 4


@pytest.mark.slow
def test_ray_train_two_workers(manifest, tmp_path):
    import ray
    try:
        res = run_train(_spec(manifest, tmp_path / "ray", steps=2, executor={"kind": "ray", "workers": 2}))
    finally:
        ray.shutdown()
    assert res["world_size"] == 2 and res["step"] == 2
    r0, r1 = _ranks(tmp_path / "ray")
    assert r0["losses"] == r1["losses"] and r0["weight_checksum"] == r1["weight_checksum"]
