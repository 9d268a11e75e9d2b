"""`k2forge mathnotes`: learning notes and translation of math, plus the detectors and the answer normaliser.

    k2forge mathnotes run --input shards/ --output out/notes --format structured --translate --engine local
    k2forge mathnotes run --spec job.yaml --executor ray
    k2forge mathnotes detect --input docs.jsonl            (language + math decision per document)
    k2forge mathnotes answer "Final answer: \\frac{1}{2}" "0.5"   (extract and compare final answers)

`run` is built from MathNotesSpec like every job command (--spec FILE, one flag per field); `--input`,
`--engine KIND` and `--executor KIND` are shorthands for `--inputs`, `--engine.kind` and `--executor.kind`.
"""
from __future__ import annotations

import json

import click

from corpus.clispec import spec_command
from corpus.shards import expand_inputs, iter_docs
from mathnotes.detect import detect_language, math_score
from mathnotes.normalize import answers_equal, final_answer
from mathnotes.run import format_summary, run_mathnotes
from mathnotes.spec import MathNotesSpec
from rephrase.engines import ENGINES


def _run(spec):
    return run_mathnotes(spec)


def _summary(result: dict) -> str:
    return format_summary(result)


def _with_shorthands(cmd: click.Command) -> click.Command:
    """--input as a second name of --inputs; --engine/--executor KIND for the nested `kind` fields."""
    for p in cmd.params:
        if p.name == "inputs":
            p.opts.append("--input")
    cmd.params += [
        click.Option(["--engine", "engine_kind_short"], type=click.Choice(sorted(ENGINES)),
                     help="shorthand for --engine.kind"),
        click.Option(["--executor", "executor_kind_short"], type=click.Choice(["local", "ray"]),
                     help="shorthand for --executor.kind"),
    ]
    inner = cmd.callback

    def callback(engine_kind_short=None, executor_kind_short=None, **kw):
        for short, dest in ((engine_kind_short, "engine__kind"), (executor_kind_short, "executor__kind")):
            if short is not None and kw.get(dest) is None:
                kw[dest] = short
        return inner(**kw)

    cmd.callback = callback
    return cmd


@click.group()
def mathnotes() -> None:
    """Rewrite math into SwallowMath-style learning notes; translate non-English math into English first."""


mathnotes.add_command(_with_shorthands(spec_command(
    "run", MathNotesSpec, _run, summarize=_summary,
    help="Route, translate and rewrite input shards into learning notes (+ rejects, routing, stats).")))


@mathnotes.command("detect")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True),
              help="JSONL documents (field 'text') or parquet shards.")
@click.option("--threshold", default=0.4, show_default=True, type=float, help="math detector threshold.")
def detect_cmd(input_path: str, threshold: float) -> None:
    """Print the detected language and the math decision of every document (one JSON line each)."""
    for i, doc in enumerate(_read_docs(input_path)):
        text = doc.get("text")
        if not isinstance(text, str):
            raise click.ClickException(f"{input_path}: document {i + 1}: missing string field 'text'")
        lang, prob = detect_language(text)
        click.echo(json.dumps({"id": doc.get("id", i), "lang": lang, "lang_prob": round(prob, 4),
                               **math_score(text, threshold).to_dict()}, ensure_ascii=False))


def _read_docs(path: str) -> list[dict]:
    if path.endswith(".jsonl") or path.endswith(".json"):
        out = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise click.ClickException(f"{path}:{n}: not valid JSON ({e.msg})") from None
        return out
    return list(iter_docs(expand_inputs(path)))


@mathnotes.command("answer")
@click.argument("texts", nargs=-1, required=True)
def answer_cmd(texts: tuple[str, ...]) -> None:
    """Extract the final answer of each TEXT; with two or more, say whether they agree with the first."""
    answers = [final_answer(t) or t for t in texts]
    for t, a in zip(texts, answers):
        click.echo(json.dumps({"text": t[:80], "answer": a, "equal_to_first": answers_equal(a, answers[0])},
                              ensure_ascii=False))
