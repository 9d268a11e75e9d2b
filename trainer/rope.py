"""Rotary position embedding as DeepSeek/Kimi checkpoints use it: interleaved pairs, optional YaRN.

Interleaved ("rope_interleave" in HF) rotates adjacent dims (x0, x1), (x2, x3), ... by one frequency each; our
output keeps that layout. HF's implementation writes the rotated evens then the rotated odds, which permutes
q_rope and k_rope identically and leaves every q.k score unchanged, so the two agree on attention.

YaRN follows HF transformers' `_compute_yarn_parameters` (== DeepSeek-V3 `precompute_freqs_cis`): blend
interpolated and extrapolated frequencies with a linear ramp between the correction dims, cos/sin scaled by
mscale(factor, mscale) / mscale(factor, mscale_all_dim), and the softmax scale multiplied by
mscale(factor, mscale_all_dim)^2. Like HF, YaRN applies at every length once configured.
"""
from __future__ import annotations

import math
from typing import Any

import torch


def yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def _yarn_correction_range(rs: dict[str, Any], dim: int, base: float) -> tuple[float, float]:
    orig = rs["original_max_position_embeddings"]

    def correction_dim(num_rotations: float) -> float:
        return (dim * math.log(orig / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

    low = math.floor(correction_dim(rs.get("beta_fast") or 32))
    high = math.ceil(correction_dim(rs.get("beta_slow") or 1))
    return max(low, 0), min(high, dim - 1)


def inv_frequencies(dim: int, base: float, rope_scaling: dict[str, Any] | None) -> tuple[torch.Tensor, float]:
    """Per-pair inverse frequencies (dim/2,) and the cos/sin attention factor."""
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    inv_freq = 1.0 / pos_freqs
    if rope_scaling is None:
        return inv_freq, 1.0
    factor = float(rope_scaling["factor"])
    low, high = _yarn_correction_range(rope_scaling, dim, base)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    extrapolate = 1 - ramp  # 1: keep the original (high) frequency, 0: interpolate by `factor`
    inv_freq = (inv_freq / factor) * (1 - extrapolate) + inv_freq * extrapolate
    mscale, mscale_all = rope_scaling.get("mscale"), rope_scaling.get("mscale_all_dim")
    if mscale and mscale_all:
        attention_factor = yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all)
    else:
        attention_factor = yarn_mscale(factor)
    return inv_freq, attention_factor


def softmax_scale(qk_head_dim: int, rope_scaling: dict[str, Any] | None) -> float:
    """(nope + rope)^-0.5, times mscale^2 only when YaRN is configured with mscale_all_dim."""
    scale = qk_head_dim ** -0.5
    if rope_scaling is not None and rope_scaling.get("mscale_all_dim"):
        m = yarn_mscale(float(rope_scaling["factor"]), float(rope_scaling["mscale_all_dim"]))
        scale = scale * m * m
    return scale


def rope_cos_sin(inv_freq: torch.Tensor, attention_factor: float, positions: torch.Tensor,
                 dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin per (position, pair): positions (B, T) or (T,) -> (..., T, dim/2)."""
    angles = positions.to(torch.float32)[..., None] * inv_freq.to(positions.device)  # (..., T, D/2)
    return (angles.cos() * attention_factor).to(dtype), (angles.sin() * attention_factor).to(dtype)


def apply_rope_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs of the last dim. x (B, H, T, D); cos/sin (B or 1, T, D/2) broadcast over heads."""
    cos, sin = cos.unsqueeze(-3), sin.unsqueeze(-3)  # (B, 1, T, D/2)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, H, T, D/2) each
    out = torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)  # (B, H, T, D/2, 2)
    return out.flatten(-2)  # (B, H, T, D), pairs back in place
