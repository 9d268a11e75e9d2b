"""Peak host memory of one training forward + backward with and without per-block activation checkpointing.

Each setting runs in a fresh process (ru_maxrss is a high-water mark): build the preset, one forward+backward
of a (batch x seq) batch, report peak RSS minus the RSS after building (params and grads dominate the rest),
and the loss (equal in both: the recompute is exact). CPU, fp32, dense attention.
Writes bench/results/activation_ckpt.json.

    .venv/bin/python bench/bench_activation_ckpt.py [--preset small] [--batch 2] [--seq 512] [--layers 4]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import json, resource, sys, time, torch
sys.path.insert(0, sys.argv[1])
from trainer.config import preset
from trainer.model import K2ForCausalLM
name, batch, seq, layers, ac = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1"
torch.set_num_threads(1)
model = K2ForCausalLM(preset(name, num_hidden_layers=layers), seed=0)
model.set_activation_checkpointing(ac)
model.train()
for p in model.parameters():
    p.grad = torch.zeros_like(p)  # grads allocated up front: the peak difference is activations
ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
loss = model(ids, labels=ids).loss
loss.backward()
print(json.dumps({"activation_checkpointing": ac, "loss": float(loss), "seconds": round(time.perf_counter() - t0, 2),
                  "rss_after_build": base, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
'''


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    args = ap.parse_args(argv)
    runs = []
    for ac in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), args.preset, str(args.batch), str(args.seq),
                              str(args.layers), ac], capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    act = [r["peak_rss"] - r["rss_after_build"] for r in runs]
    res = {"config": vars(args), "runs": runs, "activation_peak_bytes": {"off": act[0], "on": act[1]},
           "ratio_on_over_off": act[1] / act[0], "same_loss": runs[0]["loss"] == runs[1]["loss"]}
    (ROOT / "bench" / "results" / "activation_ckpt.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"{args.preset} ({args.layers} layers), batch {args.batch} x {args.seq}: activation peak "
          f"{act[0] / 2**20:.0f} MiB -> {act[1] / 2**20:.0f} MiB with checkpointing "
          f"({res['ratio_on_over_off']:.2f}x); time {runs[0]['seconds']} -> {runs[1]['seconds']} s; "
          f"same loss: {res['same_loss']}")
    return res


if __name__ == "__main__":
    main()
