"""Presets, parameter counts (counted on the meta device) and ModelConfig validation."""
import pytest

from trainer.config import PRESETS, ConfigError, ModelConfig, preset
from trainer.params import count_params

SPEC_COUNTS = {  # SPEC §1: counted from the config, embeddings + lm_head included, no router bias, no MTP
    "kimi-k2": (1_026_408_209_408, 32_861_477_888),
    "deepseek-v3": (671_026_404_352, 37_552_282_624),
}


@pytest.mark.parametrize("name", sorted(SPEC_COUNTS))
def test_big_preset_counts_match_spec(name):
    counts = count_params(preset(name))
    total, activated = SPEC_COUNTS[name]
    assert abs(counts.total - total) / total < 0.005
    assert abs(counts.activated - activated) / activated < 0.005
    assert (counts.total, counts.activated) == (total, activated)  # we hit them exactly


def test_deepseek_v3_like_presets_train_mtp_and_the_balance_loss():
    k2, v3 = preset("kimi-k2"), preset("deepseek-v3")
    assert k2.seq_aux_alpha == v3.seq_aux_alpha == 1e-4  # DeepSeek-V3's alpha beside the aux-loss-free bias
    assert (v3.num_nextn_predict_layers, k2.num_nextn_predict_layers) == (1, 0)  # K2's release has no MTP
    c = count_params(v3)
    # DeepSeek-V3: "685B, which includes 671B of the Main Model weights and 14B of the MTP Module weights"
    # (rounded; its fp8 checkpoint also stores scale tensors): 13.46B here
    assert c.total == SPEC_COUNTS["deepseek-v3"][0] and abs(c.mtp_checkpoint - 14e9) / 14e9 < 0.05
    assert c.mtp_checkpoint - c.mtp == c.by_part["embed"] + c.by_part["lm_head"]  # the checkpoint's copies
    tiny = preset("tiny", num_nextn_predict_layers=2)
    from trainer.model import K2ForCausalLM
    mtp = sum(p.numel() for n, p in K2ForCausalLM(tiny).named_parameters() if ".mtp_layers." in n)
    assert count_params(tiny).mtp == mtp > 0 and count_params(tiny).total == count_params(preset("tiny")).total


def test_big_presets_are_the_spec_table():
    k2, v3 = preset("kimi-k2"), preset("deepseek-v3")
    assert (k2.num_attention_heads, k2.n_routed_experts, k2.first_k_dense_replace) == (64, 384, 1)
    assert k2.vocab_size == 163840
    assert (k2.routed_scaling_factor, k2.n_group, k2.topk_group, k2.rope_theta) == (2.827, 1, 1, 50000.0)
    assert (v3.num_attention_heads, v3.n_routed_experts, v3.first_k_dense_replace) == (128, 256, 3)
    assert v3.vocab_size == 129280
    assert (v3.routed_scaling_factor, v3.n_group, v3.topk_group, v3.rope_theta) == (2.5, 8, 4, 10000.0)
    for c in (k2, v3):
        assert (c.hidden_size, c.num_hidden_layers, c.num_experts_per_tok, c.n_shared_experts) == (7168, 61, 8, 1)
        assert (c.q_lora_rank, c.kv_lora_rank, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim) == \
            (1536, 512, 128, 64, 128)
        assert (c.intermediate_size, c.moe_intermediate_size, c.rope_scaling) == (18432, 2048, None)


def test_small_and_tiny_follow_k2_shape_rules():
    small, tiny = count_params(preset("small")), count_params(preset("tiny"))
    assert 0.5e9 <= small.total <= 1.0e9, small.total
    assert small.activated < small.total / 4
    s = preset("small")
    assert s.n_routed_experts / s.num_experts_per_tok == 48  # K2's sparsity 384/8
    for c in (s, preset("tiny")):
        assert c.n_shared_experts == 1 and 1 <= c.first_k_dense_replace < c.num_hidden_layers
        assert c.vocab_size == 49152  # the SmolLM2 tokenizer the corpus is packed with
    assert tiny.total < 10e6


def test_activated_counts_topk_of_routed_experts_only():
    c = preset("tiny")
    counts = count_params(c)
    routed = counts.by_part["routed_experts"]
    assert routed == c.n_moe_layers * c.n_routed_experts * 3 * c.hidden_size * c.moe_intermediate_size
    assert counts.total - counts.activated == routed - routed * c.num_experts_per_tok // c.n_routed_experts
    assert counts.by_part["embed"] == counts.by_part["lm_head"] == c.vocab_size * c.hidden_size


def test_unknown_preset_and_unknown_field_are_named():
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        preset("huge")
    with pytest.raises(ConfigError, match=r"unknown fields \['hidden'\]"):
        ModelConfig.from_dict({"hidden": 3})


@pytest.mark.parametrize("changes, message", [
    (dict(num_experts_per_tok=9), "num_experts_per_tok=9 exceeds n_routed_experts=8"),
    (dict(n_group=3), "n_routed_experts=8 is not divisible by n_group=3"),
    (dict(n_group=2, topk_group=3), "topk_group=3 exceeds n_group=2"),
    (dict(n_group=8, topk_group=1, num_experts_per_tok=1), "each group needs >= 2 experts"),
    (dict(n_group=4, topk_group=1, num_experts_per_tok=3), "experts reachable in topk_group=1"),
    (dict(qk_rope_head_dim=7), "qk_rope_head_dim must be even"),
    (dict(hidden_size=0), "hidden_size must be a positive integer"),
    (dict(q_lora_rank=-1), "q_lora_rank must be a positive integer or None"),
    (dict(first_k_dense_replace=4), "first_k_dense_replace=4 exceeds num_hidden_layers=3"),
    (dict(tie_word_embeddings=True), "tie_word_embeddings must be False"),
    (dict(rms_norm_eps=0.0), "rms_norm_eps must be > 0"),
    (dict(seq_aux_alpha=-1.0), "seq_aux_alpha must be >= 0"),
    (dict(num_nextn_predict_layers=-1), "num_nextn_predict_layers must be >= 0"),
    (dict(mtp_loss_weight=-0.1), "mtp_loss_weight must be >= 0"),
    (dict(rope_scaling={"type": "linear", "factor": 2.0}), "only type 'yarn'"),
    (dict(rope_scaling={"type": "yarn", "factor": 1.0, "original_max_position_embeddings": 8}), "factor must be > 1"),
    (dict(rope_scaling={"type": "yarn", "factor": 4.0}), "original_max_position_embeddings must be an integer"),
    (dict(rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8, "fudge": 1}),
     r"unknown keys \['fudge'\]"),
])
def test_validation_errors_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        preset("tiny", **changes)


def test_valid_variants_build():
    assert preset("tiny", q_lora_rank=None).q_lora_rank is None
    assert preset("tiny", n_group=4, topk_group=2).n_group == 4
    assert ModelConfig.from_dict(preset("small").to_dict()) == preset("small")
    assert set(PRESETS) >= {"kimi-k2", "deepseek-v3", "tiny", "small"}


def test_import_config_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, trainer.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
