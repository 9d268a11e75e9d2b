"""`k2forge corpus demo`: the corpus jobs end to end on the bundled samples, as a pipeline.

ingest (4 JSONL files -> document shards) -> dedup (exact + MinHash near duplicates; the samples plant one exact
and three near duplicates) -> pack (embedded SmolLM2 tokenizer -> token shards) -> mix (corpus/samples/mixture.yaml
-> manifest), defined in pipeline/definitions/corpus-demo.yaml with its one registered step (check-parts) here.
`run_corpus_demo` runs it with the executor as a parameter and returns {output, steps: {ingest, dedup, pack, mix:
the job summaries}, seconds: {the same: s}}. The click command is attached to the `corpus` group by api/cli.py
(corpus, the lowest layer, names no package above it).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click
from pydantic import Field

from corpus.fields import PathIn
from corpus.layout import STATS, meta_path
from corpus.spec import ExecutorSpec, Spec
from pipeline.registry import StepContext
from pipeline.runner import run_pipeline

DEFINITION = Path(__file__).resolve().parent / "definitions" / "corpus-demo.yaml"
JOBS = ("ingest", "dedup", "pack", "mix")


class CheckPartsSpec(Spec):
    dedup: PathIn
    mixture: PathIn = Field(description="the mixture that names the parts (for the message)")
    expected: dict[str, str] = Field(description="dedup output part -> the ingested shard it must come from")


def check_parts(spec: CheckPartsSpec, ctx: StepContext) -> dict[str, Any]:
    """The demo mixture names dedup parts; fail clearly if dedup's naming no longer matches it."""
    stats = json.loads(meta_path(Path(spec.dedup), STATS).read_text())
    got = {Path(s["output"]).stem: Path(s["input"]).stem.rsplit("-", 1)[0] for s in stats.get("shards", [])}
    if got != spec.expected:
        raise RuntimeError(f"demo: dedup wrote parts {got}, but {spec.mixture} expects {spec.expected}; "
                           f"update the mixture's paths")
    return {"parts": got, "outputs": []}


def run_corpus_demo(output: str | Path, executor: ExecutorSpec | None = None,
                    on_event: Callable | None = None) -> dict[str, Any]:
    """Run the four jobs into `output`/{raw,dedup,packed,mixture.json}; return their summaries and timings."""
    ex = (executor or ExecutorSpec()).model_dump()
    res = run_pipeline(DEFINITION, output, params={"executor": ex}, on_event=on_event)
    steps = res["steps"]
    return {"output": str(output), "steps": {k: steps[k]["summary"] for k in JOBS},
            "seconds": {k: steps[k]["seconds"] for k in JOBS}}


def format_summary(res: dict[str, Any]) -> str:
    """A few lines a person reads after `k2forge corpus demo`."""
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


@click.command("demo")
@click.option("--output", default="out/demo", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the demo's outputs (raw/, dedup/, packed/, mixture.json).")
@click.option("--executor", "executor_kind", default="local", show_default=True,
              type=click.Choice(["local", "ray"]), help="Run the units in process or on a local Ray instance.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes (local) or Ray actors.")
@click.option("--json", "as_json", is_flag=True, help="Print every step's full summary as JSON.")
def demo_cmd(output: str, executor_kind: str, workers: int, as_json: bool) -> None:
    """Run ingest -> dedup -> pack -> mix on the bundled sample corpus and print a summary."""
    from pipeline.runner import PipelineError
    try:
        res = run_corpus_demo(output, ExecutorSpec(kind=executor_kind, workers=workers))
    except PipelineError as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps(res, indent=2, default=str) if as_json else format_summary(res))
