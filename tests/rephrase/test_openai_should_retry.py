"""OpenAIEngine honours the server's `x-should-retry` header, against a real loopback HTTP server that injects
faults and sets the header (tests/rephrase/faulty_server.py, a FAULT-INJECTING fake server)."""
from __future__ import annotations

import asyncio

import pytest

from rephrase.engines.base import ChatRequest, EngineError, SamplingParams
from rephrase.engines.openai_engine import OpenAIEngine, should_retry
from tests.rephrase.faulty_server import MODEL_ID, FaultyServer

pytestmark = pytest.mark.timeout(60)


def _generate(srv: FaultyServer, max_retries: int = 3) -> tuple[OpenAIEngine, object]:
    eng = OpenAIEngine(srv.base_url, MODEL_ID, max_retries=max_retries, backoff_base_s=0.01, backoff_cap_s=0.02,
                       timeout_s=5.0)

    async def go():
        try:
            return await eng.generate(ChatRequest([{"role": "user", "content": "hi"}], SamplingParams(max_tokens=8)))
        finally:
            await eng.aclose()
    try:
        return eng, asyncio.run(go())
    except EngineError as e:
        return eng, e


def test_should_retry_true_retries_a_status_that_is_otherwise_final():
    with FaultyServer(script=["400:retry", "409", "ok"]) as srv:
        eng, out = _generate(srv)
    assert srv.actions() == ["400:retry", "409", "ok"] and out.text == "echo: hi"
    assert eng.stats["retries"] == 2 and eng.stats["retry_reasons"] == {"HTTP 400": 1, "HTTP 409": 1}
    with FaultyServer(script=["400"]) as srv:          # without the header a 400 is final
        eng, err = _generate(srv)
    assert isinstance(err, EngineError) and err.status == 400 and srv.actions() == ["400"]


def test_should_retry_false_stops_at_once_even_on_5xx_and_429():
    for action in ("503:noretry", "429:noretry"):
        with FaultyServer(script=[action, "ok"]) as srv:
            eng, err = _generate(srv)
        assert isinstance(err, EngineError) and "rejected" in str(err), action
        assert srv.actions() == [action] and eng.stats["retries"] == 0 and eng.stats["failures"] == 1


def test_header_values_are_read_case_insensitively_and_anything_else_is_ignored():
    assert should_retry(400, {"x-should-retry": " TRUE "}) and not should_retry(503, {"x-should-retry": "False"})
    assert should_retry(503, {"x-should-retry": "maybe"}) and not should_retry(400, {})
    assert should_retry(429, None)
