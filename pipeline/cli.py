"""`k2forge pipeline run FILE`: run a pipeline definition (pipeline/definition.py) with resume.

    k2forge pipeline run pipeline.yaml --output out/p --set executor.workers=2
    k2forge pipeline run pipeline.yaml --dry-run          # validate every step, print the run order

`--set NAME=VALUE` overrides a parameter (`${params.NAME}`; dotted names reach into mappings); VALUE is read as
YAML, so `--set steps=5` is a number and `--set ids=[a,b]` a list. Exit status 0 when every step finished, 1
when a step failed (the others that did not depend on it ran), 2 for an invalid definition (nothing ran).
"""
from __future__ import annotations

import json

import click


def _parse_sets(values: tuple[str, ...]) -> dict:
    import yaml
    out = {}
    for item in values:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint="--set")
        try:
            out[name] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise click.BadParameter(f"{item!r}: VALUE is not valid YAML ({e})", param_hint="--set") from None
    return out


@click.group("pipeline")
def pipeline() -> None:
    """Run chains of jobs and registered steps defined in YAML, resumably."""


@pipeline.command("run")
@click.argument("definition", type=click.Path(dir_okay=False))
@click.option("--output", default=None, type=click.Path(file_okay=False),
              help="Folder for the pipeline's outputs and state (default: out/<pipeline name>).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Override a parameter (repeatable).")
@click.option("--fresh", is_flag=True, help="Delete the output folder (only a pipeline's) and start over.")
@click.option("--dry-run", is_flag=True, help="Validate every step and print the run order; run nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (every step's record) as JSON.")
def run_cmd(definition: str, output: str | None, sets: tuple[str, ...], fresh: bool, dry_run: bool,
            as_json: bool) -> None:
    """Run (or resume) the pipeline in DEFINITION: finished steps whose spec is unchanged are reused."""
    from pipeline.definition import load_definition, resolve
    from pipeline.runner import PipelineError, StepFailed, run_pipeline
    params = _parse_sets(sets)
    defn, here = load_definition(definition)
    output = output or f"out/{defn.name}"
    if dry_run:
        for i, s in enumerate(resolve(defn, output, params, here), 1):
            after = f" after {', '.join(s.depends)}" if s.depends else ""
            click.echo(f"{i:>2}. {s.name} ({s.kind}){after}" + (f": {s.about}" if s.about else ""))
        return
    try:
        res = run_pipeline(definition, output, params=params, fresh=fresh)
    except PipelineError as e:
        raise click.ClickException(str(e)) from None
    except StepFailed as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(1) from None
    if as_json:
        click.echo(json.dumps(res, indent=2, default=str))
        return
    click.echo(f"pipeline {res['pipeline']} in {res['output']} ({res['wall_seconds']} s)")
    for name, rec in res["steps"].items():
        tag = "reused" if name in res["reused"] else "ran"
        click.echo(f"  {name:<16} {tag:<6} {rec.get('seconds', 0):>8.2f} s")
