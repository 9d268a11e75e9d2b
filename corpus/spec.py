"""Job specs: one pydantic model per job kind, shared by the CLI (YAML or flags), the REST API and Ray runs.

Every spec forbids unknown fields, so a typo in a YAML file is an error naming the field, not a silent default.
`load_spec` reads YAML/JSON and applies CLI overrides; `save_spec` writes the resolved spec next to the outputs.
The registry `JOB_KINDS` maps a job kind to "module:SpecClass" and "module:run_function" so that the front doors
can find every job without importing heavy packages up front.

Run-function contract (every job kind): `run_x(spec, on_event=None) -> dict`. It is idempotent (a rerun of the same
spec skips finished units), writes the spec next to its outputs, calls `on_event({"type": "progress"|"log", ...})`
as it goes when given, and returns a JSON-able summary that includes an `outputs` list of produced paths.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corpus.shards import atomic_write_text


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExecutorSpec(Spec):
    kind: Literal["local", "ray"] = Field("local", description="where units run: in process or on Ray")
    workers: int = Field(1, ge=1, description="worker processes (local) or actors (ray)")
    ray_address: str | None = Field(None, description="Ray cluster to join (e.g. ray://head:10001); none = local")

    def build(self):
        from corpus.executor import make_executor
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


#: job kind -> (spec class, run function), as import strings. Packages register here; the API and CLI look up.
JOB_KINDS: dict[str, tuple[str, str]] = {
    "ingest": ("corpus.ingest:IngestSpec", "corpus.ingest:run_ingest"),
    "dedup": ("corpus.dedup:DedupSpec", "corpus.dedup:run_dedup"),
    "pack": ("corpus.pack:PackSpec", "corpus.pack:run_pack"),
    "mix": ("corpus.mixture:MixSpec", "corpus.mixture:run_mix"),
    "rephrase": ("rephrase.spec:RephraseSpec", "rephrase.run:run_rephrase"),
    "train": ("trainer.spec:TrainSpec", "trainer.loop:run_train"),
    "mathnotes": ("mathnotes.spec:MathNotesSpec", "mathnotes.run:run_mathnotes"),
}


def resolve(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def job_kind(kind: str) -> tuple[type[Spec], Any]:
    if kind not in JOB_KINDS:
        raise SpecError(f"unknown job kind {kind!r}, expected one of {', '.join(sorted(JOB_KINDS))}")
    spec_path, run_path = JOB_KINDS[kind]
    from corpus.storage import with_remote_paths    # URL fields (s3://...) read and write remote storage
    return resolve(spec_path), with_remote_paths(resolve(run_path))
