"""MuonClip (Kimi K2, Algorithm 1): Muon for hidden matrices, AdamW for the rest, QK-Clip after every update.

Muon, per hidden matrix W (n x m); a stack [E, n, m] is E matrices orthogonalised in one batched call:
    M = mu * M + G                                  (nesterov=True feeds mu * M + G to Newton-Schulz)
    O = NewtonSchulz5(M) * 0.2 * sqrt(max(n, m))    (0.2*sqrt, NOT sqrt(0.2*max): matches AdamW update RMS)
    W = W - lr * (O + wd * W)                       (decoupled weight decay)
Embeddings, the output head, norm gains and every 1-D parameter use AdamW (betas 0.9/0.95, eps 1e-8) with the
same lr and weight decay (the 0.2*sqrt factor is what lets AdamW hyper-parameters transfer; Moonlight found
weight decay on RMSNorm gains important for stability, so norm gains are decayed too). Which parameter
goes where is decided by explicit rules in `param_groups` (torchtitan style), never by the optimizer guessing.

Fused SwiGLU expert stacks `gate_up_proj` [E, 2I, H] (transformers 5.x layout) hold TWO matrices per expert,
gate and up: Muon orthogonalises them separately (as 2E matrices of I x H, scale 0.2*sqrt(max(I, H))), exactly
as the dense MLP's separate gate_proj / up_proj, via the group's per-parameter `muon_split`.

Router gate weight [E, H]: it is a hidden matrix, and K2/Moonlight run Muon on every hidden matrix, so it goes
to Muon by default (`router_gate="adamw"` is available for ablations). The router's routing bias
(e_score_correction_bias) is a buffer updated by the aux-loss-free balancing rule; it is never optimised here.

Sharded parameters (FSDP2 DTensors, Shard(0)): the Newton-Schulz work is split across ranks, never repeated.
An expert stack [E, n, m] sharded on dim 0 holds whole expert matrices on each rank, so each rank
orthogonalises its own experts with no communication. A 2-D matrix sharded by rows needs all its rows: the
matrices are taken in rounds of world_size (largest first), matrix j of a round owned by rank j; one
all_to_all_single sends every rank's shard of matrix j to rank j, which runs NS on the whole matrix, and a second
one returns each rank its rows of the result. The maths is the unsharded optimizer's (same full matrices, same
ops), so the result is bit-identical to one process on the same gradients (tests/trainer/test_sharded.py).

Every group reads `group["lr"]` at each step, so any torch LR scheduler (or HF Trainer's) drives both kinds.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from trainer.protocol import find_qk_clip_layers
from trainer.qkclip import qk_clip_

NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz5(g: torch.Tensor, steps: int = 5, eps: float = 1e-7,
                   dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Approximate UV^T of each matrix in `g` (..., n, m), batched over leading dims; returned in `dtype`.

    Frobenius normalisation is per matrix (dims -2, -1), so the experts of a stack never share a norm.
    The only Python branch depends on shapes, not values, so torch.compile traces it without breaks.
    """
    if g.dim() < 2:
        raise ValueError(f"newton_schulz5 needs a matrix or a stack of matrices, got shape {tuple(g.shape)}")
    a, b, c = NS_COEFFS
    x = g.to(dtype)
    transpose = g.size(-2) > g.size(-1)
    if transpose:  # iterate on the short side: A = X X^T is then the small Gram matrix
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if transpose else x


def muon_split(name: str) -> int:
    """How many matrices are stacked along dim -2 of a Muon parameter (2 for fused gate|up expert stacks)."""
    return 2 if name.rsplit(".", 1)[-1] == "gate_up_proj" else 1


def muon_scale(shape: torch.Size) -> float:
    """0.2 * sqrt(max(n, m)) for the last two dims: the RMS of the update then matches AdamW's (~0.2)."""
    return 0.2 * math.sqrt(max(shape[-2], shape[-1]))


# ----------------------------------------------------------------------------------------------- grouping rules
_HEAD_NAMES = ("lm_head", "output", "embed_out")


