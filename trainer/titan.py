"""torchtitan backend: a k2forge TrainSpec as a torchtitan (0.3) `Trainer.Config`, over k2forge's own data plan.

torchtitan is launched as `torchrun ... -m torchtitan.train --module trainer.titan --config k2forge` with the
k2forge checkout on PYTHONPATH and `K2FORGE_TITAN_SPEC` naming the TrainSpec JSON; torchtitan's ConfigManager
imports this module and calls `k2forge()`. torchtitan is NOT a dependency of the project: it lives in its own
virtualenv (bench/bench_titan_backend.py builds one beside torch 2.13 CPU); only that venv imports this module.

What k2forge provides:
- the model: our ModelConfig mapped onto torchtitan's DeepSeekV3Model.Config (MLA with q/kv LoRA ranks, nope/rope
  split, sigmoid router with group limit, routed scaling, shared experts, first_k_dense_replace, MTP depth);
  bench_titan_backend checks that torchtitan's model built from it has exactly our parameter count;
- the data: `K2ForgeDataLoader`, torchtitan's dataloader protocol over trainer/data.py's MixtureData (the
  manifest's exact plan, each data-parallel rank reading only its rows; state = the plan's cursors);
- the schedule: WSD as torchtitan's warmup + cosine decay with min_lr_factor, steps, batch, grad clip.
What it does not (yet): torchtitan 0.3 has no QK-Clip and its DistMuon orthogonalises per attention head for
DeepSeek-V3 MLA, unlike SPEC §2 (whole matrices, K2's 0.2*sqrt(max) scale): the optimizer here is torchtitan's
AdamW until MuonClip is ported as a torchtitan optimizer component. Only a GPU run shows the launch works end to
end; on CPU bench_titan_backend checks that torchtitan's own ConfigManager accepts the config.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from trainer.data import MixtureData
from trainer.spec import TrainSpec

SPEC_ENV = "K2FORGE_TITAN_SPEC"


def _spec() -> TrainSpec:
    path = os.environ.get(SPEC_ENV)
    if not path:
        raise ValueError(f"{SPEC_ENV} must name the TrainSpec JSON (k2forge train run --backend torchtitan sets it)")
    return TrainSpec.model_validate_json(Path(path).read_text())


def model_config(cfg):
    """Our ModelConfig -> torchtitan DeepSeekV3Model.Config (same shapes, same routing)."""
    from torchtitan.models.common import ComplexRoPE, Embedding, Linear, RMSNorm
    from torchtitan.models.deepseek_v3 import DeepSeekV3Model
    from torchtitan.models.deepseek_v3 import _build_dsv3_layers, _build_mtp_layers

    rs = cfg.rope_scaling or {}
    rope = ComplexRoPE.Config(
        dim=cfg.qk_rope_head_dim, max_seq_len=cfg.max_position_embeddings, theta=cfg.rope_theta,
        scaling="yarn" if rs else "none", rope_factor=float(rs.get("factor", 1.0)),
        beta_fast=float(rs.get("beta_fast", 32.0)), beta_slow=float(rs.get("beta_slow", 1.0)),
        original_seq_len=int(rs.get("original_max_position_embeddings", cfg.max_position_embeddings)))
    layers = _build_dsv3_layers(
        n_layers=cfg.num_hidden_layers, n_dense_layers=cfg.first_k_dense_replace, dim=cfg.hidden_size,
        n_heads=cfg.num_attention_heads, q_lora_rank=cfg.q_lora_rank or 0, kv_lora_rank=cfg.kv_lora_rank,
        qk_nope_head_dim=cfg.qk_nope_head_dim, qk_rope_head_dim=cfg.qk_rope_head_dim, v_head_dim=cfg.v_head_dim,
        mscale=float(rs.get("mscale", 1.0)), dense_hidden_dim=cfg.intermediate_size,
        moe_hidden_dim=cfg.moe_intermediate_size, num_experts=cfg.n_routed_experts,
        num_shared_experts=cfg.n_shared_experts, router_top_k=cfg.num_experts_per_tok, router_score_func="sigmoid",
        router_num_expert_groups=cfg.n_group if cfg.n_group > 1 else None,
        router_num_limited_groups=cfg.topk_group if cfg.n_group > 1 else None,
        router_route_scale=cfg.routed_scaling_factor, router_route_norm=cfg.norm_topk_prob,
        attn_backend="flex", moe_comm_backend="standard", non_blocking_capacity_factor=None, rope=rope)
    v, h = cfg.vocab_size, cfg.hidden_size
    return DeepSeekV3Model.Config(
        vocab_size=v, dim=h, tok_embeddings=Embedding.Config(num_embeddings=v, embedding_dim=h),
        norm=RMSNorm.Config(normalized_shape=h), lm_head=Linear.Config(in_features=h, out_features=v),
        layers=layers, mtp_layers=_build_mtp_layers(layers[-1], dim=h, num_mtp_layers=cfg.num_nextn_predict_layers))


def _dataloader_cls():
    from torchtitan.components.dataloader import BaseDataLoader

    class K2ForgeDataLoader(BaseDataLoader):
        """torchtitan dataloader over a k2forge manifest: the exact plan of trainer/data.py, this rank's rows."""

        @dataclasses.dataclass(kw_only=True, slots=True)
        class Config(BaseDataLoader.Config):
            dataset: str = "k2forge"
            manifest: str = ""
            seed: int = 0
            past_budget: str = "error"

        def __init__(self, config: Config, *, dp_world_size: int = 1, dp_rank: int = 0, seq_len: int = 2048,
                     local_batch_size: int = 1, **_):
            self.data = MixtureData.open(config.manifest, seq_len, seed=config.seed,
                                         repeat=config.past_budget == "repeat")
            self.world, self.rank, self.local = dp_world_size, dp_rank, local_batch_size

        def __iter__(self):
            lo = self.rank * self.local
            while True:
                toks, _ = self.data.next_batch(self.local * self.world, slice(lo, lo + self.local))
                t = torch.from_numpy(toks)
                yield {"input": t[:, :-1]}, t[:, 1:]

        def state_dict(self):
            return {"plan": json.dumps(self.data.state_dict())}

        def load_state_dict(self, state):
            self.data.load_state_dict(json.loads(state["plan"]))

    return K2ForgeDataLoader


