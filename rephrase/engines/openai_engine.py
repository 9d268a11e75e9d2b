"""Engine for any OpenAI-compatible chat-completions server (OpenAI, vLLM serve, llama.cpp server, ...).

Reliability is ours, not the client's: the `openai` client is built with `max_retries=0`, and this engine
retries 429 / 408 / 5xx / timeouts / connection errors itself with full-jitter exponential backoff, honouring
Retry-After when the server sends it, so every retry is counted in `stats`. Other 4xx (bad request, auth) are not
retried. A response header `x-should-retry: true|false` overrides the status (as the openai client's own policy
does): true retries any status, false stops at once even on a 429 or 5xx. Concurrency is bounded by a semaphore and, optionally, request starts by a token bucket (requests/s).

The API key is read from the environment variable named by `api_key_env` when the client is built; it is never
stored in a spec, a log line or `stats`. Servers that need no key (vLLM on loopback) get the placeholder "EMPTY".

Token counts: the server's `usage` when it reports one (exact). `count_tokens` / `prompt_tokens` use a local
tokenizer: the one configured (`tokenizer`: an HF directory or a tokenizer.json), else the embedded SmolLM2
tokenizer as an APPROXIMATION for other models' budgets (chunk sizes), not an exact count.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from corpus.embedded import embedded_model_dir
from rephrase.engines.base import ChatRequest, Completion, Engine, EngineError, hf_chat_prompt_ids
from rephrase.engines.ratelimit import TokenBucket, backoff_delay, retry_after_seconds

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))


def should_retry(status: int, headers) -> bool:
    """Retry this HTTP error? The server's `x-should-retry` header decides when present, else the status."""
    told = (headers.get("x-should-retry") or "").strip().lower() if headers is not None else ""
    if told in ("true", "false"):
        return told == "true"
    return status in RETRY_STATUSES