def _output_head_ids(model: nn.Module) -> set[int]:
    ids = set()
    get_out = getattr(model, "get_output_embeddings", None)
    head = get_out() if callable(get_out) else None
    if head is not None and getattr(head, "weight", None) is not None:
        ids.add(id(head.weight))
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in _HEAD_NAMES:
            ids.update(id(p) for p in module.parameters(recurse=False))
    return ids


def _is_router_gate(module_name: str, module: nn.Module) -> bool:
    # HF / DeepSeek naming: the router is `mlp.gate` (SwiGLU's projection is `gate_proj`); the router owns the
    # routing-bias buffer in every DeepSeek-V3 implementation, which is the more robust signal.
    return hasattr(module, "e_score_correction_bias") or module_name.rsplit(".", 1)[-1] == "gate"


def assign_optimizers(model: nn.Module, router_gate: str = "muon") -> dict[str, tuple[str, str]]:
    """{param name: ("muon" | "adamw", reason)} for every trainable parameter, by ordered rules (first wins)."""
    if router_gate not in ("muon", "adamw"):
        raise ValueError(f"router_gate must be 'muon' or 'adamw', got {router_gate!r}")
    heads = _output_head_ids(model)
    out, seen = {}, set()
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            name = f"{mname}.{pname}" if mname else pname
            if id(p) in seen or not p.requires_grad:  # tied weights are optimised once; frozen never
                continue
            seen.add(id(p))
            if "correction_bias" in pname:
                raise ValueError(f"parameter {name!r} looks like the router bias: it must be a buffer updated "
                                 "by the balancing rule, not a trained parameter")
            if p.dim() < 2:
                out[name] = ("adamw", "1-D (norm gain / bias)")
            elif isinstance(module, nn.Embedding):
                out[name] = ("adamw", "embedding")
            elif id(p) in heads:
                out[name] = ("adamw", "output head")
            elif _is_router_gate(mname, module):
                out[name] = (router_gate, "router gate")
            else:
                out[name] = ("muon", "hidden matrix")
    return out


def param_groups(model: nn.Module, lr: float, weight_decay: float, *, momentum: float = 0.95,
                 nesterov: bool = False, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8,
                 router_gate: str = "muon") -> list[dict]:
    """Named param groups for MuonClip: one Muon group and one AdamW group (empty ones are dropped)."""
    named = dict(model.named_parameters())
    kinds = assign_optimizers(model, router_gate)
    muon = [(n, named[n]) for n, (k, _) in kinds.items() if k == "muon"]
    adamw = [(n, named[n]) for n, (k, _) in kinds.items() if k == "adamw"]
    groups = [
        {"params": muon, "use_muon": True, "lr": lr, "weight_decay": weight_decay, "momentum": momentum,
         "nesterov": nesterov, "muon_split": [muon_split(n) for n, _ in muon]},
        {"params": adamw, "use_muon": False, "lr": lr, "weight_decay": weight_decay, "betas": betas, "eps": eps},
    ]
    return [g for g in groups if g["params"]]


