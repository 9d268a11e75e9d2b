"""Training metrics: FLOP accounting / MFU, the per-step JSONL log, and expert-load statistics.

FLOPs per trained token (forward + backward = 3x forward, PaLM appendix B / torchtitan convention):
    F = 6 * N_act + 6 * L * H * (d_qk + d_v) * T
  N_act : activated parameters (trainer.params.count_params) minus the input embedding table (a lookup does
          no multiply-adds; the output head does and stays in)
  L, H  : layers, attention heads; d_qk = qk_nope + qk_rope head dim, d_v = v head dim; T = sequence length
  The attention term is the score (Q K^T: 2*d_qk*T per query per head) and value (P V: 2*d_v*T) matmuls,
  forward 2*(d_qk + d_v)*T per token per head per layer, times 3 for training. As in PaLM and torchtitan
  (12*L*H*Q*T with Q = d_qk = d_v), the causal mask is NOT discounted, so MFU is comparable with theirs.
MFU = F * tokens per second / peak dense bf16 FLOP/s of the device (table below, or K2FORGE_PEAK_FLOPS).
On CPU the peak is unknown and MFU is reported as null.

metrics.jsonl holds one JSON object per line: {"type": "train", "step", "loss", "lr", "grad_norm", "tokens",
"tokens_per_s", "step_time_s", "mfu", "max_logit" [per attention layer], "max_logit_max", "heads_clipped"
[per layer], "heads_clipped_total", "expert_imbalance" [max/mean load per MoE layer]} or {"type": "eval",
"step", "eval_loss", "eval_tokens"}.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from corpus.shards import atomic_write_text

# Dense bf16 tensor-core peak (no sparsity), FLOP/s.
PEAK_BF16 = {"H200": 989.5e12, "H100": 989.5e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


def flops_per_token(config, seq_len: int, activated_params: int | None = None) -> float:
    """Training FLOPs per token by the formula in the module docstring."""
    if activated_params is None:
        from trainer.params import count_params  # torch: it builds the model on the meta device
        activated_params = count_params(config).activated
    n_act = activated_params - config.vocab_size * config.hidden_size  # minus the embedding lookup table
    attn = 6 * config.num_hidden_layers * config.num_attention_heads * (config.qk_head_dim + config.v_head_dim)
    return 6.0 * n_act + attn * seq_len


def peak_flops(device) -> float | None:
    """Peak bf16 FLOP/s of a CUDA device by name; None on CPU or for an unknown GPU (set K2FORGE_PEAK_FLOPS)."""
    env = os.environ.get("K2FORGE_PEAK_FLOPS")
    if env:
        return float(env)
    if getattr(device, "type", str(device)) != "cuda":
        return None
    import torch
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def mfu(flops_per_tok: float, tokens_per_s: float, peak: float | None) -> float | None:
    return None if not peak else flops_per_tok * tokens_per_s / peak


def expert_imbalance(loads) -> list[float]:
    """max/mean load per MoE layer from (L_moe, E) loads (1.0 = perfectly balanced)."""
    if loads is None:
        return []
    mean = loads.float().mean(dim=1).clamp(min=1e-9)
    return (loads.float().amax(dim=1) / mean).tolist()


def clip_metrics(stats) -> dict[str, Any]:
    """Per-layer max logit and clipped heads from MuonClip's last ClipStats (one host copy)."""
    if stats is None:
        return {"max_logit": [], "max_logit_max": None, "heads_clipped": [], "heads_clipped_total": 0}
    per_layer = stats.layer_max_logit.detach().cpu().tolist()
    clipped = stats.heads_clipped.cpu().tolist()
    finite = [x for x in per_layer if math.isfinite(x)]
    return {"max_logit": per_layer, "max_logit_max": max(finite) if finite else None,
            "heads_clipped": clipped, "heads_clipped_total": int(sum(clipped))}


class MetricsLog:
    """Append-only JSONL; on resume, lines past the checkpoint's step (from an interrupted run) are dropped."""

    def __init__(self, path: str | os.PathLike, resume_step: int = 0, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step] if resume_step else []
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self._f.write(json.dumps(record, allow_nan=True) + "\n")
            self._f.flush()

    def close(self) -> None:
        if self.enabled:
            self._f.close()


def read_metrics(path: str | os.PathLike, kind: str | None = None) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if kind is None or r.get("type") == kind]
