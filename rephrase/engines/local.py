"""Local transformers engine with continuous-ish batching and per-request seeded sampling.

How a request flows: `generate()` puts (request, future) on a priority queue (lower `priority` first, then
arrival order) and wakes a background task in the running event loop. That task takes up to `batch_size` pending
requests, and runs one batched decode in a worker thread
(`asyncio.to_thread`), so the event loop stays free to accept more requests (and to run verification) while the
model works; requests that arrive meanwhile form the next batch.

Decoding is our own loop over the model's forward pass with a KV cache, not `model.generate`, because HF's
generate has ONE random generator per call. Here every row has its own `torch.Generator` seeded from its
request's `seed`, and draws exactly one uniform number per generated token (inverse-CDF sampling after
temperature and top-p). So a request's random stream depends only on its seed, never on its neighbours in the
batch; temperature 0 is greedy and draws nothing. Same seed + same batch composition is bit-for-bit
reproducible; across different batch compositions the tokens match too unless float rounding of the
left-padded batch flips a near-tie in the logits (rare with fp32; more likely with bf16).

finish_reason: "stop" on EOS or a stop string (the text is cut before it), "length" when max_tokens is reached.
completion_tokens counts the tokens generated, including the EOS token (as vLLM does).
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from corpus.embedded import embedded_model_dir
from rephrase.engines.base import (ChatRequest, Completion, Engine, EngineError, hf_chat_prompt_ids,
                                   limit_torch_threads, truncate_at_stop)

log = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "bfloat16", "float16")


def default_model_dir() -> Path:
    """The embedded SmolLM2-135M-Instruct as a Hugging Face directory (converted once, cached)."""
    return embedded_model_dir()


class LocalEngine(Engine):
    """transformers model in process; see the module docstring for the batching and seeding contract."""

    name = "local"

    def __init__(self, model: str | Path | None = None, *, batch_size: int = 8, max_concurrency: int | None = None,
                 device: str = "auto", dtype: str = "auto", threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        path = Path(model) if model is not None else default_model_dir()
        if not (path / "config.json").is_file():
            raise EngineError(f"local engine: {path} is not a Hugging Face model directory (no config.json)")
        self.model = str(path)
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency or batch_size
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        if self.device == "cpu":
            limit_torch_threads(threads)
        torch_dtype = self._torch_dtype(dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self._lm = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype).to(self.device).eval()
        cfg = self._lm.config
        self.context_length = int(getattr(cfg, "max_position_embeddings", 2048) or 2048)
        self.eos_ids = self._eos_ids()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        # Fast tokenizers raise "Already borrowed" when used from two threads at once; one lock is enough here.
        self._tok_lock = threading.Lock()
        self._pending: list[tuple[int, int, ChatRequest, asyncio.Future]] = []   # heap: (priority, seq, ...)
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._closed = False
        self.stats: dict[str, Any] = {"batches": 0, "requests": 0, "batch_sizes": [], "generated_tokens": 0}
        log.info("local engine: %s on %s (%s), batch_size=%d", path, self.device, torch_dtype, batch_size)

    @classmethod
    def from_spec(cls, spec) -> "LocalEngine":
        return cls(spec.model, batch_size=spec.batch_size, max_concurrency=spec.max_concurrency,
                   device=spec.device, dtype=spec.dtype, threads=spec.threads)

    def _torch_dtype(self, dtype: str):
        import torch
        if dtype == "auto":
            return torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        return getattr(torch, dtype)

    def _eos_ids(self) -> list[int]:
        gen = getattr(self._lm, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        if eos is None:
            eos = self.tokenizer.eos_token_id
        if eos is None:
            raise EngineError(f"local engine: {self.model} defines no eos_token_id")
        return list(eos) if isinstance(eos, (list, tuple)) else [int(eos)]

    # -- tokenizer -------------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        with self._tok_lock:
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        with self._tok_lock:
            return hf_chat_prompt_ids(self.tokenizer, messages)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        return len(self.prompt_ids(messages))

    def decode(self, ids: Sequence[int]) -> str:
        with self._tok_lock:
            return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # -- scheduling ------------------------------------------------------------------------------------------
    async def generate(self, req: ChatRequest) -> Completion:
        if self._closed:
            raise EngineError("local engine: generate() after aclose()")
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._worker is None or self._worker.done():
            self._start_worker(loop)
        t0 = time.perf_counter()
        fut: asyncio.Future = loop.create_future()
        heapq.heappush(self._pending, (req.priority, next(self._seq), req, fut))
        self._wake.set()
        res = await fut
        res.latency_s = time.perf_counter() - t0  # as a caller sees it: queueing included
        return res

    def _start_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        # A new event loop (e.g. a second asyncio.run) needs its own event and task; stale entries can't be served.
        if loop is not self._loop:
            self._pending.clear()
        self._loop, self._wake = loop, asyncio.Event()
        self._worker = loop.create_task(self._serve(), name="local-engine-batcher")

    async def _serve(self) -> None:
        """Main loop: wait for work, take up to batch_size requests, decode them in a thread, hand out results."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = [heapq.heappop(self._pending)[2:] for _ in range(min(self.batch_size, len(self._pending)))]
                batch = [(r, f) for r, f in batch if not f.done()]  # callers that gave up (cancelled)
                if not batch:
                    continue
                try:
                    results = await asyncio.to_thread(self._decode_batch, [r for r, _ in batch])
                except Exception as e:  # noqa: BLE001 - every waiting caller must learn about it
                    log.exception("local engine: batch of %d failed", len(batch))
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(EngineError(f"local engine: generation failed: {e!r}"))
                    continue
                for (_, fut), res in zip(batch, results):
                    if not fut.done():
                        fut.set_result(res)

    async def aclose(self) -> None:
        self._closed = True
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            if self._loop is asyncio.get_running_loop():  # a task of another loop can't be awaited here
                try:
                    await self._worker
                except asyncio.CancelledError:
                    pass
        while self._pending:
            fut = heapq.heappop(self._pending)[3]
            if not fut.done():
                fut.set_exception(EngineError("local engine: closed while the request was queued"))

    # -- decoding (worker thread) ----------------------------------------------------------------------------
    def _decode_batch(self, reqs: list[ChatRequest]) -> list[Completion]:
        """Prepare rows, decode the valid ones together, and report over-long prompts as error completions."""
        t0 = time.perf_counter()
        rows, out = [], [None] * len(reqs)
        for i, r in enumerate(reqs):
            try:
                ids = self.prompt_ids(r.messages)
            except Exception as e:  # noqa: BLE001 - e.g. a role the chat template rejects: only this request fails
                out[i] = Completion("", 0, 0, "error", error=f"chat template failed: {e}", latency_s=0.0)
                continue
            room = self.context_length - len(ids)
            if room < 1:
                out[i] = Completion("", len(ids), 0, "error", latency_s=time.perf_counter() - t0,
                                    error=f"prompt of {len(ids)} tokens leaves no room in the context of "
                                          f"{self.context_length}")
                continue
            rows.append((i, ids, min(r.params.max_tokens, room)))
        if rows:
            gens = self._decode_rows([reqs[i] for i, _, _ in rows], [ids for _, ids, _ in rows],
                                     [n for _, _, n in rows])
            for (i, ids, _), (toks, hit_eos) in zip(rows, gens):
                out[i] = self._finish(reqs[i], len(ids), toks, hit_eos, time.perf_counter() - t0)
        self.stats["batches"] += 1
        self.stats["requests"] += len(reqs)
        self.stats["batch_sizes"].append(len(reqs))
        return out

    def _finish(self, req: ChatRequest, n_prompt: int, toks: list[int], hit_eos: bool, dt: float) -> Completion:
        body = toks[:-1] if hit_eos else toks
        text, cut = truncate_at_stop(self.decode(body), req.params.stop)
        self.stats["generated_tokens"] += len(toks)
        reason = "stop" if hit_eos or cut else "length"
        return Completion(text=text, prompt_tokens=n_prompt, completion_tokens=len(toks), finish_reason=reason,
                          latency_s=dt)

    def _decode_rows(self, reqs: list[ChatRequest], prompts: list[list[int]], limits: list[int]):
        """Batched KV-cached decoding. Returns per row (generated ids incl. a final EOS, ended-on-EOS flag)."""
        import torch

        B, T = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((B, T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, T), dtype=torch.long)
        for b, p in enumerate(prompts):  # left padding keeps every row's last prompt token at position T-1
            ids[b, T - len(p):] = torch.tensor(p)
            mask[b, T - len(p):] = 1
        sampler = RowSampler([r.params for r in reqs])
        eos = set(self.eos_ids)
        out: list[list[int]] = [[] for _ in range(B)]
        done, hit_eos = [False] * B, [False] * B
        ids, mask = ids.to(self.device), mask.to(self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache, step_in = None, ids
        with torch.inference_mode():
            for step in range(max(limits)):
                res = self._lm(input_ids=step_in, attention_mask=mask, position_ids=pos, past_key_values=cache,
                               use_cache=True)
                cache = res.past_key_values
                nxt = sampler.sample(res.logits[:, -1, :], active=[not d for d in done])
                for b in range(B):
                    if done[b]:
                        continue
                    tok = int(nxt[b])
                    out[b].append(tok)
                    hit_eos[b] = tok in eos
                    done[b] = hit_eos[b] or len(out[b]) >= limits[b] or self._stopped(reqs[b], out[b])
                if all(done):
                    break
                step_in = torch.tensor([[out[b][-1] if out[b] else self.pad_id] for b in range(B)],
                                       device=self.device)
                mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=self.device)], dim=1)
                pos = pos[:, -1:] + 1
        return list(zip(out, hit_eos))

    def _stopped(self, req: ChatRequest, toks: list[int]) -> bool:
        stop = req.params.stop
        return bool(stop) and truncate_at_stop(self.decode(toks), stop)[1]


