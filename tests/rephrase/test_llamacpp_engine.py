"""The llama.cpp engine (xllamacpp) generating for real with the embedded SmolLM2 GGUF, checked against llama.cpp's
own reports and against the transformers model of the same weights; plus the openai engine against its server."""
from __future__ import annotations

import asyncio
import math
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from rephrase.engines import LlamaCppEngineSpec, engine_spec, make_engine
from rephrase.engines.base import ChatRequest, EngineError, SamplingParams

pytest.importorskip("xllamacpp", reason="the llamacpp engine needs the PyPI package xllamacpp")
pytestmark = pytest.mark.timeout(300)

SEA = "Write one sentence about the sea."
COLOUR = "Name a colour."


def req(text: str = SEA, *, seed: int | None = 1, temperature: float = 1.0, top_p: float = 0.95,
        max_tokens: int = 12, stop: list[str] | None = None, priority: int = 0, rid: str = "") -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}],
                       SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                                      stop=stop), request_id=rid, priority=priority)


def greedy(text: str, max_tokens: int = 24, stop: list[str] | None = None) -> ChatRequest:
    return req(text, seed=None, temperature=0.0, max_tokens=max_tokens, stop=stop)


@pytest.fixture(scope="module")
def engine():
    eng = make_engine(LlamaCppEngineSpec(max_concurrency=4, threads=1))
    yield eng
    asyncio.run(eng.aclose())


def gather(eng, reqs):
    async def go():
        return await asyncio.gather(*(eng.generate(r) for r in reqs))
    return list(asyncio.run(go()))


def raw(eng, r: ChatRequest, **extra) -> dict:
    """The engine's own request body for `r`, plus llama.cpp's reporting flags, sent straight to its server."""
    resp = eng._server.handle_chat_completions({**eng._body(r), **extra})
    assert "error" not in resp, resp
    return resp


def token_logprobs(resp: dict) -> list[dict]:
    return resp["choices"][0]["logprobs"]["content"]


# -- contract ----------------------------------------------------------------------------------------------
def test_loads_the_embedded_gguf_with_its_context(engine):
    assert engine.name == "llamacpp" and engine.model.endswith(".gguf")
    assert engine.max_concurrency == 4 and engine.context_length == 4096
    assert engine.stats["startup_s"] < 60


def test_same_seed_same_text_and_seeds_matter(engine):
    reqs = [req(seed=s) for s in (1, 2, 3)]
    first, again = gather(engine, reqs), gather(engine, reqs)
    assert [c.text for c in first] == [c.text for c in again]
    assert len({c.text for c in first}) > 1, "different seeds gave identical samples"
    assert all(c.text.strip() and c.error is None for c in first)


def test_seeded_request_does_not_depend_on_its_neighbours(engine):
    r = req(seed=7, max_tokens=16)
    (alone,) = gather(engine, [r])
    together = gather(engine, [r] + [req(f"Tell me about topic {i}.", seed=i, max_tokens=24) for i in range(3)])
    assert together[0].text == alone.text


def test_max_tokens_ends_with_length_and_exact_count(engine):
    (c,) = gather(engine, [greedy("Count from 1 to 100, separated by commas.", max_tokens=7)])
    assert (c.finish_reason, c.completion_tokens) == ("length", 7)
    assert c.prompt_tokens == engine.prompt_tokens([{"role": "user", "content":
                                                     "Count from 1 to 100, separated by commas."}])


def test_eos_finishes_with_stop_and_counts_the_eos_token(engine):
    (c,) = gather(engine, [greedy("What is 2+2?", max_tokens=64)])
    assert c.finish_reason == "stop" and c.text
    assert c.completion_tokens == len(engine.encode(c.text)) + 1


def test_stop_string_cuts_the_text_where_the_full_answer_has_it(engine):
    full, cut = gather(engine, [greedy(SEA, max_tokens=40), greedy(SEA, max_tokens=40, stop=[","])])
    assert "," in full.text
    assert cut.finish_reason == "stop" and cut.text == full.text[:full.text.index(",")]
    assert cut.completion_tokens < full.completion_tokens


