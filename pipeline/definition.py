"""Pipeline definitions: steps as data, read from YAML or a Python dict, resolved and validated as a whole.

    name: corpus-demo                     # optional; a rerun into the same folder must be the same pipeline
    params: {executor: {kind: local}}     # defaults of ${params.NAME}; a run overrides them
    steps:
      - name: ingest                      # unique: letters, digits, '-' and '_'
        kind: ingest                      # a job kind (corpus.spec.JOB_KINDS) or a registered step (registry.py)
        about: samples -> document shards # optional, one line shown while it runs
        spec: {inputs: ["${samples}/web.jsonl"], output: "${output}/raw"}
      - name: dedup
        kind: dedup
        spec: {inputs: ["${steps.ingest.output}"], output: "${output}/dedup"}
        depends: []                       # steps to run first besides the referenced ones (default: none)
        defaults: "${params.dedup}"       # optional mapping under `spec`: spec's own keys win
        clean: false                      # true: empty its output whenever it reruns after finishing (train)

References may appear in any string of `spec` and `defaults`:
    ${output}              the pipeline's output folder (absolute)
    ${here}                the folder of the definition file (a definition names files beside it)
    ${samples}             the bundled sample corpus (corpus/samples)
    ${params.A.B}          a parameter
    ${steps.NAME.output}   the `output` field of step NAME's resolved spec; NAME becomes a dependency
A string that is one reference alone takes the referenced value as it is (a list, a mapping, a number); inside a
longer string the value must be a string or a number, and a path reference must start its string.

`resolve` turns a definition into steps in run order (topological, ties in definition order) with fully
concrete specs, and validates every spec with its kind's spec class; every error of every step is reported at
once, naming the step and the field, before anything runs.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corpus.spec import SpecError, format_validation_error, read_yaml_mapping

STEP_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
_REF = re.compile(r"\$\{([^}]*)\}")
_PATH_REFS = ("output", "here", "samples")


class StepDef(BaseModel):
    """One step as written in a definition (before references are resolved)."""
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=STEP_NAME)
    kind: str = Field(min_length=1, description="a job kind or a registered step")
    spec: dict[str, Any] = Field(default_factory=dict)
    defaults: dict[str, Any] | str | None = Field(None, description="a mapping (or a reference to one) under spec")
    depends: list[str] = Field(default_factory=list)
    about: str = ""
    clean: bool = False


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "pipeline"
    about: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepDef] = Field(min_length=1)


@dataclass
class Step:
    """A resolved step: concrete spec, all dependencies, and a digest of everything that decides its output."""
    name: str
    kind: str
    spec: dict[str, Any]
    depends: list[str]
    about: str = ""
    clean: bool = False
    digest: str = ""
    output: str | None = None
    upstream: set[str] = field(default_factory=set)     # every step it depends on, transitively
    typed: Any = None                                   # the spec validated by its kind's class


def load_definition(source: str | Path | dict[str, Any], where: str | None = None) -> tuple[Definition, Path | None]:
    """(definition, folder it came from) from a YAML file or a mapping; errors name the file and field."""
    if isinstance(source, dict):
        data, here, where = source, None, where or "pipeline definition"
    else:
        path = Path(source)
        data = read_yaml_mapping(path, "pipeline definition", "a pipeline definition must be a mapping")
        here, where = path.resolve().parent, where or str(path)
    try:
        defn = Definition.model_validate(data)
    except ValidationError as e:
        raise SpecError(format_validation_error(e, where)) from None
    return defn, here


def merge_params(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """`base` with `overrides` on top; a dotted key (`train.steps`) sets one nested value."""
    out = json.loads(json.dumps(base))
    for key, value in (overrides or {}).items():
        *parents, last = key.split(".")
        d = out
        for p in parents:
            if not isinstance(d.get(p), dict):
                d[p] = {}
            d = d[p]
        d[last] = value
    return out


class _Resolver:
    def __init__(self, output: Path, here: Path | None, params: dict[str, Any], outputs: dict[str, Any] | None):
        """`outputs`: step name -> its resolved output (None while the outputs themselves are resolved)."""
        from corpus.samples import SAMPLES_DIR
        self.vars = {"output": str(output), "here": str(here) if here else None, "samples": str(SAMPLES_DIR)}
        self.params, self.outputs = params, outputs
        self.refs: set[str] = set()

    def value(self, ref: str) -> Any:
        head, _, rest = ref.partition(".")
        if head in self.vars and not rest:
            if self.vars[head] is None:
                raise ValueError(f"${{{ref}}}: this definition has no file, so there is no folder beside it")
            return self.vars[head]
        if head == "params" and rest:
            v: Any = self.params
            for i, part in enumerate(rest.split(".")):
                if not isinstance(v, dict) or part not in v:
                    known = ", ".join(sorted(v)) if isinstance(v, dict) else "none"
                    raise ValueError(f"${{{ref}}}: no parameter {'.'.join(rest.split('.')[:i + 1])!r} "
                                     f"(known here: {known})")
                v = v[part]
            return v
        m = re.fullmatch(r"steps\.([^.]+)\.output", ref)
        if m:
            name = m.group(1)
            if self.outputs is None:
                raise ValueError(f"${{{ref}}}: an output may not refer to another step's output")
            if name not in self.outputs:
                raise ValueError(f"${{{ref}}}: no step {name!r} in this pipeline")
            self.refs.add(name)
            if self.outputs[name] is None:
                raise ValueError(f"${{{ref}}}: step {name!r} has no `output` field")
            return self.outputs[name]
        raise ValueError(f"${{{ref}}}: unknown reference (expected output, here, samples, params.NAME or "
                         f"steps.NAME.output)")

    def resolve(self, x: Any) -> Any:
        if isinstance(x, dict):
            return {k: self.resolve(v) for k, v in x.items()}
        if isinstance(x, list):
            return [self.resolve(v) for v in x]
        if not isinstance(x, str) or "${" not in x:
            return x
        whole = _REF.fullmatch(x)
        if whole:
            return self.value(whole.group(1))

        def sub(m: re.Match) -> str:
            v = self.value(m.group(1))
            if m.start() > 0 and (m.group(1) in _PATH_REFS or m.group(1).startswith("steps.")):
                raise ValueError(f"{x!r}: the path reference ${{{m.group(1)}}} must start the value")
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                raise ValueError(f"{x!r}: ${{{m.group(1)}}} is a {type(v).__name__}, not text")
            return str(v)
        return _REF.sub(sub, x)


def resolve(defn: Definition, output: str | Path, params: dict[str, Any] | None = None,
            here: Path | None = None, context: dict[str, Any] | None = None) -> list[Step]:
    """The definition's steps in run order, references resolved, every spec validated (one SpecError for all;
    `context` is the validation context, e.g. the service's confinement hook). Each step's `typed` holds its
    validated spec."""
    output = Path(output).resolve()
    params = merge_params(defn.params, params)
    names = [s.name for s in defn.steps]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecError(f"pipeline {defn.name!r}: step name(s) {', '.join(dup)} used more than once")
    errors: list[str] = []
    outputs: dict[str, Any] = {}
    for s in defn.steps:       # outputs first: a step may refer to one defined after it
        try:
            outputs[s.name] = _Resolver(output, here, params, None).resolve(s.spec.get("output"))
        except ValueError as e:
            errors.append(f"step {s.name!r}: spec.output: {e}")
    resolved = {s.name: _resolve_step(s, _Resolver(output, here, params, outputs), errors) for s in defn.steps}
    if errors:
        raise SpecError(f"pipeline {defn.name!r}: invalid definition\n  " + "\n  ".join(errors))
    defs = {s.name: s for s in defn.steps}
    order = _topological(names, {n: deps for n, (_, deps) in resolved.items()}, defn.name)
    steps = link([Step(name=n, kind=defs[n].kind, spec=resolved[n][0], about=defs[n].about, clean=defs[n].clean,
                       depends=[d for d in names if d in resolved[n][1]]) for n in order])
    validate(steps, defn.name, context)
    return steps


def link(steps: list[Step]) -> list[Step]:
    """Fill each step's output, upstream set and digest (kind, spec and the digests of its dependencies);
    `steps` must be in run order."""
    done: dict[str, Step] = {}
    for s in steps:
        s.output = s.spec.get("output") if isinstance(s.spec.get("output"), str) else None
        s.upstream = set(s.depends).union(*(done[d].upstream for d in s.depends))
        s.digest = _digest(s.kind, s.spec, [done[d].digest for d in sorted(s.depends)])
        done[s.name] = s
    return steps


def _resolve_step(s: StepDef, r: _Resolver, errors: list[str]) -> tuple[dict[str, Any], set[str]]:
    """(resolved spec, dependencies) of one step; problems are appended to `errors`."""
    spec: dict[str, Any] = {}
    try:
        base = r.resolve(s.defaults) if s.defaults is not None else {}
        if not isinstance(base, dict):
            raise ValueError(f"is a {type(base).__name__}, expected a mapping")
        spec.update(base)
    except ValueError as e:
        errors.append(f"step {s.name!r}: defaults: {e}")
    for k, v in s.spec.items():
        try:
            spec[k] = r.resolve(v)
        except ValueError as e:
            errors.append(f"step {s.name!r}: spec.{k}: {e}")
    unknown = [d for d in s.depends if d not in r.outputs]
    if unknown:
        errors.append(f"step {s.name!r}: depends: unknown step(s) {', '.join(unknown)}")
    return spec, (set(s.depends) | r.refs) - set(unknown)


def _topological(names: list[str], deps: dict[str, set[str]], pipeline: str) -> list[str]:
    """Kahn's algorithm; among ready steps the one defined first runs first."""
    order: list[str] = []
    left = list(names)
    while left:
        ready = next((n for n in left if deps[n] <= set(order)), None)
        if ready is None:
            cycle = _find_cycle(left, deps)
            raise SpecError(f"pipeline {pipeline!r}: steps depend on each other in a cycle: {' -> '.join(cycle)}")
        order.append(ready)
        left.remove(ready)
    return order


