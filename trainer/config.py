"""Model configuration for the Kimi-K2 / DeepSeek-V3 style MoE: `ModelConfig` and presets.

Field names follow DeepSeek-V3 (and transformers' `DeepseekV3Config`) so that export is a rename-free dump.
The presets `kimi-k2` and `deepseek-v3` reproduce the published shapes (SPEC §1); `tiny` runs a step in
seconds on a CPU, `small` (~0.8B total / ~0.15B activated, sparsity 48 like K2) fits one GPU.

This module must stay cheap to import (no torch): specs, the CLI and the API read it. Parameter counts, which
build the model, are in trainer/params.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# The vocabulary of the SmolLM2 tokenizer the corpus layer packs with.
SMOLLM2_VOCAB = 49152


class ConfigError(ValueError):
    """A ModelConfig field is out of range or inconsistent with another field."""


@dataclass
class ModelConfig:
    """Shape and routing hyper-parameters of the model (DeepSeek-V3 field names)."""

    hidden_size: int = 64
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    q_lora_rank: int | None = 32  # None: a plain q_proj instead of the low-rank q_a/q_b pair
    kv_lora_rank: int = 32
    qk_nope_head_dim: int = 16
    qk_rope_head_dim: int = 8
    v_head_dim: int = 16
    intermediate_size: int = 128
    moe_intermediate_size: int = 32
    n_routed_experts: int = 8
    num_experts_per_tok: int = 2
    n_shared_experts: int = 1
    first_k_dense_replace: int = 1
    routed_scaling_factor: float = 2.827
    n_group: int = 1
    topk_group: int = 1
    norm_topk_prob: bool = True
    vocab_size: int = SMOLLM2_VOCAB
    max_position_embeddings: int = 4096
    rope_theta: float = 50000.0
    rope_scaling: dict[str, Any] | None = None  # None or a YaRN dict (see rope.py)
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    bias_update_speed: float = 0.001  # gamma of the aux-loss-free balancing rule
    seq_aux_alpha: float = 0.0  # alpha of the sequence-wise balance loss; 0 = off
    num_nextn_predict_layers: int = 0  # multi-token prediction depth D (DeepSeek-V3: 1); 0 = no MTP modules
    mtp_loss_weight: float = 0.3  # lambda of L_MTP = lambda / D * sum_k CE_k (DeepSeek-V3: 0.3, later 0.1)
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ConfigError naming the field when the configuration cannot build a working model."""
        positive = ["hidden_size", "num_hidden_layers", "num_attention_heads", "kv_lora_rank", "qk_nope_head_dim",
                    "qk_rope_head_dim", "v_head_dim", "intermediate_size", "moe_intermediate_size",
                    "n_routed_experts", "num_experts_per_tok", "n_group", "topk_group", "vocab_size",
                    "max_position_embeddings"]
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.q_lora_rank is not None and (not isinstance(self.q_lora_rank, int) or self.q_lora_rank <= 0):
            raise ConfigError(f"ModelConfig.q_lora_rank must be a positive integer or None, got {self.q_lora_rank!r}")
        if self.qk_rope_head_dim % 2:
            raise ConfigError(f"ModelConfig.qk_rope_head_dim must be even (RoPE rotates pairs), "
                              f"got {self.qk_rope_head_dim}")
        for name in ("n_shared_experts", "first_k_dense_replace", "num_nextn_predict_layers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ModelConfig.{name} must be >= 0, got {getattr(self, name)}")
        self._validate_routing()
        for name in ("rms_norm_eps", "rope_theta", "initializer_range", "routed_scaling_factor"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"ModelConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("bias_update_speed", "seq_aux_alpha", "mtp_loss_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ModelConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.tie_word_embeddings:
            raise ConfigError("ModelConfig.tie_word_embeddings must be False (K2/DeepSeek-V3 untie the output head)")
        self._validate_rope_scaling()

    def _validate_routing(self) -> None:
        e, k = self.n_routed_experts, self.num_experts_per_tok
        if k > e:
            raise ConfigError(f"ModelConfig.num_experts_per_tok={k} exceeds n_routed_experts={e}")
        if e % self.n_group:
            raise ConfigError(f"ModelConfig.n_routed_experts={e} is not divisible by n_group={self.n_group}")
        if self.topk_group > self.n_group:
            raise ConfigError(f"ModelConfig.topk_group={self.topk_group} exceeds n_group={self.n_group}")
        per_group = e // self.n_group
        # Group score = sum of the top-2 biased scores in the group (DeepSeek-V3), so a group needs 2 experts.
        if per_group < 2:
            raise ConfigError(f"ModelConfig: n_routed_experts/n_group = {per_group}; each group needs >= 2 experts")
        if k > self.topk_group * per_group:
            raise ConfigError(f"ModelConfig.num_experts_per_tok={k} exceeds the experts reachable in topk_group="
                              f"{self.topk_group} groups of {per_group}")
        if self.first_k_dense_replace > self.num_hidden_layers:
            raise ConfigError(f"ModelConfig.first_k_dense_replace={self.first_k_dense_replace} exceeds "
                              f"num_hidden_layers={self.num_hidden_layers}")

    def _validate_rope_scaling(self) -> None:
        rs = self.rope_scaling
        if rs is None:
            return
        if not isinstance(rs, dict):
            raise ConfigError(f"ModelConfig.rope_scaling must be None or a dict, got {type(rs).__name__}")
        kind = rs.get("rope_type", rs.get("type"))
        if kind != "yarn":
            raise ConfigError(f"ModelConfig.rope_scaling: only type 'yarn' is supported, got {kind!r}")
        unknown = set(rs) - {"type", "rope_type", "factor", "original_max_position_embeddings", "beta_fast",
                             "beta_slow", "mscale", "mscale_all_dim"}
        if unknown:
            raise ConfigError(f"ModelConfig.rope_scaling: unknown keys {sorted(unknown)}")
        if not rs.get("factor", 0) > 1:
            raise ConfigError(f"ModelConfig.rope_scaling.factor must be > 1, got {rs.get('factor')!r}")
        if not isinstance(rs.get("original_max_position_embeddings"), int):
            raise ConfigError("ModelConfig.rope_scaling.original_max_position_embeddings must be an integer")

    # ------------------------------------------------------------------ derived
    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def n_moe_layers(self) -> int:
        return self.num_hidden_layers - self.first_k_dense_replace

    def is_moe_layer(self, layer_idx: int) -> bool:
        return layer_idx >= self.first_k_dense_replace

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a dict, naming unknown keys instead of failing on a TypeError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"ModelConfig: unknown fields {unknown}")
        return cls(**data)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------- presets
