"""The optional LLM judge: strict answer parsing, fault handling, and one run with the real local engine."""
import asyncio

import pytest

from rephrase.engines.base import Completion, Engine
from rephrase.verify import Verifier, VerifierSpec
from rephrase.verify.judge import judge_messages, parse_answer, result_from_answer


@pytest.mark.parametrize("answer,label", [
    ('{"verdict": "faithful", "detail": ""}', "faithful"),
    ('Sure! {"verdict": "changes", "detail": "1867 became 1868"} Hope that helps.', "changes"),
    ('{"verdict": "DROPS"}', "drops"),
    ("adds: the rewrite mentions Sweden", "adds"),
    ('{"verdict": "maybe"}', None),
    ("I think the rewrite is pretty good overall.", None),
    ("{broken json", None),
])
def test_parse_answer(answer, label):
    assert parse_answer(answer)[0] == label


def test_results_from_answers():
    ok = result_from_answer('{"verdict": "faithful"}', 0.5)
    assert ok.passed and ok.score == 1.0
    bad = result_from_answer('{"verdict": "changes", "detail": "1867 became 1868"}', 0.5)
    assert not bad.passed and bad.reason == "judge says the rewrite changes a fact: 1867 became 1868"
    junk = result_from_answer("The rewrite is a rewrite.", 0.5)
    assert not junk.passed and junk.reason.startswith("unparseable judge answer")
    assert "SOURCE:\nA.\n" in judge_messages("A.", "B.")[1]["content"]


class FaultInjectingJudgeEngine(Engine):
    """Fault injection: answers from a script, including malformed text and engine errors."""
    name, model, max_concurrency = "fault", "scripted", 4

    def __init__(self, answers):
        self.answers, self.requests = list(answers), []

    async def generate(self, req):
        self.requests.append(req)
        text = self.answers[len(self.requests) - 1]
        if text is None:
            return Completion("", 10, 0, "error", error="backend exploded")
        return Completion(text, 10, 5, "stop")

    def encode(self, text):
        return list(text.encode())

    def prompt_tokens(self, messages):
        return sum(len(m["content"]) for m in messages)


def test_judge_joins_the_verdict_and_faults_reject():
    pairs = [("It has 3 legs.", "Three legs, it has.")] * 3
    engine = FaultInjectingJudgeEngine(['{"verdict": "faithful"}', "no idea", None])
    verifier = Verifier(VerifierSpec(checks=["numbers"], judge=True), judge_engine=engine)
    verdicts = asyncio.run(verifier.averify_batch(pairs))
    assert [v.accepted for v in verdicts] == [True, False, False]
    assert verdicts[1].reasons[0].startswith("judge: unparseable judge answer")
    assert verdicts[2].reasons == ["judge: judge engine error: backend exploded"]
    assert all(r.params.temperature == 0.0 for r in engine.requests)
    # the synchronous path runs the judge too (outside an event loop)
    engine2 = FaultInjectingJudgeEngine(['{"verdict": "adds", "detail": "x"}'])
    [v] = Verifier(VerifierSpec(checks=["numbers"], judge=True), judge_engine=engine2).verify_batch(pairs[:1])
    assert v.reasons == ["judge: judge says the rewrite adds a fact: x"]


def test_judge_off_by_default_never_builds_an_engine():
    v = Verifier(VerifierSpec(checks=["numbers"]))
    [verdict] = v.verify_batch([("It has 3 legs.", "It has three legs.")])
    assert verdict.accepted and [c.name for c in verdict.checks] == ["numbers"] and v._judge is None


@pytest.mark.slow
def test_judge_with_the_real_local_engine():
    """The embedded SmolLM2-135M is too small to judge well; this checks the real path end to end: prompts go
    through the chat template, generation runs, and every answer becomes a CheckResult with a reason."""
    spec = VerifierSpec(checks=["numbers"], judge=True, judge_max_tokens=24,
                        judge_engine={"kind": "local", "max_concurrency": 2, "batch_size": 2})
    verifier = Verifier(spec)
    pairs = [("Marie Curie was born in Warsaw in 1867.", "Curie's birthplace was Warsaw; she was born in 1867."),
             ("Marie Curie was born in Warsaw in 1867.", "Curie was born in Paris in 1867.")]
    verdicts = asyncio.run(verifier.averify_batch(pairs))
    judged = [next(c for c in v.checks if c.name == "judge") for v in verdicts]
    for j in judged:
        assert j.score in (0.0, 1.0)
        assert j.passed or j.reason.startswith(("judge says", "unparseable judge answer"))
    asyncio.run(verifier._judge_engine.aclose())
