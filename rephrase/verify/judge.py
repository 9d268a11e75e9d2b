"""Optional LLM judge: asks any rephrase Engine whether a rewrite adds, drops or changes a fact of its source.

The answer must be strict JSON, {"verdict": "faithful"|"adds"|"drops"|"changes", "detail": "..."}; a bare label as
the first word is also accepted. Anything else counts as a failed check with the reason "unparseable", because an
unverified rewrite must not slip through (small local models often ramble: that is what this reason measures).
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from rephrase.verify.base import CheckContext, CheckResult, register_check

if TYPE_CHECKING:
    from rephrase.engines.base import Engine

LABELS = ("faithful", "adds", "drops", "changes")
SYSTEM = ("You are a meticulous fact checker. You compare a REWRITE with its SOURCE and report whether the rewrite "
          "is faithful. Style, order and wording may differ freely; facts may not.")
USER = """SOURCE:
{source}

REWRITE:
{rewrite}

Does the REWRITE add a fact that is not in the SOURCE, drop a fact of the SOURCE, or change a fact (a number, date,
unit, name, or a negation)? Reply with JSON only, exactly one object:
{{"verdict": "faithful" | "adds" | "drops" | "changes", "detail": "<the fact, or empty>"}}"""

_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_LABEL = re.compile(r"^\W*(faithful|adds|drops|changes)\b", re.IGNORECASE)


def judge_messages(source: str, rewrite: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": USER.format(source=source.strip(), rewrite=rewrite.strip())}]


def parse_answer(text: str) -> tuple[str | None, str]:
    """(label or None when unparseable, detail) from a judge answer."""
    for m in _OBJECT.finditer(text):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        label = str(obj.get("verdict", "")).strip().lower() if isinstance(obj, dict) else ""
        if label in LABELS:
            return label, str(obj.get("detail", "") or "")
    m = _LABEL.match(text)
    if m:
        return m.group(1).lower(), text[m.end():].strip(" :.-\n")[:200]
    return None, ""


def result_from_answer(text: str, min_score: float) -> CheckResult:
    label, detail = parse_answer(text)
    if label is None:
        snippet = " ".join(text.split())[:80]
        return CheckResult("judge", 0.0, False, f"unparseable judge answer: {snippet!r}")
    score = 1.0 if label == "faithful" else 0.0
    passed = score >= min_score
    return CheckResult("judge", score, passed, "" if passed else f"judge says the rewrite {label}"
                                                                 + (f" a fact: {detail}" if detail else " a fact"))


class Judge:
    """Runs judge requests on an engine (greedy, bounded length) and turns answers into CheckResults."""

    def __init__(self, engine: "Engine", max_tokens: int = 96, min_score: float = 0.5):
        self.engine, self.max_tokens, self.min_score = engine, max_tokens, min_score

    async def judge_many(self, pairs: list[tuple[str, str]]) -> list[CheckResult]:
        from rephrase.engines.base import ChatRequest, SamplingParams
        params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=self.max_tokens, seed=0)
        reqs = [ChatRequest(judge_messages(s, r), params, request_id=f"judge-{i}") for i, (s, r) in enumerate(pairs)]
        comps = await self.engine.generate_many(reqs)
        out = []
        for c in comps:
            if c.finish_reason == "error":
                out.append(CheckResult("judge", 0.0, False, f"judge engine error: {c.error or 'unknown'}"))
            else:
                out.append(result_from_answer(c.text, self.min_score))
        return out


def _not_direct(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    raise RuntimeError("the judge check runs asynchronously inside Verifier; enable it with `judge: true` "
                       "instead of listing it in `checks`")


# registered so that calibration can replay its threshold like any other check
register_check("judge", _not_direct, threshold="min_judge_score", grid=(0.5,), help="LLM judge (judge: true)")
