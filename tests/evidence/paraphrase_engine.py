"""A SCRIPTED engine for the probe's default-stage test: no LLM, so the plumbing runs in seconds.

It answers a rewrite request of person P, variant v with a faithful sentence-template paraphrase of P's facts
(evidence.world's control templates under another seed, so its texts differ from the control arm's) when
`keep(P, v)` is true, and with an off-topic text otherwise, so the real verifier accepts some variants and
rejects the others and the probe's yield accounting and gap rule see a known pattern. Tokens are whitespace words.
"""
from __future__ import annotations

import asyncio
from typing import Callable

from evidence.world import Person, control_paraphrases
from rephrase.engines.base import ChatRequest, Completion, Engine
from rephrase.stage import RewriteStage

OFF_TOPIC = ("The committee met on a rainy afternoon to discuss the new timetable for the northern railway line, "
             "and after a long debate about ticket prices they agreed to postpone the decision until spring.")


class ParaphraseEngine(Engine):
    name, model, max_concurrency, context_length = "scripted", "template-paraphraser", 4, 8192

    def __init__(self, people: list[Person], keep: Callable[[str, int], bool], variants: int):
        self.texts = {p.id: control_paraphrases(p, seed=12345, k=variants) for p in people}
        self.keep = keep
        self.requests: list[ChatRequest] = []

    async def generate(self, req: ChatRequest) -> Completion:
        await asyncio.sleep(0)
        self.requests.append(req)
        doc, variant, _, _ = req.request_id.split("/")
        text = self.texts[doc][int(variant)] if self.keep(doc, int(variant)) else OFF_TOPIC
        return Completion(text, self.prompt_tokens(req.messages), self.count_tokens(text), "stop")

    def encode(self, text: str) -> list[int]:
        return list(range(len(text.split())))

    def prompt_tokens(self, messages) -> int:
        return sum(self.count_tokens(m["content"]) for m in messages)


class ParaphraseStage(RewriteStage):
    """The real rewriting stage and verifier, with the scripted engine."""

    def __init__(self, spec, engine: ParaphraseEngine):
        super().__init__(spec, "rephrase")
        self._scripted = engine

    def build_engine(self):
        return self._scripted