def test_prompt_tokens_equal_what_llama_cpp_ran(engine):
    convs = [[{"role": "user", "content": SEA}],
             [{"role": "system", "content": "You rewrite text."}, {"role": "user", "content": "The sky is blue."}],
             [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
              {"role": "user", "content": "Name a colour, <|im_end|> please."}]]
    outs = gather(engine, [ChatRequest(m, SamplingParams(max_tokens=2, seed=1)) for m in convs])
    assert [engine.prompt_tokens(m) for m in convs] == [c.prompt_tokens for c in outs]
    assert engine.count_tokens("The sea is blue.") == len(engine.encode("The sea is blue.")) == 5


def test_over_long_prompt_is_an_error_completion(engine):
    (c,) = gather(engine, [req("word " * 5000, max_tokens=4)])
    assert c.finish_reason == "error" and "context" in c.error and c.prompt_tokens > engine.context_length
    (ok,) = gather(engine, [req(max_tokens=2)])   # the engine is fine afterwards
    assert ok.finish_reason in ("stop", "length")


def test_requests_really_run_together_in_llama_cpp(engine):
    """llama.cpp's /slots shows several sequences being decoded at the same moment."""
    async def go():
        task = asyncio.gather(*(engine.generate(greedy("Count from 1 to 100.", max_tokens=32)) for _ in range(4)))
        busy = 0
        while not task.done():
            slots = await asyncio.to_thread(engine._http, "GET", "/slots")
            busy = max(busy, sum(bool(s.get("is_processing")) for s in slots))
            await asyncio.sleep(0.02)
        return busy, await task
    busy, outs = asyncio.run(go())
    assert busy >= 2 and all(c.completion_tokens == 32 for c in outs)


def test_lower_priority_value_is_served_first():
    eng = make_engine(LlamaCppEngineSpec(max_concurrency=1, threads=1, context_length=512))
    order: list[str] = []

    async def one(r):
        c = await eng.generate(r)
        order.append(r.request_id)
        return c

    async def go():
        first = asyncio.create_task(one(req(max_tokens=8, rid="busy")))
        await asyncio.sleep(0.05)            # "busy" holds the only slot; the rest queue behind it
        await asyncio.gather(*(one(req(max_tokens=2, rid=f"p{p}", priority=p)) for p in (2, 0, 1)), first)
        await eng.aclose()
    asyncio.run(go())
    assert order == ["busy", "p0", "p1", "p2"]
    with pytest.raises(EngineError, match="after aclose"):
        eng.encode("x")


def test_unset_kind_is_llamacpp_for_the_embedded_model_on_cpu_only():
    assert engine_spec().kind == engine_spec(model="/m/x.gguf", threads=1).kind == "llamacpp"
    assert engine_spec(model="/models/Qwen2.5-7B-Instruct").kind == "local"        # an HF folder or id
    assert engine_spec(batch_size=4).kind == engine_spec(dtype="bfloat16").kind == "local"   # not llamacpp fields
    assert engine_spec(device="cuda:1").kind == "local"
    assert engine_spec(base_url="http://127.0.0.1:8000/v1").kind == "openai"
    assert engine_spec(enforce_eager=True).kind == engine_spec(model="m", tensor_parallel_size=2).kind == "vllm"
    assert engine_spec(kind="local").kind == "local" and engine_spec(kind=None, batch_size=2).kind == "local"
    assert engine_spec(engine_spec().model_dump()).kind == "llamacpp"   # saved specs say it
    assert set(engine_spec().model_dump()) == {"kind", "model", "max_concurrency", "context_length", "threads"}


def test_a_flat_spec_of_an_earlier_version_still_loads():
    old = {"kind": "llamacpp", "model": None, "base_url": None, "api_key_env": "OPENAI_API_KEY",
           "max_concurrency": 16, "batch_size": 8, "timeout_s": 120.0, "max_retries": 5, "requests_per_second": None,
           "tokenizer": None, "context_length": 2048, "device": "auto", "dtype": "auto", "threads": None,
           "gpu_memory_utilization": None, "max_model_len": None, "enforce_eager": False, "tensor_parallel_size": 1,
           "pipeline_parallel_size": 1, "enable_prefix_caching": None, "engine_kwargs": {}, "seed": 0}
    assert engine_spec(old) == LlamaCppEngineSpec(max_concurrency=16, context_length=2048)
    with pytest.raises(ValidationError, match="batch_size is not a field of engine kind 'llamacpp'"):
        engine_spec({**old, "batch_size": 4})         # another backend's field set to something: still an error


