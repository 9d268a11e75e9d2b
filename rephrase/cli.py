"""`k2forge rephrase`: run a rephrase job, verify or calibrate on JSONL pairs, list styles.

    k2forge rephrase run --inputs shards/ --output out/rephrased --variants 2   (or --spec job.yaml)
    k2forge rephrase verify --input pairs.jsonl --output verdicts.jsonl       (pairs: {"source", "rewrite"})
    k2forge rephrase calibrate --input dev.jsonl --test test.jsonl --output verifier.yaml   (+ "faithful")
    k2forge rephrase styles [--styles-file mine.yaml]
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from corpus.clispec import spec_command
from corpus.shards import atomic_write_json, atomic_write_text
from corpus.spec import load_spec
from rephrase.run import run_rephrase
from rephrase.spec import RephraseSpec
from rephrase.stats import format_summary
from rephrase.styles import StyleBook
from rephrase.verify import VerifierSpec, calibrate, verify_file
from rephrase.verify.calibrate import DEV, TEST
from rephrase.verify.consistency import DEFAULT_PATH


def _run(spec):
    return run_rephrase(spec)


def _summary(result: dict) -> str:
    return (format_summary(result["stats"]) + f"\noutputs: {len(result['outputs'])} shard(s) in "
            f"{Path(result['outputs'][0]).parent if result['outputs'] else '-'}; stats: {result['stats_path']}")


@click.group()
def rephrase() -> None:
    """Rewrite knowledge text in diverse styles with chunk-wise autoregressive generation and verification."""


rephrase.add_command(spec_command("run", RephraseSpec, _run, summarize=_summary,
                                  help="Rewrite input shards into synthetic shards (+ rejects, stats)."))


def _verifier_spec(path: str | None):
    return load_spec(VerifierSpec, path)


@rephrase.command("verify")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help='JSONL of {"source", "rewrite"} pairs (an "id" is copied through).')
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL of verdicts: id, accepted, reasons, scores (written atomically).")
@click.option("--verifier-spec", type=click.Path(dir_okay=False), help="YAML VerifierSpec (thresholds, checks).")
def verify_cmd(input_path: str, output_path: str, verifier_spec: str | None) -> None:
    """Verify rewrites against their sources."""
    res = verify_file(input_path, output_path, _verifier_spec(verifier_spec))
    click.echo(f"{res['accepted']}/{res['rows']} accepted -> {output_path}")


@rephrase.command("calibrate")
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False),
              help='DEV JSONL of {"source", "rewrite", "faithful" (or "label")}: the model is fitted and its '
                   "threshold chosen here; default: the packaged rephrase/data/dev.jsonl.")
@click.option("--test", "test_path", type=click.Path(exists=True, dir_okay=False),
              help="TEST JSONL, only measured (never tuned on); default: the packaged test.jsonl when --input "
                   "is the packaged dev set.")
@click.option("--min-faithful-accept", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True,
              help="objective: maximise unfaithful rejection subject to accepting at least this share of "
                   "faithful dev rows")
@click.option("--group-by", default="author", show_default=True,
              help="row field whose groups stand for new writers: the dev target is raised until "
                   "leave-one-group-out acceptance meets the objective ('' = off)")
@click.option("--no-fit", is_flag=True, help="measure the given spec as it is; fit nothing")
@click.option("--verifier-spec", type=click.Path(dir_okay=False), help="YAML VerifierSpec to start from.")
@click.option("--output", "output_path", type=click.Path(dir_okay=False),
              help="write the calibrated VerifierSpec here (YAML): pass it to `verify --verifier-spec`, or put it "
                   "under `verifier:` in a rephrase/mathnotes job spec.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="write the full report (per type, style, check, row) as JSON.")
@click.option("--write-default", is_flag=True,
              help="also replace the packaged default model (rephrase/verify/consistency.json); for maintainers.")
def calibrate_cmd(input_path, test_path, min_faithful_accept, group_by, no_fit, verifier_spec, output_path,
                  report_path, write_default) -> None:
    """Fit the consistency model on labelled dev pairs, choose its threshold by the objective, report test."""
    if test_path is None and input_path is None:
        test_path = TEST
    report = calibrate(input_path or DEV, _verifier_spec(verifier_spec), test=test_path, fit=not no_fit,
                       min_faithful_accept=min_faithful_accept, group_by=group_by or None)
    click.echo(report.format())
    spec_json = json.loads(report.spec.model_dump_json())
    if output_path:
        atomic_write_text(output_path, yaml.safe_dump(spec_json, sort_keys=False, allow_unicode=True))
        click.echo(f"calibrated verifier spec -> {output_path}")
    if write_default and report.spec.consistency is not None:
        atomic_write_text(DEFAULT_PATH, report.spec.consistency.model_dump_json(indent=1) + "\n")
        click.echo(f"default consistency model -> {DEFAULT_PATH}")
    if report_path:
        atomic_write_json(report_path, report.to_dict())
        click.echo(f"report -> {report_path}")


@rephrase.command("styles")
@click.option("--styles-file", type=click.Path(dir_okay=False), help="YAML adding/overriding styles.")
def styles_cmd(styles_file: str | None) -> None:
    """List the available styles and perspectives."""
    book = StyleBook.load(styles_file)
    click.echo(f"styles ({len(book.styles)}):")
    for s in book.styles.values():
        click.echo(f"  {s.name:<16} {s.description}")
    click.echo(f"perspectives ({len(book.perspectives)}):")
    for p in book.perspectives.values():
        click.echo(f"  {p.name:<16} {p.description}")
