"""Benchmark of the fidelity verifier on the labelled set (rephrase/data/labelled.jsonl), CPU.

Prints and writes bench/results/verify.json:
- precision/recall of REJECTING unfaithful rewrites, for the whole verifier and per check;
- AUROC of the embedding cosine alone vs the combined verifier (anchor: cosine alone is below chance here);
- the same on rephrase/data/heldout.jsonl, written after the thresholds were fixed;
- throughput in chunks (pairs) per second, batched (one verify_batch over the whole set) vs one pair per call,
  and the ratio between them (anchor: batching should win; per-call overhead dominates on 2 cores).

    .venv/bin/python bench/bench_verify.py [--unbatched 12]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unbatched", type=int, default=12, help="pairs verified one per call for the comparison")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "verify.json"))
    args = ap.parse_args()

    import torch

    from corpus.shards import atomic_write_json
    from rephrase.verify import Verifier, VerifierSpec, calibrate
    from rephrase.verify.calibrate import HELDOUT, LABELLED, read_jsonl

    spec = VerifierSpec()
    rows = read_jsonl(LABELLED)
    pairs = [(r["source"], r["rewrite"]) for r in rows]
    verifier = Verifier(spec)
    t0 = time.perf_counter()
    verifier.verify_batch(pairs[:2])  # model load + warm-up, not timed below
    load_s = time.perf_counter() - t0

    # calibrate verifies the whole set in one batch; its time (metrics are negligible) is the batched figure
    t0, c0 = time.perf_counter(), time.process_time()
    report = calibrate(LABELLED, spec)
    batched_s, batched_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    # rows written after the thresholds were chosen: the less optimistic figure
    heldout = calibrate(HELDOUT, spec, sweep=False)
    subset = pairs[:args.unbatched]
    t0 = time.perf_counter()
    for p in subset:
        verifier.verify_batch([p])
    unbatched_s = time.perf_counter() - t0
    result = {
        "rows": report.n, "faithful": report.n_faithful,
        "verifier": report.verifier, "per_check": report.per_check,
        "per_corruption": {k: {"n": v["n"], "rejected": v["rejected"]} for k, v in report.per_corruption.items()},
        "auroc_cosine": report.auroc_cosine, "auroc_combined": report.auroc_combined,
        "heldout": {"rows": heldout.n, "verifier": heldout.verifier, "auroc_cosine": heldout.auroc_cosine,
                    "auroc_combined": heldout.auroc_combined},
        "suggested_thresholds": report.suggested, "suggested_verifier": report.suggested_verifier,
        "throughput": {"batched_chunks_per_s": round(len(pairs) / batched_s, 2),
                       "unbatched_chunks_per_s": round(len(subset) / unbatched_s, 2),
                       "batching_speedup": round((len(pairs) / batched_s) / (len(subset) / unbatched_s), 2),
                       "model_load_s": round(load_s, 2),
                       # CPU seconds (all threads) per chunk: unlike wall time, barely moved by other jobs
                       "batched_cpu_s_per_chunk": round(batched_cpu_s / len(pairs), 4)},
        "cpu_load_1min": round(os.getloadavg()[0], 2),  # other jobs on the box slow every figure here
        "env": {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine()},
        "spec": json.loads(spec.model_dump_json()),
    }
    atomic_write_json(args.out, result)
    print(report.format())
    tp = result["throughput"]
    print(f"throughput: batched {tp['batched_chunks_per_s']} chunks/s, one per call "
          f"{tp['unbatched_chunks_per_s']} chunks/s -> batching x{tp['batching_speedup']} "
          f"(model load {tp['model_load_s']} s; {tp['batched_cpu_s_per_chunk']} CPU s per chunk batched)")
    print(f"AUROC ratio combined/cosine: {report.auroc_combined / report.auroc_cosine:.2f}")
    hv = heldout.verifier
    print(f"held-out ({heldout.n} rows): precision {hv['precision']:.3f} recall {hv['recall']:.3f} faithful "
          f"accepted {hv['faithful_accepted']:.3f}; AUROC cosine {heldout.auroc_cosine:.3f} vs combined "
          f"{heldout.auroc_combined:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
