"""`k2forge corpus ...`: the corpus jobs (ingest, dedup, pack, mix) plus `stats`; `demo` (a pipeline, one layer
up) is added to this group by api/cli.py.

Job commands are generated from their specs (corpus.clispec.spec_command over corpus.spec.JOB_KINDS) when they are
listed or invoked, not at import: a job whose module is missing or broken shows up as unavailable instead of
breaking `k2forge corpus --help`, and `--help` never imports heavy packages.
"""
from __future__ import annotations

import functools
import json
from typing import Any

import click

#: corpus job kinds exposed here, with their one-line help (the spec's field descriptions give the options)
JOBS: dict[str, str] = {
    "ingest": "Read raw documents (JSONL/.gz, parquet, text dirs, HF datasets) into schema document shards.",
    "dedup": "Remove exact and near-duplicate documents (MinHash LSH) from document shards.",
    "pack": "Tokenize document shards into indexed token shards for training.",
    "mix": "Resolve a mixture spec over packed shards into a training manifest.",
}


class CorpusGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(JOBS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in JOBS:
            return job_command(name)
        return super().get_command(ctx, name)


@functools.lru_cache(maxsize=None)
def job_command(name: str) -> click.Command:
    """The click command for job kind `name`, or a stand-in that explains why the job cannot load."""
    from corpus.clispec import spec_command
    from corpus.spec import SpecError, job_kind
    try:
        spec_cls, run = job_kind(name)
    except (ImportError, AttributeError, SpecError) as e:
        return _unavailable(name, f"{type(e).__name__}: {e}")
    return spec_command(name, spec_cls, run, help=JOBS[name], summarize=_summarize)


def _unavailable(name: str, why: str) -> click.Command:
    def fail(args: tuple[str, ...]) -> None:
        raise click.ClickException(f"corpus {name} is unavailable: {why}")
    return click.Command(name, callback=fail, help=f"[unavailable: {why}] {JOBS[name]}",
                         short_help=f"[unavailable] {JOBS[name]}",
                         params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


def _summarize(result: dict[str, Any]) -> str:
    """JSON summary of a job with its list of output files shortened to a count."""
    outputs = result.get("outputs", [])
    brief = {k: v for k, v in result.items() if k != "outputs"}
    brief["outputs"] = outputs if len(outputs) <= 8 else outputs[:4] + [f"... {len(outputs) - 4} more"]
    return json.dumps(brief, indent=2, default=str)


@click.group(cls=CorpusGroup)
def corpus() -> None:
    """Corpus jobs: ingest raw documents, deduplicate, pack tokens, build mixtures; stats and a demo."""


@corpus.command("stats")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the full statistics as JSON.")
@click.option("--top", default=15, show_default=True, type=click.IntRange(min=1),
              help="How many of the most frequent sources/languages/tasks to list in the text report.")
def stats_cmd(paths: tuple[str, ...], as_json: bool, top: int) -> None:
    """Documents and characters per domain, source, language and task of document shards (a directory, glob or
    files), fidelity acceptance for synthetic shards, and skip counts for an ingest output."""
    from corpus.stats import corpus_stats, format_stats
    s = corpus_stats(paths[0] if len(paths) == 1 else list(paths))
    click.echo(json.dumps(s, indent=2, ensure_ascii=False) if as_json else format_stats(s, top))