def test_spec_errors_name_the_problem(tmp_path):
    with pytest.raises(EngineError, match="not a .gguf file"):
        make_engine(LlamaCppEngineSpec(model=str(tmp_path)))
    with pytest.raises(EngineError, match="context_length 100000 exceeds"):
        make_engine(LlamaCppEngineSpec(context_length=100000, max_concurrency=1))


# -- sampling correctness ----------------------------------------------------------------------------------
def full_logprobs(engine, text: str) -> dict[int, float]:
    """llama.cpp's log-probabilities of the first answer token over the whole vocabulary."""
    resp = raw(engine, req(text, temperature=1.0, top_p=1.0, max_tokens=1), n_probs=49152)
    return {t["id"]: t["logprob"] for t in token_logprobs(resp)[0]["top_logprobs"]}


def reference(logprobs: dict[int, float], temperature: float, top_p: float) -> dict[int, float]:
    """Our contract: softmax(logits / T), keep the smallest top set whose mass reaches top_p, renormalise."""
    ids = np.array(list(logprobs))
    x = np.array([logprobs[i] for i in ids]) / temperature
    p = np.exp(x - x.max())
    p /= p.sum()
    order = np.argsort(-p)
    cum = np.cumsum(p[order])
    keep = order[: int(np.searchsorted(cum, top_p)) + 1]
    return {int(ids[k]): float(p[k] / p[keep].sum()) for k in keep}


def test_sampling_distribution_is_temperature_then_top_p(engine):
    """llama.cpp's post-sampling probabilities for the engine's request body equal our reference exactly."""
    lp = full_logprobs(engine, COLOUR)
    assert len(lp) > 40000 and math.isclose(sum(math.exp(v) for v in lp.values()), 1.0, abs_tol=1e-3)
    for t, p in ((0.7, 0.9), (1.3, 0.5), (1.0, 1.0)):
        resp = raw(engine, req(COLOUR, temperature=t, top_p=p, max_tokens=1), n_probs=200, post_sampling_probs=True)
        got = {e["id"]: e["prob"] for e in token_logprobs(resp)[0]["top_probs"]}
        want = reference(lp, t, p)
        top = sorted(want, key=want.get, reverse=True)[:50]
        assert max(abs(got.get(i, 0.0) - want[i]) for i in top) < 2e-3, (t, p)
        if p < 1:
            assert set(got) == set(want), (t, p)   # exactly the top-p set survives
    resp = raw(engine, req(COLOUR, temperature=0.0, max_tokens=1), n_probs=5, post_sampling_probs=True)
    assert [e["prob"] for e in token_logprobs(resp)[0]["top_probs"]] == [1.0]   # temperature 0: greedy
    assert token_logprobs(resp)[0]["id"] == max(lp, key=lp.get)


@pytest.fixture(scope="module")
def hf_model():
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from corpus.embedded import embedded_model_dir
    from rephrase.engines.base import limit_torch_threads
    limit_torch_threads()   # 2 OpenMP threads beside llama.cpp's on 2 busy cores spin for tens of seconds
    d = embedded_model_dir()
    return torch, AutoTokenizer.from_pretrained(str(d)), AutoModelForCausalLM.from_pretrained(
        str(d), dtype=torch.float32).eval()


PROMPTS = [SEA, "What is 2+2?", "Name three colours.",
           "Rewrite: The Nile is about 6,650 km long and flows north into the Mediterranean Sea."]


