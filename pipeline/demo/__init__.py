"""`k2forge demo`: the demo pipeline (pipeline/definitions/demo.yaml) with one size of sizes.yaml as parameters.

    ingest -> select -> rephrase, verify, select -> mathnotes -> dedup -> pack -> mix -> train -> eval -> export
    -> sample -> report

config.py (sizes and the demo mixture, the command's overrides), specs.py + steps.py (the registered steps that
are not jobs), cli.py (the click command); the report renderer is pipeline/report. The pipeline runner gives the
resume: a rerun reuses finished steps, an interrupted one resumes at the first unfinished step (the jobs skip
their finished units; training resumes from its last checkpoint unless its inputs were rebuilt). A rerun with
another configuration (size, --docs, --steps) into the same folder is refused (the rewriting jobs would mix
outputs of two configurations); `fresh=True` starts over, but only in a folder a pipeline (or the demo before
it was one, with its `_demo/` state) made.
Importing this package is cheap: torch and friends load inside the steps.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Callable

from pipeline.demo.config import DemoConfig, load_config
from pipeline.runner import PipelineError, read_state, run_pipeline, state_path

DEFINITION = Path(__file__).resolve().parent.parent / "definitions" / "demo.yaml"
#: the state folder of demo outputs written before the demo was a pipeline (--fresh may delete those too)
LEGACY_STATE = "_demo"
__all__ = ["DEFINITION", "DemoError", "format_summary", "run_demo", "state_path"]


class DemoError(PipelineError):
    """The demo cannot run in this folder (another config, not a pipeline's); the message says what to do."""


def params_of(cfg: DemoConfig) -> dict[str, Any]:
    return cfg.model_dump(mode="json")


def run_demo(output: str | Path = "out/demo", size: str = "full", docs: int | None = None,
             steps: int | None = None, fresh: bool = False, cfg: DemoConfig | None = None,
             on_event: Callable | None = None) -> dict[str, Any]:
    """Run (or resume) the demo into `output`; returns {output, size, stages, report paths, seconds}."""
    out = Path(output).resolve()
    cfg = cfg or load_config(size, docs=docs, steps=steps)
    params = params_of(cfg)
    if fresh and (out / LEGACY_STATE).is_dir() and not state_path(out).exists():
        shutil.rmtree(out)          # a folder of the demo before it became a pipeline
    state = read_state(out) if out.exists() and not fresh else None
    if state is not None and state.get("params") != params:
        old = (state.get("params") or {}).get("size")
        raise DemoError(f"{out}: holds a demo run of another configuration (size {old!r}); rerun with --fresh "
                        f"to start over, or choose another --output")
    t0 = time.perf_counter()
    try:
        res = run_pipeline(DEFINITION, out, params=params, fresh=fresh, on_event=on_event)
    except PipelineError as e:
        raise DemoError(str(e)) from None
    records = res["steps"]
    report = records["report"]
    stages = {k: v for k, v in records.items() if k != "report"}
    return {"output": str(out), "size": cfg.size, "stages": stages,
            "report": {k: report["summary"][k] for k in ("html", "md", "json")},
            "report_seconds": report["seconds"], "wall_seconds": round(time.perf_counter() - t0, 2),
            "stage_seconds_total": round(sum(s["seconds"] for s in stages.values()), 2)}


def _top_reasons(stats: dict[str, Any], k: int = 3) -> str:
    top = sorted(stats.get("rejected_by_reason", {}).items(), key=lambda kv: -kv[1])[:k]
    return ("; rejected for " + ", ".join(f"{r} {c}" for r, c in top)) if top else ""


def format_summary(res: dict[str, Any]) -> str:
    """The lines printed at the end of `k2forge demo`."""
    st = {k: v["summary"] for k, v in res["stages"].items()}
    secs = {k: v["seconds"] for k, v in res["stages"].items()}
    reph, notes = st["rephrase"]["stats"], st["mathnotes"]["stats"]
    tr, ev = st["train"], st["eval"]
    lines = [
        f"k2forge demo ({res['size']}) in {res['output']}",
        f"  ingest     {st['ingest']['rows_out']} documents ({secs['ingest']} s)",
        f"  rephrase   {reph.get('variants_accepted', 0)}/{reph.get('variants', 0)} rewrites accepted "
        f"({secs['rephrase']} s){_top_reasons(reph)}",
        f"  mathnotes  {notes.get('variants_accepted', 0)}/{notes.get('variants', 0)} notes/translations "
        f"accepted ({secs['mathnotes']} s){_top_reasons(notes)}",
        f"  dedup      {st['dedup']['docs_in']} -> {st['dedup']['docs_out']} documents ({secs['dedup']} s)",
        f"  pack       {st['pack']['total_tokens']:,} tokens ({secs['pack']} s)",
        f"  mix        {st['mix']['allotted_tokens']:,} tokens over {st['mix']['sources']} sources ({secs['mix']} s)",
        f"  train      {tr['step']} steps, loss {tr['final_loss']:.3f}, eval loss {ev['eval_loss']:.3f} "
        f"(ppl {ev['perplexity']:.1f}) ({secs['train']} s)",
        f"  sample     {st['sample']['prompt']!r} -> {st['sample']['completion'][:80]!r}",
        f"  stages took {res['stage_seconds_total']} s in all; this run {res['wall_seconds']} s",
        f"report: {res['report']['html']}",
        f"        {res['report']['md']}",
    ]
    return "\n".join(lines)
