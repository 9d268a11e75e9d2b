"""The one async engine interface every backend implements (local transformers, in-process vLLM, OpenAI-compatible).

Contract (what callers may rely on):
- `generate(req)` may be called many times concurrently; the engine bounds its own concurrency/batching.
- A completion that merely ended badly (empty text, `finish_reason == "length"`) is RETURNED, not raised, so the
  caller decides whether to retry with another prompt or reject; only unrecoverable failures (a backend that is
  down after all retries, a bad request) raise `EngineError`, whose message says why.
- Token counts come from the engine's own tokenizer (or the server's reported usage), never from characters.
"""
from __future__ import annotations

import abc
import asyncio
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

FINISH_REASONS = ("stop", "length", "error")


@dataclass
class SamplingParams:
    """Per-request sampling. temperature 0 means greedy; `seed` makes a sampled request reproducible."""
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512
    seed: int | None = None
    stop: list[str] | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"SamplingParams.max_tokens must be >= 1, got {self.max_tokens}")


@dataclass
class ChatRequest:
    """A chat-completions request: OpenAI-style messages ({"role", "content"}) plus sampling parameters.

    `priority`: lower is served first among queued requests (vLLM's convention); engines that queue (local,
    in-process vLLM) honour it, ties go first-come first-served. The rewrite loop gives the requests of
    variants with more chunks still to go a lower value, so a run's tail is not one long chain alone."""
    messages: list[dict[str, str]]
    params: SamplingParams = field(default_factory=SamplingParams)
    request_id: str = ""
    priority: int = 0

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError(f"ChatRequest {self.request_id!r}: messages must not be empty")
        for i, m in enumerate(self.messages):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise ValueError(f"ChatRequest {self.request_id!r}: messages[{i}] needs 'role' and 'content'")
            if not isinstance(m["content"], str) or not isinstance(m["role"], str):
                raise ValueError(f"ChatRequest {self.request_id!r}: messages[{i}] role and content must be strings")


@dataclass
class Completion:
    """One generated answer. finish_reason: "stop" (EOS / stop string), "length" (max_tokens) or "error"."""
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    error: str | None = None
    latency_s: float = 0.0


class EngineError(RuntimeError):
    """Unrecoverable engine failure (after retries, or a request the backend rejects); the message says why.

    `status` is the last HTTP status seen (None for timeouts, connection errors and local failures)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Engine(abc.ABC):
    """Base class: subclasses implement `generate`, `encode` and `_render_prompt_ids` (or override `prompt_tokens`)."""

    name: str = ""
    model: str = ""
    max_concurrency: int = 1
    context_length: int = 2048

    @abc.abstractmethod
    async def generate(self, req: ChatRequest) -> Completion:
        """Generate one completion; safe to call concurrently."""

    async def generate_many(self, reqs: Iterable[ChatRequest]) -> list[Completion]:
        """All completions in request order, with at most `max_concurrency` in flight from this call."""
        sem = asyncio.Semaphore(max(1, self.max_concurrency))

        async def one(r: ChatRequest) -> Completion:
            async with sem:
                return await self.generate(r)

        return list(await asyncio.gather(*(one(r) for r in reqs)))

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of `text` under the engine's tokenizer, without special tokens."""

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    @abc.abstractmethod
    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        """Length in tokens of the chat-templated prompt (with the generation prompt appended)."""

    async def aclose(self) -> None:
        """Release the backend (threads, processes, HTTP connections). Idempotent."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, max_concurrency={self.max_concurrency})"


def usable_cores() -> int:
    """CPU cores this process may run on (cgroup/affinity aware), so torch never oversubscribes a small box."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def limit_torch_threads(threads: int | None = None) -> int:
    """Cap torch's intra-op threads at `threads`; returns the value in force.

    Default: one core less than usable (at least 1), leaving a core to the event loop, tokenizers and the
    verifier that overlap generation. Why it matters: OpenMP threads spin at every barrier, so when any other
    CPU work competes for the cores, 2 threads on 2 cores decoded SmolLM2 about 25x SLOWER than 1 thread
    (measured here: 95-115 s vs 3.7-5.4 s for the same 3x12-token batch under load).
    """
    import torch
    cap = threads or max(1, usable_cores() - 1)
    if torch.get_num_threads() > cap:
        torch.set_num_threads(cap)
    return torch.get_num_threads()


def hf_chat_prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """Prompt ids from a transformers tokenizer's chat template; a plain role-tagged text if it has none."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
        # transformers 5 may hand back a BatchEncoding/dict instead of a plain list.
        if hasattr(ids, "keys") and "input_ids" in ids:
            ids = ids["input_ids"]
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if ids and isinstance(ids[0], list):
            ids = ids[0]
        return list(ids)
    text = "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + "assistant: "
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def truncate_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    """Cut `text` at the earliest stop string (which is not included); True when one was found."""
    if not stop:
        return text, False
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