def k2forge():
    """torchtitan `--config k2forge`: the Trainer.Config of the TrainSpec named by K2FORGE_TITAN_SPEC."""
    from torchtitan.components.checkpoint import CheckpointManager
    from torchtitan.components.optimizer import LRSchedulersContainer, default_adamw
    from torchtitan.config import TrainingConfig
    from torchtitan.models.deepseek_v3 import DeepSeekV3StateDictAdapter, parallelize_deepseekv3
    from torchtitan.protocols.model_spec import ModelSpec
    from torchtitan.trainer import Trainer

    spec = _spec()
    cfg = spec.build_model_config()
    world = int(os.environ.get("WORLD_SIZE", spec.executor.workers))
    from torchtitan.components.optimizer import register_moe_load_balancing_hook
    from torchtitan.distributed.pipeline_parallel import pipeline_llm
    model_spec = ModelSpec(name="deepseek_v3", flavor=f"k2forge-{spec.preset}", model=model_config(cfg),
                           parallelize_fn=parallelize_deepseekv3, pipelining_fn=pipeline_llm,
                           post_optimizer_build_fn=register_moe_load_balancing_hook,
                           state_dict_adapter=DeepSeekV3StateDictAdapter)
    manifest = json.loads(Path(spec.manifest).read_text())
    seq_len = spec.seq_len or int(manifest["seq_len"])
    tok = Path((manifest.get("tokenizer") or {}).get("path") or ".")
    return Trainer.Config(
        model_spec=model_spec, dump_folder=str(Path(spec.output) / "torchtitan"),
        hf_assets_path=str(tok.parent if tok.is_file() else tok),  # the tokenizer the shards were packed with
        dataloader=_dataloader_cls().Config(manifest=spec.manifest, seed=spec.seed, past_budget=spec.past_budget),
        optimizer=default_adamw(lr=spec.lr),
        lr_scheduler=LRSchedulersContainer.Config(warmup_steps=spec.warmup, decay_ratio=spec.decay / spec.steps,
                                                  decay_type="cosine", min_lr_factor=spec.min_lr_ratio),
        training=TrainingConfig(local_batch_size=spec.micro_batch_size, seq_len=seq_len, steps=spec.steps,
                                global_batch_size=spec.micro_batch_size * spec.grad_accum * world,
                                max_norm=spec.grad_clip or 1e9),
        checkpoint=CheckpointManager.Config(interval=spec.ckpt_every or spec.steps),
    )
