"""Math-aware checks through rephrase's real Verifier (registry route), on sample documents and rewrites
written to be faithful or to carry one planted fault each."""
from __future__ import annotations

import json

import pytest

from corpus.samples import SAMPLES_DIR
from mathnotes.detect import detect_language, is_boilerplate, math_score, strip_boilerplate
from rephrase.verify import CHECKS, Verifier, VerifierSpec

MATH = ["math_numbers", "math_formulas", "math_answer"]
DOCS = {d["id"]: d for d in map(json.loads, (SAMPLES_DIR / "math.jsonl").read_text().splitlines())}
DICE = DOCS["math-dice-probability"]["text"]

GOOD_DICE = r"""**Task Description**
Two fair six-sided dice are rolled. Find the probability that the sum is 7.

**Approach**
Count the favourable outcomes among all equally likely outcomes.

**Solution Steps**
1. There are $6 \times 6 = 36$ equally likely outcomes.
2. The pairs with sum $7$ are $(1,6), (2,5), (3,4), (4,3), (5,2), (6,1)$: that is $6$ outcomes.
3. So $P(\text{sum} = 7) = \frac{6}{36} = \frac{1}{6}$. A sum of $6$ or $8$ has only $5$ outcomes each.

**Final Answer**
\boxed{\dfrac{1}{6}}"""


def verify(source: str, rewrite: str, checks: list[str]):
    (v,) = Verifier(VerifierSpec(checks=checks)).verify_batch([(source, rewrite)])
    return v


def test_checks_are_registered_in_rephrases_registry():
    import mathnotes.checks  # noqa: F401
    assert {"math_numbers", "math_numbers_exact", "math_formulas", "math_answer", "math_structure",
            "math_english"} <= set(CHECKS)


def test_faithful_structured_note_passes_every_math_check():
    v = verify(DICE, GOOD_DICE, MATH + ["math_structure", "math_english"])
    assert v.accepted, v.reasons


def test_wrong_boxed_answer_is_rejected_with_a_reason():
    v = verify(DICE, GOOD_DICE.replace(r"\boxed{\dfrac{1}{6}}", r"\boxed{\frac{1}{5}}"), MATH)
    assert not v.accepted
    assert [r for r in v.reasons if r.startswith("math_answer:")] == [
        r"math_answer: \boxed{\frac{1}{5}} differs from the source's final answer '1/6'"]


def test_lost_number_and_changed_formula_are_named():
    bad = GOOD_DICE.replace("$6 \\times 6 = 36$", "$6 \\times 6$").replace("$6$ or $8$", "$6$")
    v = verify(DICE, bad, MATH)
    reasons = " | ".join(v.reasons)
    assert "math_numbers: source number(s) missing in rewrite: '8'" in reasons
    assert "math_formulas: 1 of" in reasons and "6 \\\\times 6 = 36" in reasons


def test_boilerplate_numbers_need_not_survive():
    # "2022-08-19", "3 min", "40% off" live in boilerplate lines that a note removes
    assert "40%" not in strip_boilerplate(DICE) and "2022" not in strip_boilerplate(DICE)
    assert verify(DICE, GOOD_DICE, ["math_numbers"]).accepted


def test_note_without_a_box_must_still_state_the_answer():
    note = GOOD_DICE.split("**Final Answer**")[0]
    assert verify(DICE, note + "So the probability is 1/6.", ["math_answer"]).accepted
    assert verify(DICE, note + "Final answer: 0.1667", ["math_answer"]).accepted
    v = verify(DICE, note + "Final answer: 1/5", ["math_answer"])
    assert v.reasons == ["math_answer: the source's final answer '1/6' is not stated in the rewrite"]


def test_structure_check_names_missing_sections():
    v = verify(DICE, "The probability is $\\frac{1}{6}$.", ["math_structure"])
    assert not v.accepted and "no 'Final Answer' section" in v.reasons[0] and "no \\boxed{}" in v.reasons[0]


def test_translation_checks_language_and_numbers_both_ways():
    fr = DOCS["math-fr-systeme"]["text"]
    good = fr.replace("Exercice 4 — Résoudre le système d'équations suivant :", "Exercise 4 - Solve the following "
                      "system of equations:").replace("Correction. En additionnant les deux équations, on élimine",
                      "Solution. Adding the two equations eliminates").replace(
        "On remplace dans la deuxième équation", "Substituting into the second equation").replace(
        ", donc", ", so").replace("Vérification", "Check").replace(" et ", " and ").replace(
        "Réponse finale", "Final answer")
    checks = ["math_numbers_exact", "math_formulas", "math_answer", "math_english"]
    assert verify(fr, good, checks).accepted, verify(fr, good, checks).reasons
    untranslated = verify(fr, fr, ["math_english"])
    assert untranslated.reasons[0].startswith("math_english: the rewrite is in 'fr'")
    added = verify(fr, good + "\nThis takes 15 minutes.", ["math_numbers_exact"])
    assert "not in source '15'" in added.reasons[0]


def test_language_and_math_detectors_on_samples():
    langs = {i: detect_language(d["text"])[0] for i, d in DOCS.items()}
    assert (langs["math-fr-systeme"], langs["math-de-pythagoras"], langs["math-es-extremos"]) == ("fr", "de", "es")
    assert langs["math-quadratic-forum"] == "en" and detect_language("$x^2 = 4$")[0] == "und"
    assert all(math_score(d["text"]).is_math for i, d in DOCS.items() if i != "math-remainder-incomplete")
    web = [json.loads(x)["text"] for x in (SAMPLES_DIR / "web.jsonl").read_text().splitlines()]
    assert not any(math_score(t).is_math for t in web)


@pytest.mark.parametrize("line,boiler", [
    ("MathHelpBoards  |  Home  >  Forums  >  Algebra", True), ("[ Log in ]  [ Register ]  [ Search ]", True),
    ("Posted by tomek_88 on March 3, 2021, 9:14 PM", True), ("Beitrag von lena_k am 14.05.2020 um 18:02 Uhr", True),
    ("ADVERTISEMENT - Buy our printable probability worksheets, 40% off this week!", True),
    ("There are $6 \\times 6 = 36$ equally likely outcomes.", False), ("Answer: 1/6", False),
    ("Thread: solving a quadratic??", False),
])
def test_boilerplate_lines(line, boiler):
    assert is_boilerplate(line) is boiler


def test_unboxed_answer_must_stand_in_the_conclusion():
    body = "Integrate by parts: $\\int_0^1 x e^x dx = [x e^x]_0^1 - \\int_0^1 e^x dx$ with $u = x$.\n"
    src = body + "So $I = 1$.\n\nFinal answer: $I = 1$."
    assert verify(src, body + "Line two.\nLine three.\nTherefore the integral is 1.", ["math_answer"]).accepted
    # a "1" in the first line does not state the answer when the conclusion says 0
    v = verify(src, body + "Line two.\nLine three.\nTherefore the integral is 0.", ["math_answer"])
    assert v.reasons == ["math_answer: the source's final answer '$I = 1$' is not stated in the rewrite"]
