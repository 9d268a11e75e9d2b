"""A FAULT-INJECTING scripted engine: answers each chunk with a chosen text, so one chunk fails verification
deterministically while the others pass.

Requests are identified by their id, "<doc>/<variant>/<chunk>/<attempt>" (rephrase.generate builds it). The
engine answers chunk i of document d with `rewrites[d][i]`, except where `fail(doc, chunk, request)` is true:
then it answers `bad` (an unfaithful rewrite, long enough that the `length` check rejects it) or, with
`bad_finish="error"`, an engine-error completion. Tokens are whitespace words: the engine's own count, so tests
can compute yields by hand.
"""
from __future__ import annotations

import asyncio
from typing import Callable

from rephrase.engines.base import ChatRequest, Completion, Engine

#: invents facts and runs to 4x the source: the `length` check (max ratio 3) rejects it every time
BAD = ("The Aswan High Dam was finished in 1971 by ten thousand engineers from five countries, who also built a "
       "second dam upstream, a railway line to Cairo and a new port on the Red Sea, all of it paid for by a "
       "foreign loan that the government repaid in full in 1990 after a long dispute with its lenders.")

Fail = Callable[[str, int, ChatRequest], bool]


class ScriptedEngine(Engine):
    """FAULT INJECTION: scripted answers per (document, chunk); `fail` picks the chunks that get `bad`."""
    name, model, max_concurrency, context_length = "scripted", "scripted-fault", 4, 8192

    def __init__(self, rewrites: dict[str, list[str]], fail: Fail, *, bad: str = BAD, bad_finish: str = "stop"):
        self.rewrites, self.fail, self.bad, self.bad_finish = rewrites, fail, bad, bad_finish
        self.requests: list[ChatRequest] = []

    async def generate(self, req: ChatRequest) -> Completion:
        await asyncio.sleep(0)
        self.requests.append(req)
        doc, _, chunk, _ = req.request_id.split("/")
        prompt = self.prompt_tokens(req.messages)
        if self.fail(doc, int(chunk), req):
            if self.bad_finish == "error":
                return Completion("", prompt, 0, "error", error="injected: the backend answered 500")
            return Completion(self.bad, prompt, self.count_tokens(self.bad), "stop")
        text = self.rewrites[doc][int(chunk)]
        return Completion(text, prompt, self.count_tokens(text), "stop")

    def encode(self, text: str) -> list[int]:
        return list(range(len(text.split())))

    def prompt_tokens(self, messages) -> int:
        return sum(self.count_tokens(m["content"]) for m in messages)


def fail_chunks(*chunks: int, docs: tuple[str, ...] = (), style_text: str = "") -> Fail:
    """A `fail` predicate: these chunk indices (of these documents, or any), when the prompt holds `style_text`."""
    def fail(doc: str, chunk: int, req: ChatRequest) -> bool:
        prompt = "\n".join(m["content"] for m in req.messages)
        return chunk in chunks and (not docs or doc in docs) and style_text in prompt
    return fail
