"""CPU microbench of MuonClip on the `tiny` model: one optimizer step and one QK-Clip.

Anchor: `torch.optim.AdamW` (torch's default implementation) stepping ALL parameters of the same model with the
same gradients: what any optimizer must at least pay. Measured, in interleaved rounds so that load from other
processes hits all alike (medians of per-round ratios reported):
  - MuonClip.step (Muon with bf16 Newton-Schulz on hidden matrices, AdamW on the rest, QK-Clip) / AdamW step
    target <= 5 (5 NS iterations of 3 matmuls per matrix on CPU, where bf16 matmuls are not faster);
  - the same with ns_dtype=float32 (CPU has no bf16 speed-up; on GPU bf16 is the point);
  - one QK-Clip of every layer with ALL heads above tau (worst case: every q/k row rescaled) / MuonClip step,
    target <= 0.1;
  - MuonClip step / one forward+backward of a (batch x seq) training batch, for scale.
Writes bench/results/optimizer.json.

    .venv/bin/python bench/bench_optimizer.py [--rounds 7] [--batch 4] [--seq 256] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _timed(fn, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def build_cases(args):
    """The tiny model with fixed real gradients, and the timed callables on it."""
    import torch

    from trainer.config import preset
    from trainer.model import K2ForCausalLM
    from trainer.muonclip import MuonClip
    from trainer.qkclip import qk_clip_

    torch.manual_seed(0)
    config = preset("tiny")
    model = K2ForCausalLM(config, attn_impl="dense")
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq))
    model.train()
    model(ids, labels=ids).loss.backward()  # real gradients, kept fixed for every optimizer below
    params = [p for p in model.parameters() if p.requires_grad]
    adamw = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    muon = MuonClip.from_model(model, lr=1e-5, weight_decay=0.1, qk_clip_tau=100.0)
    muon32 = MuonClip.from_model(model, lr=1e-5, weight_decay=0.1, qk_clip_tau=100.0, ns_dtype=torch.float32)
    layers = muon.qk_clip_layers

    def clip_all_heads():
        for _, layer in layers:  # every head above tau, so every q / k_nope row is rescaled (gamma ~ 1)
            layer.max_logits.fill_(100.0001)
        qk_clip_(layers, tau=100.0)

    def fwd_bwd():
        model.zero_grad(set_to_none=False)
        model(ids, labels=ids).loss.backward()

    cases = {"adamw_step": adamw.step, "muonclip_step": muon.step, "muonclip_fp32_ns_step": muon32.step,
             "qk_clip_all_heads": clip_all_heads}
    sizes = {"params": sum(p.numel() for p in params),
             "muon_params": sum(p.numel() for g in muon.param_groups if g["use_muon"] for p in g["params"])}
    return cases, fwd_bwd, sizes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5, help="calls per timing inside a round")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    # one thread by default: on a shared 2-core box, thread oversubscription swamps a millisecond-scale step
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cases, fwd_bwd, sizes = build_cases(args)
    for fn in cases.values():  # warm-up: allocate optimizer states, thread pools
        fn()
    rows = []
    for r in range(args.rounds):
        row = {name: _timed(fn, args.reps) for name, fn in cases.items()}
        row["fwd_bwd"] = _timed(fwd_bwd, 1)
        rows.append(row)
        print(f"round {r}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in row.items()))
    report(args, rows, sizes, torch.__version__, torch.get_num_threads())


def report(args, rows: list[dict], sizes: dict, torch_version: str, threads: int) -> None:
    """Median of per-round ratios (both sides of a ratio were timed moments apart, under the same load)."""
    med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
    pairs = {"muonclip_vs_adamw": ("muonclip_step", "adamw_step"),
             "muonclip_fp32_ns_vs_adamw": ("muonclip_fp32_ns_step", "adamw_step"),
             "qk_clip_vs_muonclip_step": ("qk_clip_all_heads", "muonclip_step"),
             "muonclip_step_vs_fwd_bwd": ("muonclip_step", "fwd_bwd")}
    ratios = {k: statistics.median(row[a] / row[b] for row in rows) for k, (a, b) in pairs.items()}
    result = {"bench": "optimizer", "model": "tiny", **sizes, "batch": args.batch, "seq": args.seq,
              "targets": {"muonclip_vs_adamw": 5.0, "qk_clip_vs_muonclip_step": 0.1},
              "median_ms": {k: round(v * 1e3, 3) for k, v in med.items()},
              "ratios": {k: round(v, 4) for k, v in ratios.items()}, "rounds": args.rounds, "reps": args.reps,
              "versions": {"python": platform.python_version(), "torch": torch_version},
              "machine": {"cpus": os.cpu_count(), "torch_threads": threads, "platform": platform.platform()}}
    out = Path(__file__).resolve().parent / "results" / "optimizer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"MuonClip step / AdamW step: {ratios['muonclip_vs_adamw']:.2f} (target <= 5; fp32 NS: "
          f"{ratios['muonclip_fp32_ns_vs_adamw']:.2f}); QK-Clip (all heads) / MuonClip step: "
          f"{ratios['qk_clip_vs_muonclip_step']:.3f} (target <= 0.1); MuonClip step / fwd+bwd "
          f"({args.batch}x{args.seq}): {ratios['muonclip_step_vs_fwd_bwd']:.2f} -> {out}")


if __name__ == "__main__":
    main()
