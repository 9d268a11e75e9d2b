"""Field markers: what a spec field holds, declared on the field itself.

A spec field typed `PathIn`, `PathOut`, `SecretEnv`, `Secret` or `ModelSource` (or a list / optional / union of
one) carries a `Role` in its pydantic metadata. Code that must treat such values specially (the service confines
paths to its data root, keeps secrets out of its database, checks model sources against an allowlist, passes only
named credential variables to workers) walks a VALIDATED spec with `walk` / `values` / `replace` instead of
guessing from key names, so a new spec field is covered by its type and `eos_token` is not a secret.

    class MySpec(Spec):
        inputs: list[PathIn]
        output: PathOut
        tokenizer: PathIn | None = None
        api_key_env: SecretEnv | None = None

Contracts:
- `walk` visits every marked string in the spec, nested specs included (in fields, lists, dicts and unions, marked
  or not), in field order, with its location `spec.engine.tokenizer`, `spec.inputs[0]`, `spec.a.key`. Unmarked
  strings are never visited. `explicit=True` visits only fields the data set (`model_fields_set`), at every level.
- `replace` returns a copy with marked values mapped (the original is untouched; nothing is re-validated).
- `validate(cls, data, on_value)` validates once and calls `on_value(role, value, field_name)` on every marked value
  AS it is validated, before any model validator of the spec sees it (a validator that reads a styles file reads
  the value `on_value` returned). Only values pydantic validates pass through it: defaults and sub-specs that a
  validator builds itself do not, so a caller that must see every value walks the result as well.
"""
from __future__ import annotations

import enum
import functools
import re
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ValidationInfo


class Role(enum.Enum):
    PATH_IN = "path_in"            # a file, directory or glob the job reads
    PATH_OUT = "path_out"          # a file or directory the job writes
    SECRET = "secret"              # a credential value: never stored, never logged
    SECRET_ENV = "secret_env"      # the NAME of an environment variable holding a credential
    MODEL_SOURCE = "model_source"  # a model to load or an endpoint to call: a dir, a hub id, a URL

    @property
    def is_path(self) -> bool:
        return self in PATHS


PATHS = frozenset({Role.PATH_IN, Role.PATH_OUT})
_HOOK = "k2forge.fields.on_value"   # the validation-context key of validate()'s callback


def _marker(role: Role) -> Any:
    def on_value(value: str, info: ValidationInfo) -> str:
        fn = (info.context or {}).get(_HOOK) if isinstance(info.context, dict) else None
        return fn(role, value, info.field_name or "") if fn is not None else value
    return AfterValidator(on_value)


PathIn = Annotated[str, Role.PATH_IN, _marker(Role.PATH_IN)]
PathOut = Annotated[str, Role.PATH_OUT, _marker(Role.PATH_OUT)]
Secret = Annotated[str, Role.SECRET, _marker(Role.SECRET)]
SecretEnv = Annotated[str, Role.SECRET_ENV, _marker(Role.SECRET_ENV)]
ModelSource = Annotated[str, Role.MODEL_SOURCE, _marker(Role.MODEL_SOURCE)]

M = TypeVar("M", bound=BaseModel)
OnValue = Callable[[Role, str, str], str]


def roles_of(annotation: Any, metadata: list[Any] = ()) -> frozenset[Role]:
    """The roles a field annotation carries: in its own metadata or inside Optional/list/Union/Annotated."""
    found = {m for m in metadata if isinstance(m, Role)}
    stack = [annotation]
    while stack:
        t = stack.pop()
        if typing.get_origin(t) is Annotated:
            found |= {m for m in t.__metadata__ if isinstance(m, Role)}
            stack.append(t.__origin__)
        else:
            stack.extend(a for a in typing.get_args(t) if a is not Ellipsis)
    return frozenset(found)


@functools.cache
def field_roles(cls: type[BaseModel]) -> dict[str, frozenset[Role]]:
    """{field name: its roles} of a spec class (empty sets for unmarked fields)."""
    return {name: roles_of(f.annotation, f.metadata) for name, f in cls.model_fields.items()}


def validate(cls: type[M], data: Any, on_value: OnValue) -> M:
    """`cls.model_validate(data)` with `on_value(role, value, field_name)` applied to each marked value as it is
    validated (its result is the value kept; an exception it raises becomes that field's validation error)."""
    return cls.model_validate(data, context={_HOOK: on_value})


def walk(spec: BaseModel, where: str = "spec", explicit: bool = False) -> Iterator[tuple[str, Role, str]]:
    """(location, role, value) of every marked string value in a validated spec, nested specs included; with
    `explicit`, only in fields the input set (defaults are skipped, at every level)."""
    roles_by_name = field_roles(type(spec))
    names = [n for n in roles_by_name if n in spec.model_fields_set] if explicit else roles_by_name
    for name in names:
        for loc, item in _items(getattr(spec, name), f"{where}.{name}"):
            if isinstance(item, BaseModel):
                yield from walk(item, loc, explicit)
            elif isinstance(item, str):
                for role in sorted(roles_by_name[name], key=lambda r: r.value):
                    yield loc, role, item


def _items(value: Any, loc: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _items(v, f"{loc}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _items(v, f"{loc}.{k}")
    elif value is not None:
        yield loc, value


def values(spec: BaseModel, *roles: Role, explicit: bool = False) -> list[tuple[str, str]]:
    """(location, value) of the values marked with any of `roles`."""
    wanted = set(roles)
    return [(loc, v) for loc, role, v in walk(spec, explicit=explicit) if role in wanted]


def replace(spec: M, roles: set[Role] | frozenset[Role], fn: Callable[[str, Role, str], str],
            where: str = "spec") -> M:
    """A copy of `spec` with fn(location, role, value) applied to every value marked with one of `roles` (a field
    with several of them passes the first by name). Sub-specs and containers without a change stay shared."""
    roles = frozenset(roles)
    update: dict[str, Any] = {}
    for name, field_roles_ in field_roles(type(spec)).items():
        value = getattr(spec, name)
        hit = sorted(field_roles_ & roles, key=lambda r: r.value)
        new = _replace_value(value, f"{where}.{name}", hit[0] if hit else None, roles, fn)
        if new is not value:
            update[name] = new
    return spec.model_copy(update=update) if update else spec


def _replace_value(value: Any, loc: str, role: Role | None, roles: frozenset[Role], fn) -> Any:
    if isinstance(value, BaseModel):
        return replace(value, roles, fn, loc)
    if isinstance(value, str):
        return fn(loc, role, value) if role is not None else value
    if isinstance(value, (list, tuple)):
        new = [_replace_value(v, f"{loc}[{i}]", role, roles, fn) for i, v in enumerate(value)]
        return type(value)(new) if any(a is not b for a, b in zip(new, value)) else value
    if isinstance(value, dict):
        new = {k: _replace_value(v, f"{loc}.{k}", role, roles, fn) for k, v in value.items()}
        return new if any(new[k] is not value[k] for k in value) else value
    return value


_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def loc_parts(loc: str) -> list[str | int]:
    """A walk location as a pydantic-style loc: "spec.inputs[0].x" -> ["spec", "inputs", 0, "x"]."""
    return [int(i) if i else name for i, name in _PART.findall(loc)]
