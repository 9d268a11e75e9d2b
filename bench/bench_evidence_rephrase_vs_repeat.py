"""The K2 Table 1 probe in miniature (evidence.probe), timed: the table, the ordering verdict, the yield.

Runs `k2forge evidence rephrase-vs-repeat` at one size with the configured engine (default: the embedded
SmolLM2-135M on llama.cpp, CPU) and writes bench/results/evidence_rephrase_vs_repeat.json: per arm the mean ±
std over seeds of QA exact / ranked accuracy and held-out paraphrase losses, whether raw < 1 reph x10 < 10 reph
x1 holds and by how much relative to the seed spread, the rephrase stage's yield, wall and CPU seconds per phase,
and the versions. The artifacts (report.md, plot, runs) stay under --out.

    .venv/bin/python bench/bench_evidence_rephrase_vs_repeat.py                 # size small (minutes)
    .venv/bin/python bench/bench_evidence_rephrase_vs_repeat.py --size default  # < 30 min on 2 free cores
    .venv/bin/python bench/bench_evidence_rephrase_vs_repeat.py --size large \\
        --engine '{"kind": "openai", "base_url": "http://127.0.0.1:8000/v1"}'  # GPUs, a real model
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _cpu_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="small", choices=["tiny", "small", "default", "large"])
    ap.add_argument("--out", default="out/bench_evidence_rephrase_vs_repeat")
    ap.add_argument("--engine", default=None, help="EngineSpec as JSON (default: the spec's, llamacpp embedded)")
    ap.add_argument("--spec", default=None, help="extra RephraseVsRepeatSpec fields as JSON")
    ap.add_argument("--results", default=str(ROOT / "bench" / "results" / "evidence_rephrase_vs_repeat.json"))
    args = ap.parse_args(argv)

    import torch

    from corpus.shards import atomic_write_json
    from evidence.probe import run_rephrase_vs_repeat
    from evidence.spec import RephraseVsRepeatSpec
    fields = {"output": args.out, "size": args.size, **json.loads(args.spec or "{}")}
    if args.engine:
        fields["engine"] = json.loads(args.engine)
    spec = RephraseVsRepeatSpec.model_validate(fields)
    t0, c0 = time.perf_counter(), _cpu_s()
    res = run_rephrase_vs_repeat(spec, fresh=True)     # a rerun would reuse the finished steps, timing nothing
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    y = res["yield"] or {}
    out = {"bench": "evidence_rephrase_vs_repeat", "size": args.size, "spec": res["spec"],
           "people": res["people"], "questions_per_wording": res["questions"] // 2, "chance": res["chance"],
           "budget": res["budget"], "table": res["table"], "verdict": res["verdict"],
           "diagnosis": res["diagnosis"],
           "arms": {k: {f: v[f] for f in ("provenance", "bio_epochs", "unique_texts_per_person", "fill")}
                    for k, v in res["arms"].items()},
           "yield": {k: y.get(k) for k in ("engine", "model", "asked", "accepted", "kept", "acceptance_rate",
                                           "token_yield", "per_person", "rejected_by_reason", "seconds")},
           "seconds": {**res["seconds"], "wall": round(wall, 1), "cpu": round(cpu, 1)},
           "report": res["report"], "plot": res["plot"],
           "versions": {"python": platform.python_version(), "torch": torch.__version__,
                        "machine": f"{platform.machine()} {platform.processor() or ''}".strip()},
           "command": "python bench/bench_evidence_rephrase_vs_repeat.py " + " ".join(argv or sys.argv[1:])}
    atomic_write_json(args.results, out)
    print(Path(res["report"]).read_text())
    print(f"wall {wall:.1f} s, cpu {cpu:.1f} s -> {args.results}")
    return out


if __name__ == "__main__":
    main()
