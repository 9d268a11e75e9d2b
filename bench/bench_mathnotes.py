"""mathnotes benchmark: acceptance rate by reason on the bundled sample math set, and the normaliser's accuracy.

    .venv/bin/python bench/bench_mathnotes.py                    # embedded SmolLM2-135M, both formats
    .venv/bin/python bench/bench_mathnotes.py --engine-kind openai --base-url http://127.0.0.1:8000/v1 --model M

Part 1 runs the real job (run_mathnotes: routing, translation of the French/German/Spanish documents, learning
notes, math-aware verification) on corpus/samples/math.jsonl split into small shards, so an interrupted run
resumes where it stopped (same --work directory). It reports, per task, variants, accepted, the acceptance rate,
and the rejection rate by reason (the category before the first ':' of each reason), plus failed attempts by
reason. Part 2 judges every labelled normaliser case and reports the accuracy per kind, on the development
cases (mathnotes/data/normalizer_cases.jsonl) and on the held-out ones (normalizer_heldout.jsonl).
Results go to bench/results/mathnotes.json (atomically).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def normaliser_accuracy() -> dict:
    from mathnotes.cases import CASES_PATH, HELDOUT_PATH
    return {"development": case_accuracy(CASES_PATH), "heldout": case_accuracy(HELDOUT_PATH)}


def case_accuracy(path: Path) -> dict:
    from mathnotes.cases import judge, load_cases
    per: dict[str, list[int]] = {}
    failures = []
    for c in load_cases(path):
        outcome, got = judge(c)
        ok = outcome == c["expect"]
        per.setdefault(c["kind"], [0, 0])[0] += ok
        per[c["kind"]][1] += 1
        if not ok:
            failures.append({"kind": c["kind"], "a": c["a"], "b": c["b"], "expect": c["expect"], "got": repr(got)})
    total_ok, total = sum(v[0] for v in per.values()), sum(v[1] for v in per.values())
    return {"accuracy": total_ok / total, "cases": total,
            "by_kind": {k: {"accuracy": v[0] / v[1], "cases": v[1]} for k, v in sorted(per.items())},
            "failures": failures}


def write_sample_shards(work: Path, per_shard: int) -> Path:
    from corpus.samples import SAMPLES_DIR
    from corpus.schema import normalize_doc, table_from_docs
    from corpus.shards import shard_name, write_table
    src = SAMPLES_DIR / "math.jsonl"
    docs = [normalize_doc(json.loads(line), f"{src}:{i}") for i, line in
            enumerate(src.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    inp = work / "input"
    for n, start in enumerate(range(0, len(docs), per_shard)):
        path = inp / shard_name("math", n)
        if not path.exists():
            write_table(path, table_from_docs(docs[start:start + per_shard]))
    return inp


def acceptance(out: Path) -> dict:
    """Per task: variants, accepted, acceptance rate, rejection rate by reason (from rows and rejects shards)."""
    import pyarrow.parquet as pq
    from rephrase.generate import reason_key
    accepted: Counter[str] = Counter()
    rejected: dict[str, Counter[str]] = {}
    rejected_n: Counter[str] = Counter()
    for p in sorted(out.glob("part-*.parquet")):
        accepted.update(pq.read_table(p, columns=["task"]).column("task").to_pylist())
    for p in sorted((out / ".k2forge" / "rejects").glob("part-*.parquet")):
        for row in pq.read_table(p, columns=["task", "reasons"]).to_pylist():
            rejected_n[row["task"]] += 1
            rejected.setdefault(row["task"], Counter()).update({reason_key(r) for r in row["reasons"]})
    tasks = {}
    for task in sorted(set(accepted) | set(rejected_n)):
        n = accepted[task] + rejected_n[task]
        tasks[task] = {"variants": n, "accepted": accepted[task], "acceptance_rate": accepted[task] / n,
                       "rejection_rate_by_reason": {k: v / n for k, v in sorted(rejected.get(task, {}).items())}}
    stats = json.loads((out / ".k2forge/stats.json").read_text())
    keep = ("acceptance_rate", "variants", "variants_accepted", "rejected_by_reason", "failed_attempts_by_reason",
            "attempt_failure_rate_by_reason", "tokens_out", "tokens_per_s", "wall_s", "docs_in")
    return {"by_task": tasks, "overall": {k: stats.get(k) for k in keep},
            "routing": {k: v for k, v in stats.items() if k.startswith(("route_", "lang_", "plan_"))}}


def run_job(args, fmt: str, inp: Path, out: Path) -> float:
    from corpus.spec import parse_spec
    from mathnotes.run import run_mathnotes
    from mathnotes.spec import MathNotesSpec
    engine = {"kind": args.engine_kind, "model": args.model, "max_concurrency": args.batch_size}
    if args.engine_kind == "local":     # the other backends have no batch_size (EngineSpec is one spec per kind)
        engine["batch_size"] = args.batch_size
    if args.base_url:
        engine["base_url"] = args.base_url
    spec = parse_spec(MathNotesSpec, {
        "inputs": [str(inp)], "output": str(out), "format": fmt, "engine": engine,
        "max_new_tokens": args.max_new_tokens, "attempts": args.attempts,
        "chunk_target_tokens": args.chunk_target_tokens, "chunk_max_tokens": args.chunk_target_tokens * 3 // 2,
    }, "bench")
    t0 = time.perf_counter()
    run_mathnotes(spec, on_event=lambda ev: print(json.dumps(ev.to_dict()), flush=True) if ev.type == "log" else None)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/k2forge-bench-mathnotes", help="inputs and job outputs (resumable)")
    ap.add_argument("--results", default=str(ROOT / "bench" / "results" / "mathnotes.json"))
    ap.add_argument("--formats", default="structured,note", help="comma-separated: structured, note")
    ap.add_argument("--engine-kind", default="local", choices=["local", "vllm", "openai"])
    ap.add_argument("--model", default=None, help="none = the embedded SmolLM2-135M-Instruct")
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--attempts", type=int, default=1)
    ap.add_argument("--chunk-target-tokens", type=int, default=512)
    ap.add_argument("--per-shard", type=int, default=4, help="documents per input shard (resumable unit)")
    args = ap.parse_args()

    from corpus.shards import atomic_write_json
    norm = normaliser_accuracy()
    for name, r in norm.items():
        print(f"normaliser accuracy ({name}): {r['accuracy']:.3f} on {r['cases']} cases; "
              + " ".join(f"{k}={v['accuracy']:.3f}" for k, v in r["by_kind"].items()), flush=True)
    runs = {}
    for fmt in args.formats.split(","):
        work = Path(args.work) / f"{args.engine_kind}-{(args.model or 'embedded').replace('/', '_')}-{fmt}"
        inp = write_sample_shards(work, args.per_shard)
        wall = run_job(args, fmt, inp, work / "out")
        runs[fmt] = {**acceptance(work / "out"), "wall_s_this_invocation": wall}
        for task, t in runs[fmt]["by_task"].items():
            print(f"[{fmt}] {task}: accepted {t['accepted']}/{t['variants']} = {t['acceptance_rate']:.3f}; "
                  "rejected by reason " + ", ".join(f"{k}={v:.2f}" for k, v in t["rejection_rate_by_reason"].items()),
                  flush=True)
    import torch
    import transformers
    atomic_write_json(args.results, {
        "normaliser": norm, "acceptance_by_format": runs,
        "config": {k: v for k, v in vars(args).items() if k not in ("work", "results")},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "command": "python bench/bench_mathnotes.py " + " ".join(sys.argv[1:]),
    })
    print(f"results -> {args.results}")


if __name__ == "__main__":
    main()
