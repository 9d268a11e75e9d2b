"""Field markers: what a spec field holds, declared on the field itself.

A spec field typed `PathIn`, `PathOut`, `SecretEnv`, `Secret` or `ModelSource` (or a list / optional of one) carries
a `Role` in its pydantic metadata. Code that must treat such values specially (the service confines paths to its
data root, keeps secrets out of its database, checks model sources against an allowlist, passes only named
credential variables to workers) walks a VALIDATED spec with `values(spec, role)` / `replace(spec, role, fn)`
instead of guessing from key names, so a new spec field is covered by its type and `eos_token` is not a secret.

    class MySpec(Spec):
        inputs: list[PathIn]
        output: PathOut
        tokenizer: PathIn | None = None
        api_key_env: SecretEnv | None = None
"""
from __future__ import annotations

import enum
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from pydantic import BaseModel


class Role(enum.Enum):
    PATH_IN = "path_in"            # a file, directory or glob the job reads
    PATH_OUT = "path_out"          # a file or directory the job writes
    SECRET = "secret"              # a credential value: never stored, never logged
    SECRET_ENV = "secret_env"      # the NAME of an environment variable holding a credential
    MODEL_SOURCE = "model_source"  # a model to load or an endpoint to call: a dir, a hub id, a URL

    @property
    def is_path(self) -> bool:
        return self in (Role.PATH_IN, Role.PATH_OUT)


PathIn = Annotated[str, Role.PATH_IN]
PathOut = Annotated[str, Role.PATH_OUT]
Secret = Annotated[str, Role.SECRET]
SecretEnv = Annotated[str, Role.SECRET_ENV]
ModelSource = Annotated[str, Role.MODEL_SOURCE]

PATHS = frozenset({Role.PATH_IN, Role.PATH_OUT})


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


def _field_roles(cls: type[BaseModel]) -> dict[str, frozenset[Role]]:
    cache = cls.__dict__.get("_k2forge_roles")
    if cache is None:
        cache = {name: roles_of(f.annotation, f.metadata) for name, f in cls.model_fields.items()}
        setattr(cls, "_k2forge_roles", cache)
    return cache


def walk(spec: BaseModel, where: str = "spec") -> Iterator[tuple[str, Role, str]]:
    """(dotted location, role, value) of every marked string value in a validated spec, nested specs included."""
    for name, roles in _field_roles(type(spec)).items():
        value = getattr(spec, name)
        loc = f"{where}.{name}"
        for item_loc, item in _items(value, loc):
            if isinstance(item, BaseModel):
                yield from walk(item, item_loc)
            elif isinstance(item, str):
                for role in roles:
                    yield item_loc, role, item


def _items(value: Any, loc: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _items(v, f"{loc}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _items(v, f"{loc}.{k}")
    elif value is not None:
        yield loc, value


def values(spec: BaseModel, *roles: Role) -> list[tuple[str, str]]:
    """(location, value) of the values marked with any of `roles`."""
    wanted = set(roles)
    return [(loc, v) for loc, role, v in walk(spec) if role in wanted]


def replace(spec: BaseModel, roles: set[Role] | frozenset[Role], fn: Callable[[str, Role, str], str],
            where: str = "spec") -> BaseModel:
    """A copy of `spec` with fn(location, role, value) applied to every value marked with one of `roles`."""
    update: dict[str, Any] = {}
    for name, field_roles in _field_roles(type(spec)).items():
        value = getattr(spec, name)
        hit = field_roles & set(roles)
        new = _replace_value(value, f"{where}.{name}", min(hit, key=lambda r: r.value) if hit else None, roles, fn)
        if new is not value:
            update[name] = new
    return spec.model_copy(update=update) if update else spec


def _replace_value(value: Any, loc: str, role: Role | None, roles, fn) -> Any:
    if isinstance(value, BaseModel):
        return replace(value, roles, fn, loc)
    if isinstance(value, str):
        return fn(loc, role, value) if role is not None else value
    if isinstance(value, list):
        new = [_replace_value(v, f"{loc}[{i}]", role, roles, fn) for i, v in enumerate(value)]
        return new if any(a is not b for a, b in zip(new, value)) else value
    if isinstance(value, dict):
        new = {k: _replace_value(v, f"{loc}.{k}", role, roles, fn) for k, v in value.items()}
        return new if any(new[k] is not value[k] for k in value) else value
    return value
