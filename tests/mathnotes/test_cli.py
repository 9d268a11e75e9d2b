"""`k2forge mathnotes detect` and `answer` (no model involved)."""
from __future__ import annotations

import json

from click.testing import CliRunner

from api.cli import cli
from corpus.samples import SAMPLES_DIR


def test_detect_prints_language_and_math_decision_per_document():
    res = CliRunner().invoke(cli, ["mathnotes", "detect", "--input", str(SAMPLES_DIR / "math.jsonl")])
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in map(json.loads, res.output.splitlines())}
    assert rows["math-es-extremos"]["lang"] == "es" and rows["math-es-extremos"]["is_math"] is True
    assert set(rows["math-dice-probability"]) >= {"score", "latex_density", "equation_lines", "vocab_per_100_words"}


def test_detect_names_the_bad_line(tmp_path):
    bad = tmp_path / "docs.jsonl"
    bad.write_text('{"text": "x = 1"}\n{not json}\n')
    res = CliRunner().invoke(cli, ["mathnotes", "detect", "--input", str(bad)])
    assert res.exit_code != 0 and f"{bad}:2: not valid JSON" in res.output


def test_answer_extracts_and_compares():
    res = CliRunner().invoke(cli, ["mathnotes", "answer", r"so \boxed{\dfrac{1}{2}}", "Final answer: 0.5",
                                   "The answer is 0.25."])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in res.output.splitlines()]
    assert [r["answer"] for r in rows] == [r"\dfrac{1}{2}", "0.5", "0.25"]
    assert [r["equal_to_first"] for r in rows] == [True, True, False]


def test_spec_file_errors_name_the_file_and_field(tmp_path):
    import subprocess
    import sys
    job = tmp_path / "job.yaml"
    job.write_text("inputs: [in]\noutput: out\nformat: structured\ntranslate_verifier:\n  checks: [math_englsh]\n")
    p = subprocess.run([sys.executable, "-m", "api.cli", "mathnotes", "run", "--spec", str(job), "--no-translate"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and f"{job}: invalid spec" in p.stderr and "translate_verifier.checks" in p.stderr
