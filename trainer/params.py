"""Parameter counts of a ModelConfig (total, activated per token, per part, MTP), from the real module tree.

The model is built on the meta device, so counting the 1T-parameter kimi-k2 preset allocates nothing. Separate from
trainer/config.py, which must stay free of torch and of the model it configures.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from trainer.config import ModelConfig
from trainer.model import K2ForCausalLM


@dataclass(frozen=True)
class ParamCount:
    """Total and per-token activated parameters of the main model (embeddings and lm_head included; router bias
    excluded), and separately the MTP modules' own parameters (they share the embedding and head; a
    DeepSeek-V3-layout checkpoint also stores one copy of both per module: `mtp_checkpoint`)."""

    total: int
    activated: int
    by_part: dict[str, int] = field(default_factory=dict)
    mtp: int = 0
    mtp_checkpoint: int = 0


def count_params(config: ModelConfig) -> ParamCount:
    """Count parameters of the real module tree built on the meta device (nothing is allocated).

    Activated = every non-routed-expert parameter + num_experts_per_tok/n_routed_experts of the routed experts
    (the shared experts are always active). The router bias is a buffer, so it is not a parameter at all.
    """
    with torch.device("meta"):
        model = K2ForCausalLM(config, init_weights=False)
    parts: dict[str, int] = {"embed": 0, "lm_head": 0, "attention": 0, "dense_mlp": 0, "router": 0,
                             "shared_experts": 0, "routed_experts": 0, "norms": 0}
    mtp = 0
    for name, p in model.named_parameters():
        if name.startswith("model.mtp_layers."):
            mtp += p.numel()
        else:
            parts[_part_of(name)] += p.numel()
    total = sum(parts.values())
    routed = parts["routed_experts"]
    k, e = config.num_experts_per_tok, config.n_routed_experts
    # Every routed-expert tensor is stacked [E, ...], so routed is a multiple of E and this division is exact.
    activated = total - routed + routed // e * k
    copies = config.num_nextn_predict_layers * (parts["embed"] + parts["lm_head"])
    return ParamCount(total=total, activated=activated, by_part=parts, mtp=mtp, mtp_checkpoint=mtp + copies)


def _part_of(name: str) -> str:
    if name.startswith("model.embed_tokens"):
        return "embed"
    if name.startswith("lm_head"):
        return "lm_head"
    if ".mlp.experts." in name:
        return "routed_experts"
    if ".mlp.shared_experts." in name:
        return "shared_experts"
    if ".mlp.gate." in name:
        return "router"
    if "norm" in name:
        return "norms"
    if ".self_attn." in name:
        return "attention"
    if ".mlp." in name:
        return "dense_mlp"
    raise AssertionError(f"unclassified parameter {name}")
