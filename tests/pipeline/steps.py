"""Registered steps for the runner tests: each writes a file and records that it ran (named as test steps)."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from corpus.fields import PathIn, PathOut
from corpus.spec import Spec
from pipeline.registry import StepContext

#: (step name, text) of every run, in order; the tests clear it
CALLS: list[tuple[str, str]] = []
#: steps that fail whatever their spec says (an interruption: the spec, so the digest, stays the same)
FAILING: set[str] = set()


class WriteSpec(Spec):
    output: PathOut
    text: str = "x"
    inputs: list[PathIn] = Field(default_factory=list, description="files whose text is appended")
    fail: bool = False


def write(spec: WriteSpec, ctx: StepContext) -> dict:
    """Write `text` + the inputs' texts to `output`; a file already there is kept (like a job's finished unit)
    and reported as `found`; with `fail`, raise after writing nothing."""
    CALLS.append((ctx.name, spec.text))
    if spec.fail or ctx.name in FAILING:
        raise RuntimeError(f"{ctx.name} failed on purpose")
    out = Path(spec.output)
    found = out.exists()
    if not found:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(spec.text + "".join(Path(p).read_text() for p in spec.inputs))
    return {"found": found, "text": out.read_text(), "outputs": [str(out)]}