_BIG_SHARED: dict[str, Any] = dict(
    hidden_size=7168, num_hidden_layers=61, q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128,
    qk_rope_head_dim=64, v_head_dim=128, intermediate_size=18432, moe_intermediate_size=2048,
    num_experts_per_tok=8, n_shared_experts=1, max_position_embeddings=4096,
)

PRESETS: dict[str, dict[str, Any]] = {
    # DeepSeek-V3-like: sequence-wise balance loss alpha 1e-4 beside the aux-loss-free bias (DeepSeek-V3 §2.1.2);
    # DeepSeek-V3 trains one MTP module (D = 1), Kimi K2's released config has none.
    "kimi-k2": dict(_BIG_SHARED, num_attention_heads=64, n_routed_experts=384, first_k_dense_replace=1,
                    vocab_size=163840, routed_scaling_factor=2.827, n_group=1, topk_group=1, rope_theta=50000.0,
                    seq_aux_alpha=1e-4),
    "deepseek-v3": dict(_BIG_SHARED, num_attention_heads=128, n_routed_experts=256, first_k_dense_replace=3,
                        vocab_size=129280, routed_scaling_factor=2.5, n_group=8, topk_group=4, rope_theta=10000.0,
                        seq_aux_alpha=1e-4, num_nextn_predict_layers=1),
    # CPU tests: 1 dense + 2 MoE layers, 8 experts top-2, one shared expert; a step takes well under a second.
    "tiny": dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, q_lora_rank=32, kv_lora_rank=32,
                 qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, intermediate_size=128,
                 moe_intermediate_size=32, n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1,
                 first_k_dense_replace=1, vocab_size=SMOLLM2_VOCAB, max_position_embeddings=2048),
    # One GPU: K2 shape rules at ~0.8B total / ~0.15B activated; sparsity 96/2 = 48 like K2's 384/8.
    "small": dict(hidden_size=1024, num_hidden_layers=10, num_attention_heads=8, q_lora_rank=384, kv_lora_rank=256,
                  qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64, intermediate_size=2816,
                  moe_intermediate_size=256, n_routed_experts=96, num_experts_per_tok=2, n_shared_experts=1,
                  first_k_dense_replace=1, vocab_size=SMOLLM2_VOCAB, max_position_embeddings=4096),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The named preset, optionally with fields overridden (validated like any config)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}")
    return ModelConfig.from_dict({**PRESETS[name], **overrides})
