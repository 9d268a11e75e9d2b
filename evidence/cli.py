"""`k2forge evidence ...`: probes that run the project's stages end to end and report what they measure.

`rephrase-vs-repeat` is built from RephraseVsRepeatSpec by corpus.clispec (every field a flag, `--spec FILE` reads
YAML; flags override it); a rerun into the same --output resumes per step (evidence.probe). The MuonClip probe
(K2 Figure 2) stays `k2forge train evidence`: it needs the trainer only.
"""
from __future__ import annotations

import json

import click

from corpus.clispec import spec_command
from evidence.spec import RephraseVsRepeatSpec


@click.group()
def evidence() -> None:
    """Evidence probes: Kimi K2's claims reproduced in miniature by this project's own pipeline."""


def _run(spec: RephraseVsRepeatSpec) -> dict:
    from evidence.probe import run_rephrase_vs_repeat
    from pipeline.runner import PipelineError
    try:
        return run_rephrase_vs_repeat(spec)
    except PipelineError as e:      # the output folder holds something else
        raise click.ClickException(str(e)) from None


def _summarize(res: dict) -> str:
    keep = {"report": res["report"], "plot": res["plot"], "yield": (res["yield"] or {}).get("acceptance_rate"),
            "table": {arm: {m: round(v["mean"], 4) for m, v in t.items()} for arm, t in res["table"].items()},
            "verdict": {m: v["llm_ordering_holds"] for m, v in res["verdict"].items()}, "seconds": res["seconds"]}
    return json.dumps(keep, indent=2)


evidence.add_command(spec_command(
    "rephrase-vs-repeat", RephraseVsRepeatSpec, _run, summarize=_summarize,
    help="K2 Table 1 in miniature: fictional-people corpus -> rephrase (verified) -> raw x10 / 1 rephrasing x10 / "
         "10 rephrasings x1 (+ a template-paraphrase control) at one token budget -> the same model trained per "
         "arm and seed -> QA exact match and held-out paraphrase loss -> report.md, results.json, plot."))
