"""`k2forge corpus demo`: the corpus pipeline end to end on the bundled samples (corpus/samples).

ingest (4 JSONL files -> document shards) -> dedup (exact + MinHash near duplicates; the samples plant one exact
and three near duplicates) -> pack (embedded SmolLM2 tokenizer -> token shards) -> mix (corpus/samples/mixture.yaml
-> manifest). Mixing runs last because a mixture allots tokens, which exist only after packing. Every step is a
normal job with its spec saved next to its outputs, so a rerun skips finished work.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from corpus.layout import STATS, meta_path
from corpus.samples import SAMPLES_DIR, sample_files
from corpus.spec import ExecutorSpec, job_kind

MIXTURE = SAMPLES_DIR / "mixture.yaml"
#: dedup output part -> the ingested sample shard it must come from (the mixture's paths rely on it)
EXPECTED_PARTS = {"part-00000": "code", "part-00001": "knowledge", "part-00002": "math", "part-00003": "web"}


def run_demo(output: str | Path, executor: ExecutorSpec | None = None,
             on_event: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run the four jobs into `output`/{raw,dedup,packed,mixture.json}; return their summaries and timings."""
    out = Path(output)
    ex = (executor or ExecutorSpec()).model_dump()
    steps: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}

    def step(kind: str, **fields: Any) -> dict[str, Any]:
        spec_cls, run = job_kind(kind)
        if "executor" in spec_cls.model_fields:
            fields["executor"] = ex
        t0 = time.perf_counter()
        steps[kind] = run(spec_cls(**fields), on_event)
        seconds[kind] = round(time.perf_counter() - t0, 2)
        return steps[kind]

    step("ingest", inputs=[str(p) for p in sample_files()], output=str(out / "raw"))
    step("dedup", inputs=[str(out / "raw")], output=str(out / "dedup"))
    _check_parts(out / "dedup")
    step("pack", inputs=[str(out / "dedup")], output=str(out / "packed"))
    step("mix", mixture=str(MIXTURE), output=str(out / "mixture.json"), packed=[str(out / "packed")])
    return {"output": str(out), "steps": steps, "seconds": seconds}


def _check_parts(dedup_dir: Path) -> None:
    """The demo mixture names dedup parts; fail clearly if dedup's naming no longer matches it."""
    stats = json.loads(meta_path(dedup_dir, STATS).read_text())
    got = {Path(s["output"]).stem: Path(s["input"]).stem.rsplit("-", 1)[0] for s in stats.get("shards", [])}
    if got != EXPECTED_PARTS:
        raise RuntimeError(f"demo: dedup wrote parts {got}, but {MIXTURE} expects {EXPECTED_PARTS}; "
                           f"update the mixture's paths")


def format_summary(res: dict[str, Any]) -> str:
    """A few lines a person reads after `make demo`."""
    st = res["steps"]
    ing, ded, pk = st["ingest"], st["dedup"], st["pack"]
    secs = res["seconds"]
    lines = [f"demo output: {res['output']}",
             f"ingest  {ing['rows_out']} docs, {ing['chars']:,} chars from {ing['inputs']} files "
             f"({secs['ingest']} s)",
             f"dedup   {ded['docs_in']} -> {ded['docs_out']} docs: {ded['exact_removed']} exact and "
             f"{ded['near_removed']} near duplicates removed ({secs['dedup']} s)",
             f"pack    {pk['total_docs']} docs -> {pk['total_tokens']:,} tokens with {pk['tokenizer']} "
             f"({pk['dtype']}, {secs['pack']} s)"]
    manifest = json.loads(Path(res["output"], "mixture.json").read_text())
    lines.append(f"mix     budget {manifest['budget_tokens']:,} tokens, allotted {manifest['allotted_tokens']:,}, "
                 f"{manifest['num_samples']} samples of {manifest['seq_len']} ({secs['mix']} s)")
    for s in manifest["sources"]:
        lines.append(f"        {s['name']:<10} {s['fraction']:6.1%}  {s['allotted_tokens']:>6,} tokens  "
                     f"{s['epochs']:.2f} epochs of {s['available_tokens']:,}" + ("  (capped)" if s["capped"] else ""))
    for w in manifest.get("warnings", []):
        lines.append(f"        warning: {w}")
    return "\n".join(lines)
