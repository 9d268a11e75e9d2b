"""What a step's `kind` names: a job kind (corpus.spec.JOB_KINDS) or a registered step.

A registered step is a Python function that is not a job (the demo's eval, export, sample and report):

    def run(spec: MySpec, ctx: StepContext) -> dict    # JSON-able summary; `outputs` lists what it wrote

registered by name with its pydantic spec class, both as "module:attribute" strings so that validating a
definition imports neither the function's module nor its heavy dependencies:

    register_step("demo.eval", "pipeline.demo.specs:EvalSpec", "pipeline.demo.steps:evaluate")

Only registered names can run (a definition, which may come over the REST API, never names arbitrary code).
Registered step names contain a dot; job kinds do not.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from corpus.spec import Spec, SpecError, job_kind, resolve

#: registered step name -> (spec class, function), as import strings
STEPS: dict[str, tuple[str, str]] = {
    "demo.select": ("pipeline.demo.specs:SelectSpec", "pipeline.demo.steps:select_docs"),
    "demo.verify-sample": ("pipeline.demo.specs:VerifySampleSpec", "pipeline.demo.steps:verify_sample"),
    "demo.mix": ("pipeline.demo.specs:DemoMixSpec", "pipeline.demo.steps:mix"),
    "demo.eval": ("pipeline.demo.specs:EvalSpec", "pipeline.demo.steps:evaluate"),
    "demo.export": ("pipeline.demo.specs:ExportSpec", "pipeline.demo.steps:export"),
    "demo.sample": ("pipeline.demo.specs:SampleSpec", "pipeline.demo.steps:sample"),
    "demo.report": ("pipeline.demo.specs:ReportSpec", "pipeline.demo.steps:report"),
    "corpus-demo.check-parts": ("pipeline.corpus_demo:CheckPartsSpec", "pipeline.corpus_demo:check_parts"),
    "evidence.sample-corpus": ("pipeline.muonclip_evidence:SampleCorpusSpec", "pipeline.muonclip_evidence:sample_corpus"),
    "evidence.muonclip-verdict": ("pipeline.muonclip_evidence:VerdictSpec",
                                  "pipeline.muonclip_evidence:muonclip_verdict"),
}


@dataclass
class StepContext:
    """What a registered step sees besides its spec."""
    output: Path                                   # the pipeline's output folder
    name: str                                      # this step's name
    emit: Callable[[Any], None]                    # corpus.events events (forwarded marked with the step)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)   # finished steps: summary, seconds, ...
    params: dict[str, Any] = field(default_factory=dict)


def register_step(name: str, spec_target: str, run_target: str) -> None:
    if "." not in name:
        raise ValueError(f"registered step {name!r}: the name needs a dot (job kinds have none), e.g. 'mine.{name}'")
    STEPS[name] = (spec_target, run_target)


def spec_class(kind: str) -> type[Spec]:
    """The spec class of a job kind or registered step, without importing the run function's module."""
    if kind in STEPS:
        return resolve(STEPS[kind][0])
    from corpus.spec import JOB_KINDS
    if kind in JOB_KINDS:
        return resolve(JOB_KINDS[kind][0])
    raise SpecError(f"unknown step kind {kind!r}: expected a job kind ({', '.join(sorted(JOB_KINDS))}) or a "
                    f"registered step ({', '.join(sorted(STEPS))})")


def run_step(kind: str, spec: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Validate `spec` with its kind's class (the same errors as the CLI) and run it; the step's summary."""
    from corpus.spec import parse_spec
    where = f"step {ctx.name!r} ({kind}) spec"
    if kind in STEPS:
        cls, fn = spec_class(kind), resolve(STEPS[kind][1])
        return fn(parse_spec(cls, spec, where), ctx)
    cls, run = job_kind(kind)
    return run(parse_spec(cls, spec, where), ctx.emit)
