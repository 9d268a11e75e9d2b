"""Training-step benchmark: tokens/s, MFU, and the share of step time in the optimizer and in QK-Clip.

One training step = forward + backward (bf16 autocast on CUDA, fp32 on CPU) + MuonClip.step (Muon / AdamW
update AND QK-Clip) + router-bias update, on random token batches (throughput depends only on shapes; routing
on random tokens is near-uniform, i.e. the balanced case the bias update aims for). Each part is timed
separately with torch.cuda.synchronize() around it on CUDA, so asynchronous kernels are charged to the right
part. QK-Clip is timed on its own as a worst case: every head of every layer above tau, so every q/k row is
rescaled (MuonClip.step includes one QK-Clip; its share is qk_clip_time / step_time).

MFU = flops_per_token * tokens/s / peak bf16 FLOP/s, with (trainer/metrics.py)
    flops_per_token = 6 * (activated params - embedding table) + 6 * L * H * (d_qk + d_v) * T
Targets (one H100, preset small, bf16, --compile): MFU >= 35%, optimizer <= 10% of step time, QK-Clip <= 1%.
Anchors: torchtitan ~20% MFU for DeepSeek-V3-16B on 8xH100; Moonlight: Muon costs 1-3% of forward-backward.

    python -m trainer.bench --preset tiny --device cpu              (CPU: so the benchmark cannot rot)
    python -m trainer.bench --preset small --device cuda --compile --batch 8 --seq-len 4096
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import torch

from corpus.shards import atomic_write_json
from trainer.balance import update_router_biases
from trainer.config import preset
from trainer.loop import window_loss
from trainer.metrics import flops_per_token, peak_flops
from trainer.model import K2ForCausalLM
from trainer.muonclip import MuonClip
from trainer.protocol import q_projection
from trainer.qkclip import qk_clip_


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def build(args):
    device = torch.device(args.device)
    cfg = preset(args.preset, **json.loads(args.model))
    torch.manual_seed(0)
    model = K2ForCausalLM(cfg).to(device)
    if args.compile:
        for layer in model.blocks():
            layer.compile()
    opt = MuonClip.from_model(model, lr=1e-4, weight_decay=0.1, qk_clip_tau=args.tau)
    return cfg, model, opt, device


def _worst_case_clip_time(opt, tau: float, device) -> float:
    """Seconds of one QK-Clip with every head far above tau; the weights are restored afterwards."""
    saved = [(w, w.detach().clone()) for _, layer in opt.qk_clip_layers
             for w in (q_projection(layer).weight, layer.kv_b_proj.weight)]
    for _, layer in opt.qk_clip_layers:
        layer.max_logits.fill_(tau * 4)
    t = _timed(lambda: qk_clip_(opt.qk_clip_layers, tau, apply=True), device)
    with torch.no_grad():  # undo the synthetic clip so the next step trains the real weights
        for w, orig in saved:
            w.copy_(orig)
    return t


def time_steps(args, cfg, model, opt, device) -> list[tuple[float, float, float, float]]:
    """(fwd+bwd, optimizer step, router-bias update, worst-case QK-Clip) seconds per timed step. The bias update
    is timed on its own, so the optimizer here has no post-hook (the training loop's has)."""
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, cfg.vocab_size, (args.batch, args.seq_len + 1), generator=gen).to(device)
               for _ in range(2)]
    rows = []
    for i in range(args.warmup + args.steps):
        x = batches[i % 2]

        def fwd_bwd():
            window_loss(model, x, None, device).loss.backward()

        t_fb = _timed(fwd_bwd, device)
        t_opt = _timed(opt.step, device)
        t_bias = _timed(lambda: update_router_biases(model), device)
        opt.zero_grad(set_to_none=True)
        t_clip = _worst_case_clip_time(opt, args.tau, device)
        if i >= args.warmup:
            rows.append((t_fb, t_opt, t_bias, t_clip))
    return rows


def bench(args) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg, model, opt, device = build(args)
    rows = time_steps(args, cfg, model, opt, device)
    med = [statistics.median(r[k] for r in rows) for k in range(4)]
    step = med[0] + med[1] + med[2]
    tokens = args.batch * args.seq_len
    fpt = flops_per_token(cfg, args.seq_len)
    peak = peak_flops(device)
    return {
        "preset": args.preset, "model_overrides": json.loads(args.model), "device": _device_name(device),
        "compile": args.compile, "batch": args.batch, "seq_len": args.seq_len, "steps_timed": args.steps,
        "tokens_per_s": tokens / step, "step_time_s": step, "fwd_bwd_s": med[0], "optimizer_s": med[1],
        "router_bias_s": med[2], "qk_clip_worst_case_s": med[3],
        "optimizer_share_of_step": med[1] / step, "qk_clip_share_of_step": med[3] / step,
        "optimizer_vs_fwd_bwd": med[1] / med[0],
        "flops_per_token": fpt, "peak_flops": peak, "mfu": fpt * tokens / step / peak if peak else None,
        "mfu_formula": "6*(activated_params - vocab*hidden) + 6*L*H*(qk_head_dim + v_head_dim)*T per token",
        "targets": {"mfu_min (H100, small, bf16, compile)": 0.35, "optimizer_share_max": 0.10,
                    "qk_clip_share_max": 0.01},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "threads": torch.get_num_threads(),
    }


def _device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="k2forge train bench", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--model", default="{}", help="JSON ModelConfig overrides")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--tau", type=float, default=100.0)
    ap.add_argument("--compile", action="store_true", help="torch.compile each block")
    ap.add_argument("--threads", type=int, default=None, help="CPU intra-op threads")
    ap.add_argument("--out", default=None, help="write the result JSON here")
    return ap.parse_args(argv)


def format_result(r: dict[str, Any]) -> str:
    mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a (unknown peak on this device)"
    return (f"{r['preset']} on {r['device']} (batch {r['batch']} x {r['seq_len']}, compile={r['compile']}):\n"
            f"  tokens/s            {r['tokens_per_s']:,.0f}\n"
            f"  MFU                 {mfu}   [{r['mfu_formula']}]\n"
            f"  optimizer share     {r['optimizer_share_of_step']:.1%} of step (target <= 10% on GPU); "
            f"{r['optimizer_vs_fwd_bwd']:.1%} of fwd+bwd (Moonlight: 1-3%)\n"
            f"  QK-Clip share       {r['qk_clip_share_of_step']:.2%} of step, worst case (target <= 1%)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    res = bench(args)
    print(format_result(res))
    if args.out:
        atomic_write_json(args.out, res)
        print(f"wrote {args.out}")
    return res


if __name__ == "__main__":
    main()
