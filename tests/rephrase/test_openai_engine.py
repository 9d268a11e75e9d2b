"""OpenAIEngine against a real loopback HTTP server that injects faults (tests/rephrase/faulty_server.py)."""
from __future__ import annotations

import asyncio
import time

import pytest

from rephrase.engines.base import ChatRequest, EngineError, SamplingParams
from rephrase.engines.openai_engine import OpenAIEngine
from rephrase.engines.ratelimit import TokenBucket, backoff_delay, retry_after_seconds
from tests.rephrase.faulty_server import MODEL_ID, FaultyServer

pytestmark = pytest.mark.timeout(60)


def req(text: str = "the cat sat on the mat", max_tokens: int = 50, rid: str = "") -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], SamplingParams(max_tokens=max_tokens, seed=3), rid)


def engine(srv: FaultyServer, **kw) -> OpenAIEngine:
    kw.setdefault("backoff_base_s", 0.01)
    kw.setdefault("backoff_cap_s", 0.05)
    kw.setdefault("timeout_s", 5.0)
    return OpenAIEngine(srv.base_url, **kw)


async def run(eng: OpenAIEngine, *reqs: ChatRequest):
    try:
        return await eng.generate_many(reqs) if len(reqs) > 1 else await eng.generate(reqs[0])
    finally:
        await eng.aclose()


def test_plain_completion_discovers_model_and_sends_params():
    with FaultyServer() as srv:
        out = asyncio.run(run(engine(srv), req("hello there")))
    assert out.text == "echo: hello there" and out.finish_reason == "stop" and out.error is None
    assert (out.prompt_tokens, out.completion_tokens) == (2, 3)  # the server's usage, not a local guess
    body = srv.bodies[0]
    assert body["model"] == MODEL_ID and body["max_tokens"] == 50 and body["seed"] == 3


def test_retries_429_and_5xx_then_succeeds_and_counts_them():
    with FaultyServer(script=["429", "500", "503", "ok"]) as srv:
        eng = engine(srv, max_retries=3, model=MODEL_ID)  # named, so no /models call adds to the attempts
        out = asyncio.run(run(eng, req()))
    assert out.text.startswith("echo:")
    assert srv.actions() == ["429", "500", "503", "ok"]
    assert eng.stats["retries"] == 3 and eng.stats["attempts"] == 4 and eng.stats["failures"] == 0
    assert eng.stats["retry_reasons"] == {"HTTP 429": 1, "HTTP 500": 1, "HTTP 503": 1}


def test_retry_after_is_honoured():
    with FaultyServer(script=["429", "ok"], retry_after=0.4) as srv:
        eng = engine(srv, max_retries=2, backoff_base_s=0.001, backoff_cap_s=0.001)
        asyncio.run(run(eng, req()))
    (t429, _), (tok, _) = srv.log
    assert tok - t429 >= 0.38, "the retry came before the server's Retry-After"
    assert eng.stats["waited_s"] == pytest.approx(0.4)


def test_exhausted_retries_raise_engine_error_with_last_status():
    with FaultyServer(script=["500", "429", "503"]) as srv:
        eng = engine(srv, max_retries=2)
        with pytest.raises(EngineError, match=r"after 3 attempts; last: HTTP 503") as ei:
            asyncio.run(run(eng, req()))
    assert ei.value.status == 503 and eng.stats["failures"] == 1 and len(srv.log) == 3


def test_client_errors_are_not_retried():
    with FaultyServer(script=["400", "ok"]) as srv:
        eng = engine(srv, max_retries=5)
        with pytest.raises(EngineError, match="HTTP 400") as ei:
            asyncio.run(run(eng, req()))
    assert ei.value.status == 400 and srv.actions() == ["400"] and eng.stats["retries"] == 0


def test_timeout_is_honoured_and_retried():
    with FaultyServer(script=["hang", "ok"], hang_s=10) as srv:
        eng = engine(srv, timeout_s=0.5, max_retries=1)
        t0 = time.monotonic()
        out = asyncio.run(run(eng, req()))
        elapsed = time.monotonic() - t0
    assert out.text.startswith("echo:") and srv.actions() == ["hang", "ok"]
    assert 0.45 <= elapsed < 3.0, f"a 0.5 s timeout took {elapsed:.2f} s"
    assert eng.stats["retry_reasons"] == {"timeout after 0.5s": 1}


def test_timeout_exhausted_raises():
    with FaultyServer(script=["hang", "hang"], hang_s=10) as srv:
        with pytest.raises(EngineError, match="last: timeout after 0.3s") as ei:
            asyncio.run(run(engine(srv, timeout_s=0.3, max_retries=1), req()))
    assert ei.value.status is None


