"""`k2forge rephrase`: run a rephrase job, verify or calibrate on JSONL pairs, list styles.

    k2forge rephrase run --inputs shards/ --output out/rephrased --variants 2   (or --spec job.yaml)
    k2forge rephrase verify --input pairs.jsonl --output verdicts.jsonl       (pairs: {"source", "rewrite"})
    k2forge rephrase calibrate --input labelled.jsonl                          (+ "label": true = faithful)
    k2forge rephrase styles [--styles-file mine.yaml]
"""
from __future__ import annotations

import json
from pathlib import Path
import click

from corpus.clispec import spec_command


def _run(spec):
    from rephrase.run import run_rephrase
    return run_rephrase(spec)


def _summary(result: dict) -> str:
    from rephrase.stats import format_summary
    return (format_summary(result["stats"]) + f"\noutputs: {len(result['outputs'])} shard(s) in "
            f"{Path(result['outputs'][0]).parent if result['outputs'] else '-'}; stats: {result['stats_path']}")


def _spec_cls():
    from rephrase.spec import RephraseSpec
    return RephraseSpec


@click.group()
def rephrase() -> None:
    """Rewrite knowledge text in diverse styles with chunk-wise autoregressive generation and verification."""


rephrase.add_command(spec_command("run", _spec_cls(), _run, summarize=_summary,
                                  help="Rewrite input shards into synthetic shards (+ rejects, stats)."))


def _verifier_spec(path: str | None):
    from corpus.spec import load_spec
    from rephrase.verify import VerifierSpec
    return load_spec(VerifierSpec, path)


@rephrase.command("verify")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help='JSONL of {"source", "rewrite"} pairs (an "id" is copied through).')
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL of verdicts: id, accepted, reasons, scores (written atomically).")
@click.option("--verifier-spec", type=click.Path(dir_okay=False), help="YAML VerifierSpec (thresholds, checks).")
def verify_cmd(input_path: str, output_path: str, verifier_spec: str | None) -> None:
    """Verify rewrites against their sources."""
    from rephrase.verify import verify_file
    res = verify_file(input_path, output_path, _verifier_spec(verifier_spec))
    click.echo(f"{res['accepted']}/{res['rows']} accepted -> {output_path}")


@rephrase.command("calibrate")
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False),
              help='JSONL of {"source", "rewrite", "faithful" (or "label")}; default: the packaged labelled set.')
@click.option("--verifier-spec", type=click.Path(dir_okay=False), help="YAML VerifierSpec to start from.")
@click.option("--output", "output_path", type=click.Path(dir_okay=False),
              help="write the VerifierSpec with the suggested thresholds here (YAML).")
def calibrate_cmd(input_path: str | None, verifier_spec: str | None, output_path: str | None) -> None:
    """Measure the verifier on labelled pairs and suggest thresholds that separate faithful from unfaithful."""
    from rephrase.verify import calibrate
    from rephrase.verify.calibrate import LABELLED
    report = calibrate(input_path or LABELLED, _verifier_spec(verifier_spec))
    click.echo(report.format())
    if output_path:
        import yaml

        from corpus.shards import atomic_write_text
        atomic_write_text(output_path, yaml.safe_dump(json.loads(report.spec.model_dump_json()), sort_keys=False))
        click.echo(f"calibrated verifier spec -> {output_path}")


@rephrase.command("styles")
@click.option("--styles-file", type=click.Path(dir_okay=False), help="YAML adding/overriding styles.")
def styles_cmd(styles_file: str | None) -> None:
    """List the available styles and perspectives."""
    from rephrase.styles import StyleBook
    book = StyleBook.load(styles_file)
    click.echo(f"styles ({len(book.styles)}):")
    for s in book.styles.values():
        click.echo(f"  {s.name:<16} {s.description}")
    click.echo(f"perspectives ({len(book.perspectives)}):")
    for p in book.perspectives.values():
        click.echo(f"  {p.name:<16} {p.description}")
