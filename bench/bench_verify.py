"""Benchmark of the fidelity verifier on the TEST split (rephrase/data/test.jsonl, authors who wrote none of the
dev rows the model was fitted on), CPU. Nothing here is tuned: the shipped model is measured as shipped.

Prints and writes bench/results/verify.json, side by side in one run, on the same rows:
- the shipped default verifier (consistency model + gates): faithful acceptance, unfaithful rejection, per
  corruption type, per style, AUROC of the consistency score;
- the rule checks it replaced (numbers, entities, negation, omission, addition with their former thresholds);
- embedding cosine alone (all-MiniLM-L6-v2, the usual semantic-similarity filter), its threshold chosen on dev for
  the same 0.95 faithful acceptance;
- throughput in chunks (pairs) per second, batched vs one pair per call.
Targets (issue 16): faithful accepted >= 0.95 AND unfaithful rejected >= 0.95; every type >= 0.85.

    .venv/bin/python bench/bench_verify.py [--unbatched 12]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LEGACY = ["embedding", "numbers", "entities", "negation", "omission", "addition", "length", "near_copy"]


def _cosine_only(dev_ev, test_ev, target: float) -> dict:
    """Cosine threshold chosen on dev for `target` faithful acceptance, measured on test."""
    import numpy as np

    from rephrase.verify.calibrate import auroc, prf
    cos = np.array(dev_ev.cosine)
    faithful = np.array([not u for u in dev_ev.unfaithful])
    thr = float(np.quantile(cos[faithful], 1 - target))
    rejected = [c < thr for c in test_ev.cosine]
    m = prf(rejected, test_ev.unfaithful)
    return {"threshold_on_dev": round(thr, 4), **m, "unfaithful_rejected": m["recall"],
            "auroc": round(auroc(test_ev.cosine, [not u for u in test_ev.unfaithful]), 4)}


def _cold() -> None:
    """Empty the verifier's embedding and parse caches, so each timed pass computes everything it verifies."""
    from rephrase.verify import embed, nlp
    embed._cache.clear()
    nlp._cache.data.clear()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unbatched", type=int, default=12, help="pairs verified one per call for the comparison")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "verify.json"))
    args = ap.parse_args()

    import torch

    from corpus.shards import atomic_write_json
    from rephrase.verify import Verifier, VerifierSpec
    from rephrase.verify.calibrate import DEV, TEST, calibrate, evaluate, load_rows
    from rephrase.verify.consistency import default_model

    spec = VerifierSpec()
    test_rows = load_rows(TEST)
    pairs = [(r["source"], r["rewrite"]) for r in test_rows]
    verifier = Verifier(spec)
    t0 = time.perf_counter()
    verifier.verify_batch(pairs[:2])  # model loads + warm-up, not timed below
    load_s = time.perf_counter() - t0
    _cold()
    t0, c0 = time.perf_counter(), time.process_time()
    verifier.verify_batch(pairs)
    batched_s, batched_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    subset = pairs[:args.unbatched]
    _cold()
    t0 = time.perf_counter()
    for p in subset:
        verifier.verify_batch([p])
    unbatched_s = time.perf_counter() - t0

    shipped = calibrate(DEV, spec, test=TEST, fit=False)
    legacy_spec = VerifierSpec(checks=LEGACY, thresholds={"min_cosine": 0.6})
    legacy = calibrate(DEV, legacy_spec, test=TEST, fit=False)
    cosine = _cosine_only(evaluate(load_rows(DEV), VerifierSpec(checks=["embedding"])),
                          evaluate(test_rows, VerifierSpec(checks=["embedding"])), 0.95)
    t = shipped.test
    result = {
        "test_rows": t["rows"], "test_faithful": t["faithful"],
        "shipped": {"faithful_accepted": t["faithful_accepted"], "unfaithful_rejected": t["unfaithful_rejected"],
                    "precision": t["precision"], "f1": t["f1"], "auroc_consistency": t.get("auroc_consistency"),
                    "per_corruption": t["per_corruption"], "per_style": t["per_style"],
                    "dev_faithful_accepted": shipped.dev["faithful_accepted"],
                    "dev_unfaithful_rejected": shipped.dev["unfaithful_rejected"]},
        "legacy_rules": {k: legacy.test[k] for k in ("faithful_accepted", "unfaithful_rejected", "precision",
                                                      "per_corruption")},
        "cosine_only": cosine,
        "model": {"fitted_on": default_model().fitted_on, "threshold": default_model().threshold,
                  "weights": dict(zip(default_model().features, default_model().weights))},
        "throughput": {"batched_chunks_per_s": round(len(pairs) / batched_s, 2),
                       "unbatched_chunks_per_s": round(len(subset) / unbatched_s, 2),
                       "batching_speedup": round((len(pairs) / batched_s) / (len(subset) / unbatched_s), 2),
                       "model_load_s": round(load_s, 2),
                       "batched_cpu_s_per_chunk": round(batched_cpu_s / len(pairs), 4)},
        "cpu_load_1min": round(os.getloadavg()[0], 2),  # other jobs on the box slow every figure here
        "env": {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine()},
    }
    atomic_write_json(args.out, result)
    print(shipped.format())
    for name, m in (("shipped consistency model", result["shipped"]), ("legacy rule checks", result["legacy_rules"]),
                    ("cosine only (MiniLM)", cosine)):
        print(f"{name:<26} test faithful accepted {m['faithful_accepted']:.3f}  unfaithful rejected "
              f"{m['unfaithful_rejected']:.3f}")
    worst = min(t["per_corruption"].items(), key=lambda kv: kv[1]["rate"])
    print(f"targets: accepted >= 0.95 (measured {t['faithful_accepted']:.3f}), rejected >= 0.95 (measured "
          f"{t['unfaithful_rejected']:.3f}), every type >= 0.85 (worst: {worst[0]} {worst[1]['rate']:.2f})")
    tp = result["throughput"]
    print(f"throughput: batched {tp['batched_chunks_per_s']} chunks/s, one per call "
          f"{tp['unbatched_chunks_per_s']} chunks/s -> batching x{tp['batching_speedup']} "
          f"(load {tp['model_load_s']} s; {tp['batched_cpu_s_per_chunk']} CPU s per chunk batched)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