class OpenAIEngine(Engine):
    """Chat completions over HTTP; see the module docstring for retries, limits and token counting."""

    name = "openai"

    def __init__(self, base_url: str, model: str | None = None, *, api_key_env: str = "OPENAI_API_KEY",
                 max_concurrency: int = 8, timeout_s: float = 120.0, max_retries: int = 5,
                 requests_per_second: float | None = None, tokenizer: str | Path | None = None,
                 context_length: int = 8192, backoff_base_s: float = 0.5, backoff_cap_s: float = 30.0,
                 retry_after_cap_s: float = 120.0, seed: int | None = None) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.base_url = base_url.rstrip("/")
        self.model = model or ""
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.requests_per_second = requests_per_second
        self.context_length = context_length
        self.backoff_base_s, self.backoff_cap_s = backoff_base_s, backoff_cap_s
        self.retry_after_cap_s = retry_after_cap_s
        self._rng = random.Random(seed)
        self._tokenizer_path = Path(tokenizer) if tokenizer else None
        self._tok: _Tokenizer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._sem: asyncio.Semaphore | None = None
        self._bucket: TokenBucket | None = None
        self._model_lock: asyncio.Lock | None = None
        self.stats: dict[str, Any] = {"requests": 0, "attempts": 0, "retries": 0, "failures": 0,
                                      "retry_reasons": Counter(), "waited_s": 0.0}

    @classmethod
    def from_spec(cls, spec) -> "OpenAIEngine":
        return cls(spec.base_url, spec.model, api_key_env=spec.api_key_env, max_concurrency=spec.max_concurrency,
                   timeout_s=spec.timeout_s, max_retries=spec.max_retries,
                   requests_per_second=spec.requests_per_second, tokenizer=spec.tokenizer,
                   context_length=spec.context_length or 8192, seed=spec.seed)

    # -- plumbing --------------------------------------------------------------------------------------------
    def _bind(self) -> None:
        """(Re)build loop-bound objects: asyncio primitives and httpx pools can't be shared across event loops."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        import openai
        key = os.environ.get(self.api_key_env) or "EMPTY"
        self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=key, max_retries=0,
                                          timeout=self.timeout_s)
        self._sem = asyncio.Semaphore(self.max_concurrency)
        self._bucket = TokenBucket(self.requests_per_second) if self.requests_per_second else None
        self._model_lock = asyncio.Lock()
        self._loop = loop

    async def _resolve_model(self) -> str:
        """The served model id: the configured one, else the first the server lists (vLLM serves exactly one)."""
        if self.model:
            return self.model
        async with self._model_lock:
            if not self.model:
                models = await self._with_retries(lambda: self._client.models.list(), "list models")
                ids = [m.id for m in models.data]
                if not ids:
                    raise EngineError(f"openai engine: {self.base_url} serves no models")
                self.model = ids[0]
        return self.model

    async def aclose(self) -> None:
        if self._client is not None:
            try:
                await self._client.close()
            except RuntimeError:  # its event loop is already closed: nothing left to release
                pass
        self._client, self._loop = None, None

    # -- generation ------------------------------------------------------------------------------------------
    async def generate(self, req: ChatRequest) -> Completion:
        self._bind()
        model = await self._resolve_model()
        p = req.params
        kwargs: dict[str, Any] = {"model": model, "messages": req.messages, "temperature": p.temperature,
                                  "top_p": p.top_p, "max_tokens": p.max_tokens}
        if p.seed is not None:
            kwargs["seed"] = p.seed
        if p.stop:
            kwargs["stop"] = list(p.stop)
        t0 = time.perf_counter()
        async with self._sem:
            self.stats["requests"] += 1
            resp = await self._with_retries(lambda: self._client.chat.completions.create(**kwargs),
                                            f"request {req.request_id or '?'}")
        return self._completion(req, resp, time.perf_counter() - t0)

    async def _with_retries(self, call, what: str):
        """Run `call()` with our retry policy; EngineError with the last status once retries are exhausted."""
        import openai
        for attempt in range(self.max_retries + 1):
            if self._bucket is not None:
                await self._bucket.acquire()
            self.stats["attempts"] += 1
            try:
                return await call()
            except openai.APIStatusError as e:
                reason, status, headers = f"HTTP {e.status_code}", e.status_code, e.response.headers
                if not should_retry(status, headers):
                    self.stats["failures"] += 1
                    raise EngineError(f"openai engine: {what} rejected by {self.base_url}: {reason}: "
                                 f"{_short(e.message)}", status) from None
            except openai.APITimeoutError:
                reason, status, headers = f"timeout after {self.timeout_s:g}s", None, None
            except openai.APIConnectionError as e:
                reason, status, headers = f"connection error ({_short(str(e.__cause__ or e))})", None, None
            if attempt == self.max_retries:
                self.stats["failures"] += 1
                raise EngineError(f"openai engine: {what} to {self.base_url} failed after {attempt + 1} attempts; "
                             f"last: {reason}", status)
            delay = self._delay(attempt, headers)
            self.stats["retries"] += 1
            self.stats["retry_reasons"][reason.split(" (")[0]] += 1
            self.stats["waited_s"] += delay
            log.warning("openai engine: %s: %s; retry %d/%d in %.2fs", what, reason, attempt + 1,
                        self.max_retries, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, headers) -> float:
        server_says = retry_after_seconds(headers)
        if server_says is not None:  # the server knows its load better than our backoff curve does
            return min(server_says, self.retry_after_cap_s)
        return backoff_delay(attempt, self.backoff_base_s, self.backoff_cap_s, self._rng)

    def _completion(self, req: ChatRequest, resp: Any, latency: float) -> Completion:
        if not getattr(resp, "choices", None):
            return Completion("", self.prompt_tokens(req.messages), 0, "error", error="response had no choices",
                              latency_s=latency)
        choice = resp.choices[0]
        text = (choice.message.content if choice.message is not None else None) or ""
        usage = getattr(resp, "usage", None)
        n_prompt = usage.prompt_tokens if usage is not None else self.prompt_tokens(req.messages)
        n_out = usage.completion_tokens if usage is not None else self.count_tokens(text)
        reason, error = _finish_reason(choice.finish_reason)
        return Completion(text=text, prompt_tokens=n_prompt, completion_tokens=n_out, finish_reason=reason,
                          error=error, latency_s=latency)

    # -- tokens ----------------------------------------------------------------------------------------------
    def _tokenizer(self) -> "_Tokenizer":
        if self._tok is None:
            self._tok = _Tokenizer(self._tokenizer_path)
        return self._tok

    def encode(self, text: str) -> list[int]:
        return self._tokenizer().encode(text)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        return self._tokenizer().prompt_tokens(messages)


class _Tokenizer:
    """Local token counting: an HF directory (with its chat template) or a bare tokenizer.json (ChatML estimate)."""

    def __init__(self, path: Path | None) -> None:
        if path is None:
            path = embedded_model_dir()
        if not path.exists():
            raise EngineError(f"openai engine: tokenizer {path} does not exist")
        self.path = path
        if path.is_dir():
            from transformers import AutoTokenizer
            self._hf, self._raw = AutoTokenizer.from_pretrained(str(path)), None
        else:
            from tokenizers import Tokenizer
            self._hf, self._raw = None, Tokenizer.from_file(str(path))

    def encode(self, text: str) -> list[int]:
        if self._hf is not None:
            return list(self._hf(text, add_special_tokens=False)["input_ids"])
        return list(self._raw.encode(text, add_special_tokens=False).ids)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        if self._hf is not None:
            return len(hf_chat_prompt_ids(self._hf, messages))
        # ChatML framing: "<|im_start|>role\n" ... "<|im_end|>\n" ~ 4 tokens per message, +3 for the reply header.
        return sum(len(self.encode(m["content"])) + 4 for m in messages) + 3


def _finish_reason(raw: str | None) -> tuple[str, str | None]:
    if raw in (None, "stop", "eos", "end_turn"):
        return "stop", None
    if raw == "length":
        return "length", None
    return "error", f"finish_reason {raw!r}"


def _short(s: str, n: int = 200) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 3] + "..."
