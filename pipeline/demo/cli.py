"""The `k2forge demo` command (registered in api/cli.py GROUPS): the demo pipeline at one size."""
from __future__ import annotations

import json

import click


@click.command("demo")
@click.option("--output", default="out/demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for every output of the demo (a rerun reuses its finished steps).")
@click.option("--size", default="full", show_default=True, type=click.Choice(["full", "small"]),
              help="full: what `make demo` runs; small: a reduced run (fewer documents and steps).")
@click.option("--docs", type=int, default=None, help="Rewrite only the first N knowledge and N math documents.")
@click.option("--steps", type=int, default=None, help="Training steps (overrides the size's).")
@click.option("--engine-url", default=None, help="Rewrite with the model behind this OpenAI-compatible endpoint "
              "(e.g. a vLLM server: http://127.0.0.1:8000/v1) instead of the embedded SmolLM2-135M.")
@click.option("--engine-model", default=None, help="Served model name at --engine-url (none = its first model).")
@click.option("--fresh", is_flag=True, help="Delete the output folder (only a demo's) and start over.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of the summary.")
def demo(output: str, size: str, docs: int | None, steps: int | None, engine_url: str | None,
         engine_model: str | None, fresh: bool, as_json: bool) -> None:
    """Run the main job end to end on the bundled samples: ingest, rephrase (styles, chunk-wise, verified),
    math learning notes (with translation), dedup, pack, mix, train the tiny K2-style MoE with MuonClip, eval,
    export to Hugging Face, generate a sample with transformers, and write an HTML + Markdown report."""
    from pipeline.demo import DemoError, format_summary, run_demo
    from pipeline.demo.config import load_config
    from pipeline.runner import StepFailed
    cfg = load_config(size, docs=docs, steps=steps, engine_url=engine_url, engine_model=engine_model)
    try:
        res = run_demo(output, cfg=cfg, fresh=fresh)
    except (DemoError, StepFailed) as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps(res, indent=2, default=str) if as_json else format_summary(res))
