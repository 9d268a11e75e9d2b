"""Peak host memory of one training forward + backward with the full-logits cross-entropy vs chunked CE.

Same measurement as bench_activation_ckpt.py: each setting runs in a fresh process (ru_maxrss is a high-water
mark); build the model, allocate every gradient up front, then one forward + backward of a (batch x seq)
batch; the activation peak is peak RSS minus the RSS after building. A vocab-heavy config (the `small` preset
with K2's 163,840-token vocabulary, few layers) so the (tokens, vocab) fp32 logits dominate the activations.
Also reports the loss and the max |grad| difference of the head against the unchunked run (exactness).
CPU, fp32, dense attention. Writes bench/results/chunked_ce.json.

    .venv/bin/python bench/bench_chunked_ce.py [--preset small] [--vocab 163840] [--batch 1] [--seq 2048]
                                               [--layers 1] [--chunks 0,512,4096]
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
name, vocab, batch, seq, layers, chunk = sys.argv[2], *map(int, sys.argv[3:8])
torch.set_num_threads(1)
model = K2ForCausalLM(preset(name, num_hidden_layers=layers, vocab_size=vocab), seed=0)
model.set_loss_chunking(chunk)
model.train()
for p in model.parameters():
    p.grad = torch.zeros_like(p)  # grads allocated up front: the peak difference is activations
ids = torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(0))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
loss = model(ids, labels=ids).loss
loss.backward()
secs = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
torch.save(model.lm_head.weight.grad, sys.argv[8])
print(json.dumps({"loss_chunk_tokens": chunk, "loss": float(loss), "seconds": round(secs, 2),
                  "rss_after_build": base, "peak_rss": peak}))
'''


def main(argv: list[str] | None = None) -> dict:
    import tempfile

    import torch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--vocab", type=int, default=163_840)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--chunks", default="0,512,4096", help="loss_chunk_tokens values; 0 = full logits (first)")
    args = ap.parse_args(argv)
    chunks = [int(c) for c in args.chunks.split(",")]
    if chunks[0] != 0:
        chunks = [0, *chunks]
    runs, grads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for c in chunks:
            gpath = str(Path(tmp) / f"g{c}.pt")
            out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), args.preset, str(args.vocab),
                                  str(args.batch), str(args.seq), str(args.layers), str(c), gpath],
                                 capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            grads.append(torch.load(gpath))
    tokens = args.batch * args.seq
    for r, g in zip(runs, grads):
        r["activation_peak_bytes"] = r["peak_rss"] - r["rss_after_build"]
        r["loss_diff_vs_full"] = abs(r["loss"] - runs[0]["loss"])
        r["head_grad_max_abs_diff_vs_full"] = float((g - grads[0]).abs().max())
    res = {"config": vars(args), "tokens": tokens,
           "full_fp32_logits_bytes": tokens * args.vocab * 4, "runs": runs}
    (ROOT / "bench" / "results" / "chunked_ce.json").write_text(json.dumps(res, indent=2) + "\n")
    full = runs[0]["activation_peak_bytes"]
    print(f"{args.preset} ({args.layers} layers, vocab {args.vocab}), {args.batch} x {args.seq} tokens "
          f"(full fp32 logits {res['full_fp32_logits_bytes'] / 2**20:.0f} MiB):")
    for r in runs:
        print(f"  loss_chunk_tokens={r['loss_chunk_tokens']:>5}: activation peak "
              f"{r['activation_peak_bytes'] / 2**20:6.0f} MiB ({r['activation_peak_bytes'] / full:.2f}x), "
              f"{r['seconds']} s, loss {r['loss']:.6f} (diff {r['loss_diff_vs_full']:.1e}), "
              f"head grad max diff {r['head_grad_max_abs_diff_vs_full']:.1e}")
    return res


if __name__ == "__main__":
    main()
