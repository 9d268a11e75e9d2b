"""What POST /v1/jobs accepts: the validation of a submitted spec (422s), the output ownership checks (409s) and the
OpenAPI schema of the body (one variant per job kind)."""
from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from pydantic import ValidationError

from api.errors import invalid, unprocessable
from api.limits import FsBudget, LimitError, check_json
from api.outputs import unowned_content
from api.security import confined_spec, env_names, model_sources, spec_paths, split_secrets
from api.settings import Settings
from api.store import JobStore, OutputConflict
from corpus.fields import Role, loc_parts
from corpus.spec import JOB_KINDS, Spec, resolve


def spec_class(kind: str) -> type:
    """A job kind's spec class alone: the service validates and documents specs without importing run modules
    (the train kind's imports torch: 4 s of a request)."""
    return resolve(JOB_KINDS[kind][0])


def validate_job(kind: str, raw_spec: dict, settings: Settings) -> tuple[dict, dict, list[str]]:
    """(redacted spec, secrets, input paths) of a submit, or HTTPException 422 naming the field: JSON shape, the
    kind's spec class validated once with its paths confined to the data root (bounded filesystem work), model
    sources and credential variables on the allowlists."""
    try:
        check_json(raw_spec, ["spec"], settings.max_json_depth)
    except LimitError as e:
        raise unprocessable(e) from None
    spec = dict(raw_spec)
    executor = spec.get("executor")
    given = executor.get("ray_address") if isinstance(executor, dict) else None
    if given and given != settings.ray_address:   # jobs run only where the service sends them
        raise invalid(["body", "spec", "executor", "ray_address"], "jobs run on the service's Ray cluster "
                      "(k2forge serve --ray-address); a spec may not name another")
    if settings.ray_address and isinstance(spec.get("executor"), dict | None):
        ex = dict(spec.get("executor") or {})
        ex.setdefault("kind", "ray")
        ex.setdefault("ray_address", settings.ray_address)
        spec["executor"] = ex
    try:
        validated = confined_spec(spec_class(kind), spec, settings.data_root,
                                  FsBudget(settings.max_glob_patterns, settings.max_fs_entries))
    except ValidationError as e:
        raise unprocessable(e, ["body", "spec"]) from None
    except LimitError as e:
        raise unprocessable(e) from None
    except OSError as e:    # a validator that reads a file the spec names (a pipeline definition) could not
        raise unprocessable(e, ["body", "spec"]) from None
    for field_path, value in model_sources(validated):
        if value not in settings.model_allowlist:
            raise invalid(["body", *loc_parts(field_path)], f"model source {value!r} is not in the service allowlist")
    for field_path, name in env_names(validated):
        if name not in settings.secret_env_allowlist:
            raise invalid(["body", *loc_parts(field_path)], f"environment variable {name!r} is not one the service "
                                                            f"lets jobs read (k2forge serve --allow-secret-env)")
    redacted, secrets = split_secrets(validated)   # secrets given in the request never reach the DB
    return json.loads(redacted.model_dump_json()), secrets, spec_paths(validated, Role.PATH_IN)


def stored_spec(kind: str, spec: dict) -> Spec | None:
    """A stored job's spec as its model (deserialised: it was validated at the submit), or None when it no longer
    validates (e.g. its styles file was removed since): its worker then fails with the validation error."""
    try:
        return spec_class(kind).model_validate(spec)
    except Exception:   # whatever a validator raises: the dispatcher must launch the job either way
        return None


def conflict_message(e: OutputConflict, root: Path) -> str:
    return f"output {os.path.relpath(e.path, root)} belongs to job {e.job_id} of user {e.owner!r} ({e.state})"


def check_outputs(store: JobStore, root: Path, outputs: list[str], inputs: list[str], who: str) -> None:
    """409 unless every output is free: no other job's output (inside, around or equal), none of this job's
    `inputs` (its PathIn values), and nothing already there that no job owns (an input file, someone's data)."""
    inputs = {os.path.realpath(p) for p in inputs if not glob.has_magic(p)}
    for path in outputs:
        if path in inputs:
            raise HTTPException(409, f"output {os.path.relpath(path, root)} is also an input of this job")
        conflict = store.output_conflict(path, who)
        if conflict:
            raise HTTPException(409, conflict_message(conflict, root))
        what = None if store.owns_output(path) else unowned_content(path)
        if what:
            raise HTTPException(409, f"output {os.path.relpath(path, root)} is {what} that no job owns (an "
                                     f"input?); a job writes only into a new or empty output, or resumes its own")


def job_request_schema(components: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI body of POST /v1/jobs: one variant per job kind, discriminated on `kind`, each with its spec
    class's schema (nested models go to `components`). Built when the schema is first asked for: spec modules
    are heavier to import than the service itself."""
    mapping = {}
    for kind in sorted(JOB_KINDS):
        cls = spec_class(kind)
        spec = cls.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in spec.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components.setdefault(cls.__name__, spec)
        variant = f"{kind.capitalize()}Job"
        components[variant] = {"type": "object", "title": f"{kind} job", "additionalProperties": False,
                               "required": ["kind", "spec"],
                               "properties": {"kind": {"type": "string", "enum": [kind]},
                                              "spec": {"$ref": f"#/components/schemas/{cls.__name__}"}}}
        mapping[kind] = f"#/components/schemas/{variant}"
    return {"oneOf": [{"$ref": ref} for ref in mapping.values()],
            "discriminator": {"propertyName": "kind", "mapping": mapping}}