class RowSampler:
    """Temperature + top-p sampling with one torch.Generator per row; temperature 0 rows are greedy."""

    def __init__(self, params: Sequence[Any]) -> None:
        import torch
        self.params = list(params)
        self.gens = []
        for p in self.params:
            g = torch.Generator(device="cpu")
            if p.seed is None:
                g.seed()  # fresh entropy: unseeded requests are not meant to be reproducible
            else:
                g.manual_seed(int(p.seed))
            self.gens.append(g)

    def sample(self, logits, active: Sequence[bool]):
        """One next token id per row (inactive rows get 0 and consume no randomness)."""
        import torch
        logits = logits.float().cpu()
        out = torch.zeros(logits.shape[0], dtype=torch.long)
        for b, p in enumerate(self.params):
            if not active[b]:
                continue
            if p.temperature == 0:
                out[b] = int(torch.argmax(logits[b]))
                continue
            probs = torch.softmax(logits[b] / p.temperature, dim=-1)
            sorted_p, order = torch.sort(probs, descending=True)
            cum = torch.cumsum(sorted_p, dim=-1)
            keep = (cum - sorted_p) < p.top_p  # smallest prefix whose mass reaches top_p (always >= 1 token)
            kept = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
            cdf = torch.cumsum(kept, dim=-1)
            u = torch.rand((), generator=self.gens[b]) * cdf[-1]
            j = int(torch.searchsorted(cdf, u.reshape(1), right=True).clamp(max=int(keep.sum()) - 1))
            out[b] = int(order[j])
        return out
