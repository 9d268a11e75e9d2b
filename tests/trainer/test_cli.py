"""`k2forge train` through the real root CLI: run from a YAML config with flag overrides, resume, eval,
export-hf (loaded back by transformers with the manifest's tokenizer), params, bench, and clear errors."""
import json

import pytest
import torch
import yaml
from click.testing import CliRunner

from api.cli import cli, main
from tests.trainer.test_data import VOCAB, build_corpus
from trainer import checkpoint


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("cli"))


def _invoke(*args):
    res = CliRunner().invoke(cli, ["--quiet", *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_run_eval_export(manifest, tmp_path):
    cfg = {"manifest": str(manifest), "output": str(tmp_path / "run"), "model": {"vocab_size": VOCAB},
           "steps": 3, "warmup_steps": 1, "lr": 3e-3, "micro_batch_size": 2, "seq_len": 32, "cpu_threads": 1,
           "plots": False}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))
    out = json.loads(_invoke("train", "run", "--config", str(tmp_path / "train.yaml"), "--stop-at-step", "2"))
    assert out["step"] == 2 and not out["finished"]
    out = json.loads(_invoke("train", "run", "--config", str(tmp_path / "train.yaml"), "--executor", "local"))
    assert out["step"] == 3 and out["resumed_from"] == 2 and out["finished"]
    ckpt = checkpoint.latest(tmp_path / "run")

    ev = json.loads(_invoke("train", "eval", str(ckpt), "--batch-size", "2", "--batches", "2"))
    assert ev["step"] == 3 and ev["eval_tokens"] == 2 * 2 * 32 and ev["eval_loss"] > 0

    exp = json.loads(_invoke("train", "export-hf", str(ckpt), str(tmp_path / "hf")))
    assert (tmp_path / "hf" / "tokenizer.json").exists() and exp["tokenizer"]
    from transformers import AutoTokenizer, DeepseekV3ForCausalLM
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    ids = torch.tensor([tok("The Danube flows to the Black Sea.")["input_ids"]])
    assert ids.max() < VOCAB
    hf = DeepseekV3ForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ours, _ = checkpoint.load_model(ckpt)
    with torch.no_grad():
        diff = (hf(ids).logits - ours.eval()(ids).logits).abs().max()
    assert diff <= 1e-4


def test_params_prints_counts():
    out = json.loads(_invoke("train", "params", "--preset", "kimi-k2"))
    assert out["total"] == 1_026_408_209_408 and out["activated"] == 32_861_477_888


def test_bench_runs_on_cpu(tmp_path):
    out = _invoke("train", "bench", "--model", json.dumps({"vocab_size": VOCAB}), "--batch", "1", "--seq-len",
                  "16", "--steps", "1", "--warmup", "0", "--threads", "1", "--out", str(tmp_path / "b.json"))
    assert "tokens/s" in out and "QK-Clip share" in out
    res = json.loads((tmp_path / "b.json").read_text())
    assert res["tokens_per_s"] > 0 and 0 < res["optimizer_share_of_step"] < 1 and res["mfu"] is None


def test_bad_config_exits_2_naming_the_field(manifest, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"manifest": str(manifest), "output": str(tmp_path / "o"),
                                                       "stepz": 3}))
    with pytest.raises(SystemExit) as e:
        main(["train", "run", "--config", str(tmp_path / "bad.yaml")])
    assert e.value.code == 2 and "stepz" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--quiet", "train", "run", "--manifest", str(manifest), "--output", str(tmp_path / "o"),
              "--model", json.dumps({"vocab_size": VOCAB, "num_experts_per_tok": 20}), "--cpu-threads", "1"])
    assert e.value.code == 2 and "num_experts_per_tok=20 exceeds n_routed_experts=8" in capsys.readouterr().err


def test_corpus_demo_to_training_to_hf_with_the_embedded_tokenizer(tmp_path):
    """The default pipeline: `corpus demo` (SmolLM2 tokenizer, full 49152 vocab) -> `train run` -> `export-hf`."""
    _invoke("corpus", "demo", "--output", str(tmp_path / "demo"))
    out = json.loads(_invoke("train", "run", "--manifest", str(tmp_path / "demo" / "mixture.json"), "--output",
                             str(tmp_path / "run"), "--steps", "2", "--warmup-steps", "1", "--micro-batch-size", "1",
                             "--cpu-threads", "1", "--no-plots"))
    assert out["finished"] and out["final_loss"] > 0
    _invoke("train", "export-hf", out["checkpoint"], str(tmp_path / "hf"))
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert len(tok) == json.loads((tmp_path / "hf" / "config.json").read_text())["vocab_size"] == 49152
