"""Job specs: one pydantic model per job kind, shared by the CLI (YAML or flags), the REST API and Ray runs.

Every spec forbids unknown fields, so a typo in a YAML file is an error naming the field, not a silent default.
`load_spec` reads YAML/JSON and applies CLI overrides; `save_spec` writes the resolved spec next to the outputs.

Job kinds are registered by the packages that implement them, as Python entry points, so this module (the lowest
layer) names no package above it. A kind is two entries of the same name, one per group, in pyproject.toml:

    [project.entry-points."k2forge.job_specs"]
    rephrase = "rephrase.spec:RephraseSpec"        # the kind's Spec class
    [project.entry-points."k2forge.job_runs"]
    rephrase = "rephrase.run:run_rephrase"         # its run function (contract below)

(a package of another distribution adds the same two entries to its own pyproject). Entry points are package
metadata: after editing them, reinstall (`pip install -e .`; `make` does it when pyproject.toml changes).
`JOB_KINDS` maps each kind to its two import strings, read from the metadata when this module is imported; nothing
is imported until `job_kind(kind)` resolves one, so the front doors list every job without importing heavy
packages up front.

Run-function contract (every job kind): `run_x(spec, on_event=None) -> dict`. It is idempotent (a rerun of the same
spec skips finished units), writes the spec next to its outputs, calls `on_event(event)` with
corpus.events events (Progress, Log, ...) as it goes when given, and returns a JSON-able summary that includes
an `outputs` list of produced paths.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corpus.executor import make_executor
from corpus.shards import atomic_write_text
from corpus.storage import with_remote_paths


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExecutorSpec(Spec):
    kind: Literal["local", "ray"] = Field("local", description="where units run: in process or on Ray")
    workers: int = Field(1, ge=1, description="worker processes (local) or actors (ray)")
    ray_address: str | None = Field(None, description="Ray cluster to join (e.g. ray://head:10001); none = local")

    def build(self):
        return make_executor(self.kind, self.workers, self.ray_address)


S = TypeVar("S", bound=Spec)


class SpecError(ValueError):
    """A spec failed validation; the message lists each field path and reason."""


def format_validation_error(e: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid spec"]
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "<root>"
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)


def parse_spec(cls: type[S], data: dict[str, Any], where: str = "spec") -> S:
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise SpecError(format_validation_error(e, where)) from None


def load_spec(cls: type[S], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> S:
    """Spec from a YAML/JSON file (optional) with CLI overrides (None values are ignored) on top."""
    data: dict[str, Any] = {}
    where = "command line"
    if path is not None:
        where = str(path)
        data.update(read_yaml_mapping(path, "spec file", "a spec must be a mapping of fields"))
    for k, v in (overrides or {}).items():
        if v is not None:
            _set_dotted(data, k, v)
    return parse_spec(cls, data, where)


def read_yaml_mapping(path: str | Path, what: str = "file", expected: str = "expected a mapping",
                      error: type[Exception] = SpecError) -> dict[str, Any]:
    """A YAML file that must hold a mapping; a missing file, bad YAML or another shape raise `error` naming it."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: {expected}")
    return data


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        data = data.setdefault(p, {})
    data[parts[-1]] = value


def save_spec(spec: Spec, path: str | Path, kind: str) -> None:
    payload = {"kind": kind, "spec": json.loads(spec.model_dump_json())}
    atomic_write_text(path, yaml.safe_dump(payload, sort_keys=False, allow_unicode=True))


#: The entry-point groups of job kinds (see the module docstring).
SPEC_GROUP, RUN_GROUP = "k2forge.job_specs", "k2forge.job_runs"


def registered_kinds() -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """({kind: ("module:SpecClass", "module:run_function")}, {kind: why it is incomplete}) from the installed
    packages' entry points. A kind named in one group only is incomplete, not an error here: importing this
    module must not fail because one package is mis-registered; `job_kind` names the problem."""
    eps = importlib.metadata.entry_points()
    specs = {ep.name: ep.value for ep in eps.select(group=SPEC_GROUP)}
    runs = {ep.name: ep.value for ep in eps.select(group=RUN_GROUP)}
    kinds = {k: (specs[k], runs[k]) for k in sorted(specs.keys() & runs.keys())}
    incomplete = {k: f"an entry point in {SPEC_GROUP if k in specs else RUN_GROUP} but none in "
                     f"{RUN_GROUP if k in specs else SPEC_GROUP}" for k in specs.keys() ^ runs.keys()}
    return kinds, incomplete


#: job kind -> (spec class, run function), as import strings, from the entry points. The API and CLI look up here.
JOB_KINDS, _INCOMPLETE = registered_kinds()


def resolve(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def job_kind(kind: str) -> tuple[type[Spec], Any]:
    """(spec class, run function) of a job kind; the run function reads and writes URL fields (s3://...) of its
    spec through corpus.storage."""
    if kind not in JOB_KINDS:
        if kind in _INCOMPLETE:
            raise SpecError(f"job kind {kind!r} is registered incompletely: {_INCOMPLETE[kind]}")
        known = ", ".join(sorted(JOB_KINDS)) or (f"none: no installed package registers {SPEC_GROUP}/{RUN_GROUP} "
                                                 "entry points (install k2forge: pip install -e .)")
        raise SpecError(f"unknown job kind {kind!r}, expected one of {known}")
    spec_path, run_path = JOB_KINDS[kind]
    return resolve(spec_path), with_remote_paths(resolve(run_path))
