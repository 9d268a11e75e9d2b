"""The QK-Clip attention protocol: what an MLA module exposes so that MuonClip can clip it.

Agreed between the model (trainer/model.py) and the optimizer (trainer/muonclip.py); the optimizer side owns it.
Any module with the attributes below is an attention layer for QK-Clip (duck typing, no base class), so an HF
model, the project's own model or a test module can all be clipped the same way.

    class QKClipAttention(Protocol):
        n_heads: int; qk_nope_head_dim: int; qk_rope_head_dim: int; v_head_dim: int
        q_b_proj: nn.Linear       # weight [n_heads*(nope+rope), q_lora_rank], rows head-major, head = [nope|rope]
                                  # (named q_proj when q_lora_rank is None: weight [n_heads*(nope+rope), hidden])
        kv_b_proj: nn.Linear      # weight [n_heads*(nope+v), kv_lora_rank], rows head-major, head = [k_nope|v]
        max_logits: torch.Tensor  # buffer [n_heads] fp32, persistent=False, on the module's device

`max_logits[h]` is the running maximum of `softmax_scale * q_h,i . k_h,j` over VALID pairs only (causal j <= i,
same document, not padding), updated in every training forward with `torch.maximum` (on device, no host sync),
so it spans all gradient-accumulation micro-batches of a step. It starts at -inf; the optimizer reads it after
its update, clips, and resets it to -inf. Masked pairs must be excluded with `masked_fill(-inf)` or
`torch.where`, never `(1 - mask) * -inf` (0 * inf = NaN).

Why the row layout matters: score_h = q_nope_h . k_nope_h + q_rope_h . k_rope (times softmax_scale). Scaling the
nope rows of q and k by sqrt(gamma) and the rope rows of q by gamma scales every term by gamma, while the
k_rope shared by all heads (kv_a_proj_with_mqa) stays untouched. A `[n_heads*d, in]` weight is viewed as
`view(n_heads, d, in)` (head-major); `view(d, n_heads, in)` would mix heads.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

_INT_FIELDS = ("n_heads", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")


@runtime_checkable
class QKClipAttention(Protocol):
    """Static description of the protocol (for type checkers); discovery uses `is_qk_clip_layer`."""

    n_heads: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    kv_b_proj: object
    max_logits: object


def q_projection(layer):
    """The query up-projection of a layer: `q_b_proj`, or `q_proj` when the model has no query LoRA."""
    proj = getattr(layer, "q_b_proj", None)
    if proj is None:
        proj = getattr(layer, "q_proj", None)
    return proj


def is_qk_clip_layer(module) -> bool:
    """True when `module` exposes every attribute of the protocol (values are checked by `check_layer`)."""
    if any(not hasattr(module, f) for f in _INT_FIELDS):
        return False
    return (q_projection(module) is not None and hasattr(module, "kv_b_proj")
            and hasattr(module, "max_logits"))


def check_layer(name: str, layer) -> None:
    """Raise a ValueError naming the layer and field when shapes break the head-major row layout."""
    import torch

    for f in _INT_FIELDS:
        v = getattr(layer, f)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or (f == "n_heads" and v == 0):
            raise ValueError(f"QK-Clip layer {name!r}: field {f} must be a positive int, got {v!r}")
    h, nope, rope, vdim = (getattr(layer, f) for f in _INT_FIELDS)
    expected = {"q": h * (nope + rope), "kv_b_proj": h * (nope + vdim)}
    for key, proj in (("q", q_projection(layer)), ("kv_b_proj", layer.kv_b_proj)):
        w = getattr(proj, "weight", None)
        if not isinstance(w, torch.Tensor) or w.dim() != 2 or w.shape[0] != expected[key]:
            shape = None if not isinstance(w, torch.Tensor) else tuple(w.shape)
            pname = "q_b_proj/q_proj" if key == "q" else key
            raise ValueError(f"QK-Clip layer {name!r}: {pname}.weight must be 2-D with {expected[key]} rows "
                             f"(n_heads={h} x head block), got shape {shape}")
    ml = layer.max_logits
    if not isinstance(ml, torch.Tensor) or tuple(ml.shape) != (h,) or ml.dtype != torch.float32:
        desc = (tuple(ml.shape), ml.dtype) if isinstance(ml, torch.Tensor) else type(ml).__name__
        raise ValueError(f"QK-Clip layer {name!r}: max_logits must be a float32 tensor of shape ({h},), got {desc} "
                         "(model.to(dtype) casts buffers too: keep max_logits in float32)")


def find_qk_clip_layers(model) -> list[tuple[str, object]]:
    """Every attention layer of `model` that follows the protocol, as (qualified name, module), in module order.

    Each layer is validated (`check_layer`), so a model whose layout disagrees fails here with a clear message
    instead of being clipped wrongly.
    """
    layers = []
    for name, module in model.named_modules():
        if is_qk_clip_layer(module):
            check_layer(name, module)
            layers.append((name, module))
    return layers
