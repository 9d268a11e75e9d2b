"""Build click commands from job specs, so the CLI, the YAML spec file and the REST API share one definition.

`spec_command(SpecClass, run_fn)` makes a command with `--spec FILE` plus one option per spec field, named by its
full path: `--output`, `--engine.enforce-eager`, `--verifier.thresholds.min-cosine`; a bool field is a pair
`--engine.enforce-eager/--no-engine.enforce-eager`. Aliases, kept only while no other field of the command
claims the same name: the path joined by hyphens (`--executor-kind`), and for a bool the negation of its last
name (`--no-judge` where only one field is called `judge`). Flags override the file. Help text comes from each
field's `description`. `--print-spec` prints the resolved spec as YAML (a file `--spec` reads back) instead of
running it; `--spec-schema` prints the spec's JSON schema.
"""
from __future__ import annotations

import json
import types
import typing
from typing import Any, Callable, get_args, get_origin

import click
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from corpus.spec import Spec, load_spec
from corpus.storage import with_remote_paths

_SCALARS = (str, int, float, bool)


def _unwrap_optional(tp: Any) -> Any:
    """The type inside Optional[...] and Annotated[...] (field markers, union tags)."""
    while True:
        if get_origin(tp) is typing.Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (typing.Union, types.UnionType) and type(None) in get_args(tp):
            args = [a for a in get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else typing.Union[tuple(args)]
        else:
            return tp


def _models(tp: Any) -> list[type[BaseModel]]:
    """The spec classes a field holds: one nested spec, or the members of a union of specs (e.g. EngineSpec)."""
    tp = _unwrap_optional(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    if get_origin(tp) in (typing.Union, types.UnionType):
        members = [_unwrap_optional(a) for a in get_args(tp)]
        if all(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
            return members
    return []


def _click_type(tp: Any) -> tuple[Any, bool]:
    """(click type, multiple) for a field annotation; JSON for anything complex."""
    tp = _unwrap_optional(tp)
    origin = get_origin(tp)
    if origin is typing.Literal:
        return click.Choice([str(a) for a in get_args(tp)]), False
    if origin in (list, tuple) and get_args(tp) and _unwrap_optional(get_args(tp)[0]) in _SCALARS:
        return _unwrap_optional(get_args(tp)[0]), True
    if tp in _SCALARS:
        return tp, False
    return _JSON, False


class _JsonType(click.ParamType):
    name = "json"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value


_JSON = _JsonType()


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, Any]]:
    out = []
    for name, f in model.model_fields.items():
        members = _models(f.annotation)
        if len(members) == 1:
            out.extend(_fields(members[0], f"{prefix}{name}."))
        elif members:
            out.extend(_union_fields(members, f"{prefix}{name}."))
        else:
            out.append((f"{prefix}{name}", _unwrap_optional(f.annotation), f))
    return out


def _union_fields(members: list[type[BaseModel]], prefix: str) -> list[tuple[str, Any, Any]]:
    """One option per field name of any member of a union of specs: Literal tags (`kind`) merged into one
    choice; the help says which members have the field; a default only where every member has the same one."""
    hits: dict[str, list[tuple[str, Any, Any]]] = {}
    for m in members:
        tag = str(getattr(m.model_fields.get("kind"), "default", m.__name__))
        for dotted, tp, f in _fields(m, prefix):
            hits.setdefault(dotted, []).append((tag, tp, f))
    out = []
    for dotted, found in hits.items():
        tps = [tp for _, tp, _ in found]
        if all(get_origin(t) is typing.Literal for t in tps):
            tp = typing.Literal[tuple(dict.fromkeys(a for t in tps for a in get_args(t)))]
        else:
            tp = tps[0]
        by_desc: dict[str, list[str]] = {}
        for tag, _, f in found:
            by_desc.setdefault((f.description or "").strip(), []).append(tag)
        if len(by_desc) > 1:
            desc = "; ".join(f"{', '.join(tags)}: {d}" for d, tags in by_desc.items())
        else:
            [(desc, tags)] = by_desc.items()
            desc += f" ({', '.join(tags)})" if len(found) < len(members) else ""
        defaults = {repr(None if f.is_required() else f.get_default(call_default_factory=True)) for _, _, f in found}
        default = found[0][2].get_default(call_default_factory=True) \
            if len(found) == len(members) and len(defaults) == 1 and not found[0][2].is_required() else None
        out.append((dotted, tp, FieldInfo(default=default, description=desc)))
    return out


RESERVED = ("--spec", "--print-spec", "--spec-schema", "--help", "-h")


def option_names(fields: list[tuple[str, Any, Any]]) -> dict[str, tuple[list[str], list[str]]]:
    """dotted field -> (option names, negative names; empty unless a bool): the full path first, then the
    aliases that no other field of the same command (and no RESERVED name) also claims."""
    def flag(parts: list[str], sep: str) -> str:
        return "--" + sep.join(p.replace("_", "-") for p in parts)

    cands: dict[str, tuple[list[str], list[str]]] = {}
    for dotted, tp, _ in fields:
        parts = dotted.split(".")
        pos = [flag(parts, "."), flag(parts, "-")]
        neg = [f"--no-{n[2:]}" for n in pos] + [f"--no-{flag(parts[-1:], '.')[2:]}"] if tp is bool else []
        cands[dotted] = (list(dict.fromkeys(pos)), list(dict.fromkeys(neg)))
    claims: dict[str, int] = {}
    for pos, neg in cands.values():
        for name in set(pos) | set(neg):
            claims[name] = claims.get(name, 0) + 1
    canonical = {pos[0] for pos, _ in cands.values()} | {neg[0] for _, neg in cands.values() if neg}

    def keep(names: list[str]) -> list[str]:
        return names[:1] + [n for n in names[1:] if claims[n] == 1 and n not in canonical and n not in RESERVED]
    return {d: (keep(pos), keep(neg) if neg else []) for d, (pos, neg) in cands.items()}


def spec_command(name: str, spec_cls: type[Spec], run: Callable[..., dict], help: str,
                 summarize: Callable[[dict], str] | None = None) -> click.Command:
    """A click command named `name` that validates `spec_cls` from --spec and flags, then calls run(spec)."""
    run = with_remote_paths(run)      # inputs/output may be URLs (s3://...): corpus.storage
    params: list[click.Parameter] = [
        click.Option(["--spec", "spec_file"], type=click.Path(dir_okay=False),
                     help="YAML/JSON spec file; flags override its fields."),
        click.Option(["--print-spec"], is_flag=True,
                     help="Print the resolved spec (file + flags, defaults filled) as YAML and exit; --spec reads "
                          "it back."),
        click.Option(["--spec-schema"], is_flag=True, help="Print the spec's JSON schema and exit."),
    ]
    dest_to_field: dict[str, str] = {}
    fields = _fields(spec_cls)
    names = option_names(fields)
    for dotted, tp, f in fields:
        ctype, multiple = _click_type(tp)
        dest = dotted.replace(".", "__")
        dest_to_field[dest] = dotted
        default = None if f.is_required() else f.get_default(call_default_factory=True)
        desc = (f.description or "").strip()
        if default not in (None, [], (), "", {}) and not callable(default):
            desc += f" [default: {default}]"
        if f.is_required():
            desc += " [required unless in --spec]"
        pos, neg = names[dotted]
        if ctype is bool:
            opt = click.Option([f"{pos[0]}/{neg[0]}", *pos[1:], dest], default=None, help=desc)
            opt.secondary_opts.extend(neg[1:])    # click's "--a/--no-a" pairs every negative with a positive
        else:
            opt = click.Option(pos + [dest], type=ctype, multiple=multiple, default=None, help=desc)
        params.append(opt)

    def callback(spec_file: str | None, print_spec: bool, spec_schema: bool, **kw: Any) -> None:
        if spec_schema:
            click.echo(json.dumps(spec_cls.model_json_schema(), indent=2))
            return
        overrides = {dest_to_field[k]: (list(v) if isinstance(v, tuple) and v else (None if v == () else v))
                     for k, v in kw.items()}
        spec = load_spec(spec_cls, spec_file, overrides)
        if print_spec:
            click.echo(yaml.safe_dump(json.loads(spec.model_dump_json()), sort_keys=False, allow_unicode=True),
                       nl=False)
            return
        result = run(spec)
        click.echo(summarize(result) if summarize else json.dumps(result, indent=2, default=str))

    return click.Command(name, params=params, callback=callback, help=help)