def _find_cycle(left: list[str], deps: dict[str, set[str]]) -> list[str]:
    path, n = [], left[0]
    while n not in path:
        path.append(n)
        n = next(d for d in sorted(deps[n]) if d in left)
    return path[path.index(n):] + [n]


def _digest(kind: str, spec: dict[str, Any], upstream: list[str]) -> str:
    blob = json.dumps({"kind": kind, "spec": spec, "upstream": upstream}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def validate(steps: list[Step], pipeline: str = "pipeline", context: dict[str, Any] | None = None) -> None:
    """Every step's spec against its kind's spec class (into `step.typed`); one SpecError listing every problem
    of every step."""
    from pipeline.registry import spec_class
    errors = []
    for s in steps:
        try:
            cls = spec_class(s.kind)
        except SpecError as e:
            errors.append(f"step {s.name!r}: kind: {e}")
            continue
        try:
            s.typed = cls.model_validate(s.spec, context=context)
        except ValidationError as e:
            errors += [f"step {s.name!r} ({s.kind}): spec.{'.'.join(str(x) for x in err['loc']) or '<root>'}: "
                       f"{err['msg']}" for err in e.errors()]
    if errors:
        raise SpecError(f"pipeline {pipeline!r}: invalid step spec(s)\n  " + "\n  ".join(errors))
