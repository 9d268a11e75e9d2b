"""Analytic per-rank memory and Muon work of a preset at W data-parallel (FSDP2) ranks, before and after issue 14.

Computed from the code's own shapes: the model is built on the meta device (trainer/model.py), its parameters
are grouped by the optimizer's rules (trainer/muonclip.py param_groups), FSDP2's Shard(0) chunking is the one
distributed Muon assumes (muonclip._row_shard_sizes), and the 2-D matrices are assigned to owner ranks exactly
as MuonClip._owner_rounds does (largest first, rounds of W). Nothing is trained; numbers are arithmetic.

Before: every rank built and initialised the full fp32 model on the host, and the optimizer gathered every
Muon matrix (full_tensor) and ran Newton-Schulz on all of them on every rank; checkpoints gathered the full
model + optimizer state to rank 0. After: meta-device build, each rank materialises and initialises its shard;
Muon runs NS on the experts each rank holds and on the 2-D matrices it owns (all_to_all in and out); DCP writes
each rank's shards.

Newton-Schulz FLOPs for an n x m matrix (n <= m; it iterates on the short side), 5 iterations of
  A = X X^T (2 n^2 m), A @ A (2 n^3), (bA + cA^2) X (2 n^2 m)  ->  5 * (4 n^2 m + 2 n^3).
Memory per rank (training state, FSDP2-sharded): fp32 params + fp32 grads + optimizer state (Muon: 1 fp32
momentum; AdamW: 2 fp32 moments), / W; activations are not included (they depend on batch and checkpointing).

    .venv/bin/python bench/bench_scale_table.py [--preset kimi-k2] [--gpus 64 256 1024]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def ns_flops(n: int, m: int, steps: int = 5) -> int:
    n, m = min(n, m), max(n, m)
    return steps * (4 * n * n * m + 2 * n ** 3)


def matrices(shape, split: int) -> tuple[int, int, int]:
    """(count, rows, cols) of the matrices Muon orthogonalises in a parameter of `shape`."""
    lead = math.prod(shape[:-2]) * split
    return lead, shape[-2] // split, shape[-1]


def analyse(preset_name: str, gpus: list[int]) -> dict:
    import torch

    from trainer.config import preset
    from trainer.model import K2ForCausalLM
    from trainer.muonclip import _row_shard_sizes, param_groups

    cfg = preset(preset_name)
    with torch.device("meta"):
        model = K2ForCausalLM(cfg, init_weights=False)
    groups = param_groups(model, lr=1.0, weight_decay=0.0)
    muon = [(n, p.shape, s) for g in groups if g["use_muon"] for (n, p), s in zip(g["params"], g["muon_split"])]
    adamw_numel = sum(p.numel() for g in groups if not g["use_muon"] for _, p in g["params"])
    muon_numel = sum(math.prod(shape) for _, shape, _ in muon)
    total = muon_numel + adamw_numel
    state_bytes = 4 * (2 * total + muon_numel + 2 * adamw_numel)  # params + grads + optimizer state, fp32
    full_flops = sum(c * ns_flops(r, k) for _, shape, s in muon for c, r, k in [matrices(shape, s)])
    stacks = [(n, shape, s) for n, shape, s in muon if len(shape) >= 3]
    flat = sorted([(n, shape, s) for n, shape, s in muon if len(shape) == 2], key=lambda x: -math.prod(x[1]))
    rows = []
    for w in gpus:
        per_rank = [0] * w
        for _, shape, s in stacks:  # each rank orthogonalises the experts of its dim-0 shard
            _, r, k = matrices(shape, s)
            per_matrix = ns_flops(r, k) * s * math.prod(shape[1:-2])
            for rank, elems in enumerate(_row_shard_sizes(shape, w)):
                per_rank[rank] += elems // math.prod(shape[1:]) * per_matrix
        a2a_bytes = [0] * w
        for start in range(0, len(flat), w):  # owner rounds, as MuonClip._owner_rounds
            for j, (_, shape, s) in enumerate(flat[start:start + w]):
                c, r, k = matrices(shape, s)
                per_rank[j] += c * ns_flops(r, k)
                for rank, elems in enumerate(_row_shard_sizes(shape, w)):
                    a2a_bytes[rank] += 2 * 4 * elems  # own shard out, its result back (fp32)
        rows.append({
            "gpus": w,
            "before": {"host_bytes_at_init": 4 * total, "muon_flops_per_rank": full_flops,
                       "muon_gather_bytes_per_rank": 4 * muon_numel, "ckpt_rank0_host_bytes": state_bytes // 2,
                       "state_bytes_per_rank": state_bytes / w},
            "after": {"host_bytes_at_init": 4 * total / w, "muon_flops_per_rank": max(per_rank),
                      "muon_flops_mean_per_rank": sum(per_rank) / w, "muon_a2a_bytes_per_rank": max(a2a_bytes),
                      "ckpt_rank0_host_bytes": 0, "state_bytes_per_rank": state_bytes / w},
        })
    return {"preset": preset_name, "params": total, "muon_params": muon_numel, "adamw_params": adamw_numel,
            "muon_matrices_2d": len(flat), "expert_stacks": len(stacks), "ns_flops_all_matrices": full_flops,
            "rows": rows}


def _fmt(x: float, unit: str) -> str:
    for p, d in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if x >= d:
            return f"{x / d:.3g} {p}{unit}"
    return f"{x:.3g} {unit}"


def table(res: dict) -> str:
    head = ("| GPUs | host RAM at init per rank | training state per rank | Muon NS FLOPs per rank per step | "
            "Muon traffic per rank per step | checkpoint on rank 0 |\n|---|---|---|---|---|---|\n")
    lines = []
    for r in res["rows"]:
        b, a = r["before"], r["after"]
        lines.append(f"| {r['gpus']} | {_fmt(b['host_bytes_at_init'], 'B')} -> {_fmt(a['host_bytes_at_init'], 'B')}"
                     f" | {_fmt(a['state_bytes_per_rank'], 'B')} (unchanged)"
                     f" | {_fmt(b['muon_flops_per_rank'], 'FLOP')} -> {_fmt(a['muon_flops_per_rank'], 'FLOP')}"
                     f" | {_fmt(b['muon_gather_bytes_per_rank'], 'B')} gathered -> "
                     f"{_fmt(a['muon_a2a_bytes_per_rank'], 'B')} all_to_all"
                     f" | {_fmt(b['ckpt_rank0_host_bytes'], 'B')} gathered -> shards only |")
    return head + "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="kimi-k2")
    ap.add_argument("--gpus", type=int, nargs="+", default=[64, 256, 1024])
    args = ap.parse_args(argv)
    res = analyse(args.preset, args.gpus)
    res["markdown"] = table(res)
    out = Path(__file__).resolve().parent / "results" / f"scale_table_{args.preset}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"{args.preset}: {res['params']:,} parameters ({res['muon_params']:,} Muon, {res['adamw_params']:,} AdamW),"
          f" {res['expert_stacks']} expert stacks + {res['muon_matrices_2d']} 2-D Muon matrices; NS of all "
          f"matrices {_fmt(res['ns_flops_all_matrices'], 'FLOP')} per step")
    print(res["markdown"])
    return res


if __name__ == "__main__":
    main()
