"""Build click commands from job specs, so the CLI, the YAML spec file and the REST API share one definition.

`spec_command(SpecClass, run_fn)` makes a command with `--spec FILE` plus one option per spec field (nested
models become dotted options such as `--executor.kind`, also spelled `--executor-kind`). Flags override the file.
Help text comes from each field's `description`.
"""
from __future__ import annotations

import json
import typing
from typing import Any, Callable, get_args, get_origin

import click
from pydantic import BaseModel

from corpus.spec import Spec, load_spec

_SCALARS = (str, int, float, bool)


def _unwrap_optional(tp: Any) -> Any:
    if get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


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
        tp = _unwrap_optional(f.annotation)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            out.extend(_fields(tp, f"{prefix}{name}."))
        else:
            out.append((f"{prefix}{name}", tp, f))
    return out


def spec_command(name: str, spec_cls: type[Spec], run: Callable[..., dict], help: str,
                 summarize: Callable[[dict], str] | None = None) -> click.Command:
    """A click command named `name` that validates `spec_cls` from --spec and flags, then calls run(spec)."""
    params: list[click.Parameter] = [click.Option(["--spec", "spec_file"], type=click.Path(dir_okay=False),
                                                  help="YAML/JSON spec file; flags override its fields.")]
    dest_to_field: dict[str, str] = {}
    for dotted, tp, f in _fields(spec_cls):
        ctype, multiple = _click_type(tp)
        dest = dotted.replace(".", "__")
        dest_to_field[dest] = dotted
        flag = "--" + dotted.replace("_", "-")
        decls = [flag] if "." not in dotted else [flag, "--" + dotted.replace(".", "-").replace("_", "-")]
        default = None if f.is_required() else f.get_default(call_default_factory=True)
        desc = (f.description or "").strip()
        if default not in (None, [], (), "", {}) and not callable(default):
            desc += f" [default: {default}]"
        if f.is_required():
            desc += " [required unless in --spec]"
        if ctype is bool:
            opt = click.Option([f"{decls[0]}/--no-{dotted.split('.')[-1].replace('_', '-')}", dest],
                               default=None, help=desc)
        else:
            opt = click.Option(decls + [dest], type=ctype, multiple=multiple, default=None, help=desc)
        params.append(opt)

    def callback(spec_file: str | None, **kw: Any) -> None:
        overrides = {dest_to_field[k]: (list(v) if isinstance(v, tuple) and v else (None if v == () else v))
                     for k, v in kw.items()}
        spec = load_spec(spec_cls, spec_file, overrides)
        result = run(spec)
        click.echo(summarize(result) if summarize else json.dumps(result, indent=2, default=str))

    return click.Command(name, params=params, callback=callback, help=help)