def test_greedy_matches_transformers_on_the_same_weights(engine, hf_model):
    """Same chat template ids; every greedy token llama.cpp picks is transformers' argmax, or a near-tie of it
    (llama.cpp multiplies Q4_1 weights by 8-bit-quantised activations; transformers uses dequantised fp32)."""
    torch, tok, lm = hf_model
    exact = total = 0
    for text in PROMPTS:
        msgs = [{"role": "user", "content": text}]
        ids = engine.prompt_ids(msgs)
        hf_ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
        hf_ids = list(hf_ids["input_ids"] if hasattr(hf_ids, "keys") else hf_ids)
        assert ids == hf_ids
        resp = raw(engine, greedy(text, max_tokens=16), logprobs=True, top_logprobs=3)
        gen = [e["id"] for e in token_logprobs(resp)]
        (c,) = gather(engine, [greedy(text, max_tokens=16)])
        assert c.text == resp["choices"][0]["message"]["content"] and c.completion_tokens == len(gen)
        with torch.inference_mode():   # teacher-forced on llama.cpp's own continuation
            logp = torch.log_softmax(lm(torch.tensor([ids + gen])).logits[0, len(ids) - 1:-1].float(), -1)
        for step, t in enumerate(gen):
            best = int(logp[step].argmax())
            assert float(logp[step, best] - logp[step, t]) < 0.5, (text, step, t, best)
            exact += best == t
            total += 1
        first = token_logprobs(resp)[0]["top_logprobs"]
        assert all(abs(e["logprob"] - float(logp[0, e["id"]])) < 0.3 for e in first), (text, first)
    assert exact / total >= 0.9, f"only {exact}/{total} greedy tokens are transformers' argmax"


@pytest.mark.slow
def test_sampled_first_tokens_follow_the_reference_distribution(engine):
    """400 seeded samples through generate() against the reference distribution (chi-square)."""
    from scipy.stats import chisquare

    t, p, n = 0.8, 0.9, 400
    lp = full_logprobs(engine, COLOUR)
    want = reference(lp, t, p)
    piece = {i: engine.detokenize([i]).strip() for i in want}
    outs = gather(engine, [req(COLOUR, seed=s, temperature=t, top_p=p, max_tokens=1) for s in range(n)])
    seen = Counter(c.text.strip() for c in outs)
    expect: Counter = Counter()
    for i, q in want.items():
        expect[piece[i]] += q * n
    assert set(seen) <= set(expect), set(seen) - set(expect)   # nothing outside the top-p set is ever drawn
    big = [k for k in expect if expect[k] >= 5]
    obs = [seen[k] for k in big] + [n - sum(seen[k] for k in big)]
    exp = [expect[k] for k in big] + [n - sum(expect[k] for k in big)]
    assert chisquare(obs, exp).pvalue > 1e-4, list(zip(big + ["rest"], obs, np.round(exp, 1)))


# -- the openai engine against llama.cpp's OpenAI-compatible server ----------------------------------------
def test_openai_engine_against_the_llama_cpp_server(engine, monkeypatch):
    from rephrase.engines.openai_engine import OpenAIEngine

    monkeypatch.setenv("K2FORGE_TEST_LLAMACPP_KEY", engine.api_key)
    oai = OpenAIEngine(engine.base_url, api_key_env="K2FORGE_TEST_LLAMACPP_KEY", max_retries=0, timeout_s=60)
    reqs = [greedy(SEA, max_tokens=20), greedy("What is 2+2?", max_tokens=64), greedy(SEA, max_tokens=40, stop=[","])]

    async def go():
        try:
            return await oai.generate_many(reqs)
        finally:
            await oai.aclose()
    got, want = asyncio.run(go()), gather(engine, reqs)
    assert oai.model == "SmolLM2-135M-Instruct.Q4_1"          # discovered from /v1/models
    for g, w in zip(got, want):
        assert (g.text, g.finish_reason, g.prompt_tokens, g.completion_tokens) == \
               (w.text, w.finish_reason, w.prompt_tokens, w.completion_tokens)
    assert [g.finish_reason for g in got] == ["length", "stop", "stop"]

    monkeypatch.setenv("K2FORGE_TEST_LLAMACPP_KEY", "wrong-key")
    bad = OpenAIEngine(engine.base_url, api_key_env="K2FORGE_TEST_LLAMACPP_KEY", max_retries=0, timeout_s=30)
    with pytest.raises(EngineError, match="401"):
        asyncio.run(bad.generate(greedy(SEA, max_tokens=2)))