def test_connection_refused_is_retried_then_raises():
    with FaultyServer() as srv:
        url = srv.base_url
    eng = OpenAIEngine(url, model="m", max_retries=2, backoff_base_s=0.01, backoff_cap_s=0.02, timeout_s=2)
    with pytest.raises(EngineError, match="after 3 attempts; last: connection error"):
        asyncio.run(run(eng, req()))
    assert eng.stats["retries"] == 2


def test_empty_and_length_are_returned_not_raised():
    with FaultyServer(script=["empty", "length"]) as srv:
        eng = engine(srv)
        a = asyncio.run(run(eng, req("one two three four")))
        b = asyncio.run(run(engine(srv), req("one two three four")))
    assert (a.text, a.finish_reason) == ("", "stop")
    assert b.finish_reason == "length" and b.text


def test_max_tokens_cut_reports_length():
    with FaultyServer() as srv:
        out = asyncio.run(run(engine(srv), req("a b c d e f", max_tokens=3)))
    assert out.finish_reason == "length" and out.text == "echo: a b"


def test_concurrency_limit_is_respected():
    with FaultyServer(delay_s=0.15) as srv:
        eng = engine(srv, max_concurrency=3)
        outs = asyncio.run(run(eng, *[req(f"doc {i}", rid=str(i)) for i in range(12)]))
    assert [o.text for o in outs] == [f"echo: doc {i}" for i in range(12)]  # order kept
    assert srv.max_in_flight == 3


def test_concurrency_limit_holds_for_direct_generate_calls():
    """The engine's own semaphore bounds in-flight requests even when callers bypass generate_many."""
    async def many(eng):
        try:
            return await asyncio.gather(*(eng.generate(req(str(i))) for i in range(10)))
        finally:
            await eng.aclose()

    with FaultyServer(delay_s=0.15) as srv:
        asyncio.run(many(engine(srv, max_concurrency=2)))
    assert srv.max_in_flight == 2


def test_requests_per_second_limit_measured_at_the_server():
    rate, n = 20.0, 16
    with FaultyServer() as srv:
        asyncio.run(run(engine(srv, requests_per_second=rate, max_concurrency=8), *[req() for _ in range(n)]))
    times = sorted(t for t, _ in srv.log)
    measured = (n - 1) / (times[-1] - times[0])
    assert measured <= rate * 1.15, f"server saw {measured:.1f} req/s with a limit of {rate}"
    assert measured >= rate * 0.5, f"limiter far too slow: {measured:.1f} req/s"


def test_api_key_comes_from_the_named_env_var(monkeypatch):
    monkeypatch.setenv("K2F_TEST_KEY", "sk-test-123")
    with FaultyServer() as srv:
        eng = engine(srv, api_key_env="K2F_TEST_KEY")
        asyncio.run(run(eng, req()))
    assert srv.auth == ["Bearer sk-test-123"]
    public = {k: v for k, v in vars(eng).items() if k != "_client"}
    assert "sk-test-123" not in repr(public)  # only the client holds the key; stats and fields never do


def test_local_token_counting_uses_embedded_tokenizer():
    eng = OpenAIEngine("http://127.0.0.1:9/v1", model="m")
    n = eng.count_tokens("Hello world, this is a test.")
    assert 5 <= n <= 12 and eng.encode("Hello")
    assert eng.prompt_tokens([{"role": "user", "content": "hi"}]) > n // 2


# -- the pacing helpers, without the network ---------------------------------------------------------------
def test_backoff_is_full_jitter_and_capped():
    import random
    rng = random.Random(0)
    draws = [backoff_delay(a, 0.5, 4.0, rng) for a in range(8) for _ in range(50)]
    assert min(draws) >= 0 and max(draws) <= 4.0
    assert max(backoff_delay(0, 0.5, 4.0, rng) for _ in range(200)) <= 0.5


def test_retry_after_parsing():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert retry_after_seconds({"retry-after": "soon"}) is None and retry_after_seconds(None) is None


def test_token_bucket_paces_with_a_fake_clock():
    now = [0.0]

    async def fake_sleep(dt):
        now[0] += dt

    async def go():
        b = TokenBucket(4.0, clock=lambda: now[0], sleep=fake_sleep)
        for _ in range(9):
            await b.acquire()

    asyncio.run(go())
    assert now[0] == pytest.approx(2.0)  # 8 waits of 1/4 s after the first free token
    with pytest.raises(ValueError, match="requests_per_second"):
        TokenBucket(0)
