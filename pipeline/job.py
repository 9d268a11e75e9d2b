"""The `pipeline` job kind: a pipeline run as one job (REST API, Ray runs, `k2forge` job front doors).

    {"kind": "pipeline", "spec": {"output": "runs/p1", "file": "pipelines/corpus.yaml", "params": {...}}}
    {"kind": "pipeline", "spec": {"output": "runs/p1", "steps": [{"name": "ingest", "kind": "ingest", ...}]}}

The spec holds a definition file (`file`) or the definition inline (`name`, `params`, `steps`), never both.
Validating the spec resolves the definition against `output` and validates every step's spec with its kind's
class (in the same validation context, so the service's confinement hook sees every step's paths as they are
validated), so a bad step is a validation error of the submit, naming the step and field, before anything runs.
The validated spec is then normalised: `steps` become the resolved steps in run order, each `spec` an instance
of its kind's spec class (field-marker walks of corpus.fields find every step's paths, secrets and model sources
there), every dependency listed and no references left; `file` is dropped and `name`/`params` are the
definition's. Its dump (what the service stores) therefore validates again to the same steps without reading
the file, and the run uses exactly those specs.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field, SerializeAsAny, ValidationInfo, model_validator

from corpus.events import OnEvent
from corpus.fields import PathIn, PathOut
from corpus.spec import Spec
from pipeline.definition import Definition, StepDef, load_definition, merge_params, resolve


class JobStepDef(StepDef):
    """A step of a pipeline job: as written (`spec` a mapping), or, once validated, resolved (`spec` an instance
    of its kind's spec class, so field-marker walks reach every step's paths, secrets and model sources)."""
    spec: dict[str, Any] | SerializeAsAny[Spec] = Field(default_factory=dict, union_mode="left_to_right")


def _as_dict(spec: dict[str, Any] | Spec) -> dict[str, Any]:
    return spec if isinstance(spec, dict) else spec.model_dump(mode="json", exclude_unset=True)


class PipelineSpec(Spec):
    output: PathOut = Field(description="the pipeline's output folder (its state: .k2forge/pipeline.json)")
    file: PathIn | None = Field(None, description="a pipeline definition (YAML); or give `steps` inline")
    name: str | None = Field(None, description="inline definition: the pipeline's name")
    params: dict[str, Any] = Field(default_factory=dict, description="parameter overrides (${params.NAME})")
    steps: list[JobStepDef] | None = Field(None, description="inline definition: the steps")

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> "PipelineSpec":
        if (self.file is None) == (self.steps is None):
            raise ValueError("give a definition `file` or inline `steps` (one of them)")
        if self.file is not None:
            if self.name is not None:
                raise ValueError("`name` belongs to an inline definition; the file names its pipeline")
            defn, here = load_definition(self.file)
        else:
            defn = Definition(name=self.name or "pipeline", steps=[
                StepDef(**{**s.model_dump(exclude={"spec"}), "spec": _as_dict(s.spec)}) for s in self.steps])
            here = None
        steps = resolve(defn, self.output, self.params, here, context=info.context)
        self.steps = [JobStepDef(name=s.name, kind=s.kind, about=s.about, clean=s.clean, depends=s.depends,
                                 spec=s.typed) for s in steps]
        self.file, self.name, self.params = None, defn.name, merge_params(defn.params, self.params)
        self.__pydantic_fields_set__.update({"steps", "name", "params"})
        return self


def run_pipeline_job(spec: PipelineSpec, on_event: OnEvent | None = None) -> dict[str, Any]:
    """Run the validated pipeline spec's resolved steps into its output."""
    from pipeline.definition import Step
    from pipeline.runner import run_steps
    steps = [Step(name=s.name, kind=s.kind, about=s.about, clean=s.clean, depends=s.depends, spec=_as_dict(s.spec))
             for s in spec.steps]
    res = run_steps(steps, spec.output, spec.name, spec.params, on_event=on_event)
    res["outputs"] = [spec.output]
    return res
