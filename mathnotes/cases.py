"""The normaliser's labelled cases (mathnotes/data/normalizer_cases.jsonl) and how each is judged.

Kinds: "numbers" (every number of `a` is found in `b`), "formula" (formula keys of `a` and `b` are equal),
"answer" (the final answer extracted from `a` agrees with `b`; `b` null = no answer stated), "equal"
(answers_equal(a, b)). `expect` is the correct outcome. The tests require every case of CASES_PATH (the cases the
normaliser was developed on). HELDOUT_PATH holds cases written afterwards and judged once before any fix; the
benchmark reports accuracy per kind on both, and the held-out failures are the normaliser's known limits.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mathnotes.normalize import answers_equal, final_answer, formula_key, number_found, numbers

CASES_PATH = Path(__file__).with_name("data") / "normalizer_cases.jsonl"
HELDOUT_PATH = Path(__file__).with_name("data") / "normalizer_heldout.jsonl"


def load_cases(path: str | Path = CASES_PATH) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            case = json.loads(line)
            if case.get("kind") not in ("numbers", "formula", "answer", "equal"):
                raise ValueError(f"{path}:{n}: field 'kind' is {case.get('kind')!r}")
            out.append(case)
    return out


def judge(case: dict[str, Any]) -> tuple[bool, Any]:
    """(the normaliser's outcome, what it computed) for one case; the case passes when outcome == expect."""
    a, b, kind = case["a"], case["b"], case["kind"]
    if kind == "numbers":
        pool = numbers(b)
        missing = [n.raw for n in numbers(a) if not number_found(n, pool)]
        return not missing, missing
    if kind == "formula":
        ka, kb = formula_key(a), formula_key(b)
        return ka == kb, (ka, kb)
    if kind == "answer":
        got = final_answer(a)
        if b is None:
            return got is None, got
        return got is not None and answers_equal(got, b), got
    return answers_equal(a, b), None


def passes(case: dict[str, Any]) -> bool:
    return judge(case)[0] == case["expect"]