# ------------------------------------------------------------------------------------------------ optimizer
class MuonClip(torch.optim.Optimizer):
    """Muon + AdamW + QK-Clip in one optimizer (one state dict for checkpoints).

    params: groups from `param_groups` (each group must say `use_muon`). model / qk_clip_layers: where the
    QK-Clip attention layers are found (trainer/protocol.py); without either, no clipping happens.
    After each step `last_clip_stats` holds device-tensor stats (trainer/qkclip.py ClipStats); call its
    `to_host()` only when logging. qk_clip=False gives vanilla Muon but still records (and resets) max logits.
    """

    def __init__(self, params, lr: float = 2e-4, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = False, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8,
                 ns_steps: int = 5, ns_dtype: torch.dtype = torch.bfloat16, qk_clip: bool = True,
                 qk_clip_tau: float = 100.0, model: nn.Module | None = None, qk_clip_layers=None,
                 process_group=None):
        if lr < 0 or weight_decay < 0 or not 0 <= momentum < 1 or eps <= 0:
            raise ValueError(f"invalid MuonClip hyper-parameters: lr={lr} weight_decay={weight_decay} "
                             f"momentum={momentum} eps={eps}")
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid AdamW betas {betas}")
        if not qk_clip_tau > 0:
            raise ValueError(f"qk_clip_tau must be > 0, got {qk_clip_tau}")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov, betas=betas,
                        eps=eps, ns_steps=ns_steps)
        super().__init__(params, defaults)
        self.ns_dtype = ns_dtype
        self.qk_clip = qk_clip
        self.qk_clip_tau = float(qk_clip_tau)
        self.process_group = process_group
        if qk_clip_layers is None and model is not None:
            qk_clip_layers = find_qk_clip_layers(model)
        self.qk_clip_layers = list(qk_clip_layers or [])
        # A mutable box, not a plain attribute: torch.compile(opt.step) drops attribute stores on an
        # optimizer (torch 2.13), while a list mutation is replayed after the compiled step.
        self._clip_stats = [None]

    @property
    def last_clip_stats(self):
        """QK-Clip stats of the latest step (ClipStats of device tensors), or None before the first step."""
        return self._clip_stats[0]

    @classmethod
    def from_model(cls, model: nn.Module, lr: float = 2e-4, weight_decay: float = 0.1, *,
                   router_gate: str = "muon", **kw) -> "MuonClip":
        """Group `model`'s parameters by the rules and clip its attention layers."""
        group_kw = {k: kw[k] for k in ("momentum", "nesterov", "betas", "eps") if k in kw}
        groups = param_groups(model, lr, weight_decay, router_gate=router_gate, **group_kw)
        return cls(groups, lr=lr, weight_decay=weight_decay, model=model, **kw)

    def add_param_group(self, param_group: dict) -> None:
        if not isinstance(param_group.get("use_muon"), bool):
            raise ValueError("every MuonClip param group needs use_muon=True/False; build groups with "
                             "trainer.muonclip.param_groups(model, ...) so embeddings/head/norms get AdamW")
        super().add_param_group(param_group)
        if param_group["use_muon"]:
            params = param_group["params"]
            names = param_group.get("param_names") or [f"#{i}" for i in range(len(params))]
            splits = param_group.setdefault("muon_split", [1] * len(params))
            if len(splits) != len(params):
                raise ValueError(f"muon_split has {len(splits)} entries for {len(params)} params")
            for name, p, k in zip(names, params, splits):
                if p.dim() < 2:
                    raise ValueError(f"Muon param group holds {name!r} with shape {tuple(p.shape)}: Muon needs "
                                     "a matrix or a stack of matrices; 1-D params belong to AdamW")
                if not isinstance(k, int) or k < 1 or p.shape[-2] % k:
                    raise ValueError(f"muon_split={k!r} for {name!r} does not divide its {p.shape[-2]} rows")

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every group, then QK-Clip on the attention layers (stats in `last_clip_stats`)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["use_muon"]:
                self._muon_group(group)
            else:
                self._adamw_group(group)
        self._clip_stats[0] = qk_clip_(self.qk_clip_layers, self.qk_clip_tau, apply=self.qk_clip,
                                        process_group=self.process_group)
        return loss

    def _muon_group(self, group: dict) -> None:
        lr, wd, mu = group["lr"], group["weight_decay"], group["momentum"]
        todo = []  # (param, its momentum-or-nesterov input, muon_split)
        for p, split in zip(group["params"], group["muon_split"]):
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("MuonClip does not support sparse gradients")
            state = self.state[p]
            if "momentum_buffer" not in state:
                # param dtype, like torch SGD: load_state_dict casts float state to the param dtype anyway
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.mul_(mu).add_(p.grad)
            todo.append((p, buf * mu + p.grad if group["nesterov"] else buf, split))
        for p, o, scale in self._orthogonalised(todo, group["ns_steps"]):
            w = p.to_local() if hasattr(p, "to_local") else p  # o is this rank's rows when p is sharded
            w.mul_(1.0 - lr * wd)
            w.add_(o.to(w.dtype), alpha=-lr * scale)

    def _ns(self, m: torch.Tensor, split: int, steps: int) -> torch.Tensor:
        """NS5 of every matrix in `m` (shaped like its parameter, or a dim-0 slice of it), same shape back."""
        shape = m.shape
        if split > 1:  # (..., k*n, m) -> (..., k, n, m): k matrices per slice, orthogonalised separately
            m = m.unflatten(-2, (split, m.shape[-2] // split))
        return newton_schulz5(m, steps=steps, dtype=self.ns_dtype).reshape(shape)

    def _orthogonalised(self, todo: list, steps: int):
        """(param, NS output for the param's local rows, Muon scale) for every entry of `todo`."""
        owned = []
        for p, m, split in todo:
            scale = muon_scale((*p.shape[:-2], p.shape[-2] // split, p.shape[-1]))
            if not hasattr(m, "to_local"):  # unsharded
                yield p, self._ns(m, split, steps), scale
            elif p.dim() >= 3:  # dim-0 shards of a stack hold whole matrices: orthogonalise them here
                yield p, self._ns(m.to_local(), split, steps), scale
            else:
                owned.append((p, m.to_local().contiguous(), split, scale))
        if owned:
            yield from self._owner_rounds(owned, steps)

    def _owner_rounds(self, owned: list, steps: int):
        """2-D row-sharded matrices: rank j of each round of world_size matrices orthogonalises matrix j whole."""
        import torch.distributed as dist

        group = owned[0][0].device_mesh.get_group()
        world, rank = dist.get_world_size(group), dist.get_rank(group)
        owned = sorted(owned, key=lambda x: -x[0].numel())  # similar sizes per round: no rank waits long
        for start in range(0, len(owned), world):
            rnd = owned[start:start + world]
            mine = rnd[rank] if rank < len(rnd) else None
            local_sizes = [m.numel() for _, m, _, _ in rnd] + [0] * (world - len(rnd))
            own_sizes = _row_shard_sizes(mine[0].shape, world) if mine else [0] * world
            dev, dt = rnd[0][1].device, torch.float32
            send = torch.cat([m.reshape(-1).to(dt) for _, m, _, _ in rnd])
            recv = torch.empty(sum(own_sizes), dtype=dt, device=dev)
            dist.all_to_all_single(recv, send, own_sizes, local_sizes, group=group)
            back = torch.empty(0, dtype=dt, device=dev)
            if mine:  # the full matrix, rows in rank order, exactly as one process holds it
                full = recv.view(mine[0].shape).to(mine[1].dtype)
                back = self._ns(full, mine[2], steps).to(dt).reshape(-1)  # bf16 -> fp32 is exact
            out = torch.empty(sum(local_sizes), dtype=dt, device=dev)
            dist.all_to_all_single(out, back, local_sizes, own_sizes, group=group)
            for (p, m, _, scale), piece in zip(rnd, out.split(local_sizes[:len(rnd)])):
                yield p, piece.view(m.shape), scale

    def _adamw_group(self, group: dict) -> None:
        # torch.optim.AdamW's update; the step count stays a tensor (bias corrections are tensor ops), so there
        # is no .item() and torch.compile traces the whole step without a graph break.
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("MuonClip does not support sparse gradients")
            state = self.state[p]
            if "step" not in state:
                state["step"] = torch.tensor(0.0)  # on CPU like torch's: a scalar operand, never a device sync
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            step = state["step"]
            step += 1
            p.mul_(1.0 - lr * wd)
            state["exp_avg"].lerp_(p.grad, 1.0 - beta1)
            state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
            bias_correction1 = 1.0 - beta1 ** step
            bias_correction2_sqrt = (1.0 - beta2 ** step).sqrt()
            denom = (state["exp_avg_sq"].sqrt() / bias_correction2_sqrt).add_(eps)
            p.addcdiv_(state["exp_avg"] / bias_correction1, denom, value=-lr)


def _row_shard_sizes(shape: torch.Size, world: int) -> list[int]:
    """Elements of each rank's dim-0 shard under FSDP2's Shard(0) (torch.chunk: ceil-sized, last ones short)."""
    rows, per_row = shape[0], math.prod(shape[1:])
    chunk = -(-rows // world)
    return [max(0, min(chunk, rows - k * chunk)) * per_row for k in range(world)]
