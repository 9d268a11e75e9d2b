"""Math-aware fidelity checks, registered in rephrase's check registry (enable them by name in a VerifierSpec).

- math_numbers: every number of the source's math content (boilerplate lines excluded: a note removes those)
  survives in the rewrite, after normalising LaTeX and number formats (1,000 = 1000, \\frac{1}{2} = 1/2 = 0.5,
  units attached and converted). One way: a step-by-step note may add intermediate numbers.
- math_numbers_exact: the same both ways (a translation must add no number either).
- math_formulas: every formula of the source still appears in the rewrite after normalisation (a chain
  `a = b = c` may be split into steps).
- math_answer: when the source states a final answer, the rewrite's \\boxed{} answer equals it, or (no box) the
  rewrite states it.
- math_structure: the structured format's sections (Task Description / Approach / Solution Steps / Final
  Answer) and, when the source states a final answer, a \\boxed{} answer.
- math_english: the rewrite is English (langid on its prose).

Each reason names what is wrong (which number, which formula, which answer), because reasons become the
rejection statistics people read.
"""
from __future__ import annotations

import re

from mathnotes.detect import detect_language, strip_boilerplate
from mathnotes.normalize import (Num, answers_equal, boxed, final_answer, formula_found, formula_key, formulas,
                                 number_found, numbers)
from rephrase.verify.base import CheckContext, CheckResult, register_check, threshold_check

MATH_CHECKS = ("math_numbers", "math_numbers_exact", "math_formulas", "math_answer", "math_structure",
               "math_english")
#: languages written with a decimal comma ("2,5"): there a comma between digits may be a decimal point
_ENGLISH_LIKE = {"en", "und", "zh", "ja", "ko", "th", "he"}


def _short(items: list[str], n: int = 4) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _source_lang(source: str, ctx: CheckContext) -> str:
    if "mathnotes_lang" not in ctx.cache:
        ctx.cache["mathnotes_lang"] = detect_language(source)[0]
    return ctx.cache["mathnotes_lang"]


def _unique(nums: list[Num]) -> list[Num]:
    seen, out = set(), []
    for n in nums:
        key = (round(abs(n.value), 9), n.unit)
        if key not in seen:
            seen.add(key)
            out.append(n)
    return out


def _number_sides(source: str, rewrite: str, ctx: CheckContext) -> tuple[list[Num], list[Num]]:
    comma = _source_lang(source, ctx) not in _ENGLISH_LIKE
    want = _unique(numbers(strip_boilerplate(source), decimal_comma=comma))
    have = numbers(rewrite)
    return want, have


def check_math_numbers(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    want, have = _number_sides(source, rewrite, ctx)
    missing = [n for n in want if not number_found(n, have)]
    score = 1.0 - len(missing) / len(want) if want else 1.0
    return threshold_check("math_numbers", score, ctx,
                           f"source number(s) missing in rewrite: {_short([n.label() for n in missing])}")


def check_math_numbers_exact(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    want, have = _number_sides(source, rewrite, ctx)
    missing = [n for n in want if not number_found(n, have)]
    pool = want + numbers(strip_boilerplate(source))
    extra = [n for n in _unique(have) if not number_found(n, pool)]
    total = len(want) + len(_unique(have))
    score = 1.0 - (len(missing) + len(extra)) / total if total else 1.0
    parts = []
    if missing:
        parts.append(f"missing in rewrite {_short([n.label() for n in missing])}")
    if extra:
        parts.append(f"not in source {_short([n.label() for n in extra])}")
    return threshold_check("math_numbers_exact", score, ctx, "; ".join(parts))


def check_math_formulas(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    seen: dict[str, str] = {}
    for f in formulas(strip_boilerplate(source)):
        seen.setdefault(formula_key(f), f)
    if not seen:
        return CheckResult("math_formulas", 1.0, True)
    rkey = formula_key(rewrite)
    missing = [f for f in seen.values() if not formula_found(f, rkey)]
    score = 1.0 - len(missing) / len(seen)
    reason = f"{len(missing)} of {len(seen)} source formula(s) not found: " + _short(
        [repr(" ".join(f.split())[:60]) for f in missing], 3)
    return CheckResult("math_formulas", score, not missing, "" if not missing else reason)


def _states_answer(answer: str, rewrite: str) -> bool:
    """Without a box: the rewrite's own final answer agrees, or (it states none) every number of the answer
    appears in its last three lines, where a conclusion stands (anywhere would let "1" pass in any text)."""
    own = final_answer(rewrite)
    if own is not None:                  # the rewrite concludes with an answer of its own: that one must agree
        return answers_equal(own, answer)
    nums = numbers(answer)
    if nums:
        pool = numbers("\n".join([ln for ln in rewrite.splitlines() if ln.strip()][-3:]))
        return all(any(abs(n.value - h.value) < 1e-9 for h in pool) or number_found(n, pool) for n in nums)
    return formula_key(answer) in formula_key(rewrite)


def check_math_answer(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    answer = final_answer(strip_boilerplate(source))
    if answer is None:
        return CheckResult("math_answer", 1.0, True)          # nothing stated to compare with
    box = boxed(rewrite)
    if box:
        ok = answers_equal(box[-1], answer)
        reason = f"\\boxed{{{box[-1][:60]}}} differs from the source's final answer {answer[:60]!r}"
    else:
        ok = _states_answer(answer, rewrite)
        reason = f"the source's final answer {answer[:60]!r} is not stated in the rewrite"
    return CheckResult("math_answer", float(ok), ok, "" if ok else reason)


SECTIONS = ("Task Description", "Approach", "Solution Steps", "Final Answer")


def _has_section(rewrite: str, name: str) -> bool:
    return re.search(r"(?im)^[ \t#*>_-]*" + name.replace(" ", r"\s+") + r"\b", rewrite) is not None


def check_math_structure(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    present = [s for s in SECTIONS if _has_section(rewrite, s)]
    score = len(present) / len(SECTIONS)
    problems = []
    if final_answer(strip_boilerplate(source)) is not None:
        # the part of the document that states the answer must end the structure with a boxed answer
        if "Final Answer" not in present:
            problems.append("no 'Final Answer' section")
        if not boxed(rewrite):
            problems.append("no \\boxed{} final answer")
        if len(present) < 2:
            problems.append(f"only {len(present)} of the 4 sections")
    elif not present:
        problems.append("none of the sections " + ", ".join(SECTIONS))
    return CheckResult("math_structure", score, not problems, "; ".join(problems))


def check_math_english(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    lang, prob = detect_language(rewrite)
    if lang == "und":
        return CheckResult("math_english", 1.0, True)          # too little prose to tell
    ok = lang == "en"
    score = prob if ok else 1.0 - prob
    return CheckResult("math_english", score, ok, "" if ok else f"the rewrite is in {lang!r} (p={prob:.2f}), "
                                                                f"not English")


register_check("math_numbers", check_math_numbers, threshold="min_number_score",
               grid=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0), help="math: source numbers survive (LaTeX/number formats "
                                                          "normalised)")
register_check("math_numbers_exact", check_math_numbers_exact, threshold="min_number_score",
               grid=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0), help="math: numbers match both ways (translation)")
register_check("math_formulas", check_math_formulas, help="math: every source formula appears after normalising")
register_check("math_answer", check_math_answer, help="math: the boxed/stated final answer equals the source's")
register_check("math_structure", check_math_structure, help="math: Task Description / Approach / Solution "
                                                            "Steps / Final Answer with \\boxed{}")
register_check("math_english", check_math_english, help="math: the rewrite is English (langid)")
