"""The math normaliser and answer extraction on the labelled cases (mathnotes/data/normalizer_cases.jsonl) and on
the sample math documents."""
from __future__ import annotations

import json

import pytest

from corpus.samples import SAMPLES_DIR
from mathnotes.cases import judge, load_cases
from mathnotes.normalize import (answers_equal, boxed, final_answer, formula_found, formula_key, formulas,
                                 latex_to_plain, numbers)

CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c['kind']}:{c['note'] or c['a'][:30]}" for c in CASES])
def test_labelled_case(case):
    outcome, got = judge(case)
    assert outcome == case["expect"], f"{case['kind']} {case['a']!r} vs {case['b']!r}: computed {got!r}"


def test_cases_cover_every_kind_and_both_outcomes():
    for kind in ("numbers", "formula", "answer", "equal"):
        expects = {c["expect"] for c in CASES if c["kind"] == kind}
        nones = {c["b"] is None for c in CASES if c["kind"] == kind}
        assert expects == {True, False} or (kind == "answer" and nones == {True, False}), kind


def test_plain_form_is_idempotent_and_collapses_variants():
    s = r"$$\left(\dfrac{1}{3}\right)^{k} \cdot 2 \le 1{,}000\,\text{cm}$$"
    once = latex_to_plain(s)
    assert once == latex_to_plain(once) == "(1/3)^k * 2 <= 1000 cm"


def test_boxed_keeps_nested_braces_and_survives_unbalanced_input():
    assert boxed(r"x \boxed{\frac{\sqrt{2}}{2}} y \boxed{3}") == [r"\frac{\sqrt{2}}{2}", "3"]
    assert boxed(r"\boxed{\frac{1}{2}") == [r"\frac{1}{2}"]        # unbalanced: the rest, not a crash


def test_units_attach_and_their_exponent_is_not_a_number():
    got = [(n.value, n.unit) for n in numbers(r"$A = 24\,\text{cm}^2$ and 1.5 kilometres, 40\%")]
    assert got == [(24.0, "cm^2"), (1.5, "km"), (40.0, "%")]


def test_signs_are_read_only_where_a_minus_is_unary():
    assert [n.value for n in numbers("f(1) = 1 - 3 = -2 and (1, -2)")] == [1, 1, 3, -2, 1, -2]


def test_decimal_comma_reads_both_ways_only_when_asked():
    assert [n.value for n in numbers("x = 2,5")] == [2, 5]
    (n,) = numbers("x = 2,5", decimal_comma=True)
    assert n.value == 2.5 and n.parts == (2.0, 5.0)


def test_chain_formula_may_be_split_into_steps():
    rewrite = formula_key(r"First $c = \sqrt{6^2+8^2}$. Then $\sqrt{6^2 + 8^2} = \sqrt{100}$, so $\sqrt{100} = 10$.")
    assert formula_found(r"c = \sqrt{6^2 + 8^2} = \sqrt{100} = 10", rewrite)
    assert not formula_found(r"c = \sqrt{6^2 + 8^2} = \sqrt{100} = 12", rewrite)


def _samples() -> dict[str, dict]:
    return {d["id"]: d for d in map(json.loads, (SAMPLES_DIR / "math.jsonl").read_text().splitlines())}


@pytest.mark.parametrize("doc_id,answer", [
    ("math-quadratic-forum", "x = 2 or x = 3"), ("math-geometric-series", "1/2"), ("math-dice-probability", "1/6"),
    ("math-integration-by-parts", "1"), ("math-last-digit", "3"), ("math-remainder-incomplete", "2"),
    ("math-fr-systeme", "(3, 1)"), ("math-de-pythagoras", "c = 10 cm, A = 24 cm^2"),
    ("math-es-extremos", "(-1, 2), (1, -2)"), ("math-odd-sum-induction", "n^2"),
])
def test_final_answers_of_the_sample_documents(doc_id, answer):
    got = final_answer(_samples()[doc_id]["text"])
    assert got is not None and answers_equal(got, answer), got


def test_sample_formulas_are_found_in_their_own_text_and_environments_split_into_rows():
    for doc in _samples().values():
        key = formula_key(doc["text"])
        assert all(formula_found(f, key) for f in formulas(doc["text"])), doc["id"]
    rows = formulas(_samples()["math-fr-systeme"]["text"])
    assert any(formula_key(r) == "3x=9" for r in rows)
