"""The chunk-wise autoregressive loop with the real local engine (SmolLM2-135M) and the real verifier.

Fault injectors (named so) wrap the real engine to raise, stall or shrink its context; everything else is real.
"""
import asyncio

import pytest

from rephrase.engines import EngineError, engine_spec, make_engine
from rephrase.generate import GenerationSpec, Rewriter, VerifyBatcher, request_seed, tail_by_tokens
from rephrase.prompts import RephraseTask
from rephrase.styles import StyleBook
from rephrase.verify import Verifier, VerifierSpec

DOCS = [
    {"id": "nile", "domain": "knowledge",
     "text": "The Nile is about 6,650 km long.\n\nThe Aswan High Dam on the Nile was completed in 1970."},
    {"id": "moon", "domain": "knowledge", "text": "The Moon is 384,400 km from Earth on average."},
]


@pytest.fixture(scope="module")
def engine():
    # One torch thread: on a shared 2-core box two OpenMP threads spin against each other (10x slower).
    eng = make_engine(engine_spec(batch_size=4, max_concurrency=4, threads=1))
    yield eng
    asyncio.run(eng.aclose())


@pytest.fixture(scope="module")
def verifier():
    return Verifier(VerifierSpec())


def task():
    return RephraseTask(StyleBook.load().select(["expert_notes", "encyclopedia"], ["neutral"]))


def cfg(**kw):
    base = dict(seed=3, attempts=1, chunk_target_tokens=16, chunk_max_tokens=24,
                context_tail_tokens=24, max_new_tokens=40, concurrency=4)
    return GenerationSpec(**{**base, **kw})


class FaultInjectingEngine:
    """Wraps the real engine; injects a fault for selected documents (by request id prefix)."""

    def __init__(self, inner, *, raise_for=(), stall_for=(), context_length=None):
        self.inner, self.raise_for, self.stall_for = inner, raise_for, stall_for
        self.name, self.model, self.max_concurrency = inner.name, inner.model, inner.max_concurrency
        self.context_length = context_length or inner.context_length

    async def generate(self, req):
        doc = req.request_id.split("/")[0]
        if doc in self.raise_for:
            raise EngineError("injected: backend unavailable after retries")
        if doc in self.stall_for:
            await asyncio.sleep(30)
        return await self.inner.generate(req)

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def prompt_tokens(self, messages):
        return self.inner.prompt_tokens(messages)


def test_request_seed_and_tail():
    assert request_seed(1, "d", 0, 2, 0) == request_seed(1, "d", 0, 2, 0)
    assert len({request_seed(1, "d", 0, 2, a) for a in range(5)}) == 5
    words = " ".join(f"w{i}" for i in range(100))
    tail = tail_by_tokens(words, 10, lambda t: len(t.split()))
    assert tail == " ".join(f"w{i}" for i in range(90, 100))
    assert tail_by_tokens("short text", 10, lambda t: len(t.split())) == "short text"
    assert tail_by_tokens("anything", 0, len) == ""


def test_real_generation_chunkwise_with_context(engine, verifier):
    """Two documents, concurrently; chunk 1 of the Nile sees the tail of chunk 0's rewrite as context."""
    sent = []
    permissive = Verifier(VerifierSpec(checks=[]))   # real verifier, no checks: isolates the loop's mechanics
    # seed 3 at temperature 0.3 gives a Nile rewrite that ends within 64 tokens on both chunks (deterministic:
    # every request's sampling stream depends only on its seed).
    rw = Rewriter(task(), engine, permissive, cfg(max_new_tokens=64, attempts=2, temperature=0.3),
                  on_request=sent.append)
    results = asyncio.run(rw.rewrite_all(DOCS))
    assert [r.doc["id"] for r in results] == ["nile", "moon"]
    nile = results[0]
    assert nile.n_chunks == 2 and nile.completion_tokens > 0 and nile.prompt_tokens > 0
    for r in results:
        assert r.status in ("accepted", "rejected")
        assert r.status == "accepted" or r.reasons, "a rejection always carries reasons"
    assert nile.status == "accepted", nile.reasons
    first = nile.chunks[0].rewrite
    second = [q for q in sent if q.request_id.startswith("nile/0/1/")][0].messages[-1]["content"]
    assert first.split()[-1] in second, "chunk 1 is conditioned on the rewrite of chunk 0"
    assert "6,650" not in second.split("Text to rewrite:")[1], "chunk 1's source is only the second paragraph"
    assert nile.text == first + "\n\n" + nile.chunks[1].rewrite, "stitched in order with the paragraph break"
    # Seeds depend only on the position in the run (document, variant, chunk, attempt), never on timing.
    for q in sent:
        d, v, c, a = q.request_id.split("/")
        assert q.params.seed == request_seed(3, d, int(v), int(c), int(a))
    # Priority: chunks still to go, negated, so the longest remaining chains are served first.
    assert {q.request_id.rsplit("/", 1)[0]: q.priority for q in sent if q.request_id.startswith("nile/0/")} == \
        {"nile/0/0": -2, "nile/0/1": -1}


def test_real_verifier_verdicts_flow_into_results(engine, verifier):
    res = asyncio.run(Rewriter(task(), engine, verifier, cfg(attempts=2)).rewrite_all(DOCS[1:]))[0]
    assert res.chunks and res.chunks[0].attempts in (1, 2)
    if res.status == "accepted":
        assert res.chunks[0].scores and "numbers" in res.chunks[0].scores
    else:
        assert all(r.startswith("chunk 0: ") for r in res.reasons)
        assert len(res.failed_attempt_reasons) >= res.chunks[0].attempts


def test_per_document_errors_are_recorded_and_the_run_continues(engine, verifier):
    docs = [{"id": "empty", "domain": "knowledge", "text": "   "},
            {"id": "down", "domain": "knowledge", "text": "Paris is the capital of France."},
            {"id": "slow", "domain": "knowledge", "text": "Rome is the capital of Italy."}]
    faulty = FaultInjectingEngine(engine, raise_for=("down",), stall_for=("slow",))
    results = asyncio.run(Rewriter(task(), faulty, verifier, cfg(request_timeout_s=0.5)).rewrite_all(docs))
    by_id = {r.doc["id"]: r for r in results}
    assert by_id["empty"].status == "error" and by_id["empty"].reasons[0].startswith("empty_text")
    assert by_id["down"].status == "error" and "engine_error" in by_id["down"].reasons[0]
    assert "injected" in by_id["down"].reasons[0]
    assert by_id["slow"].status == "error" and by_id["slow"].reasons[0].startswith("timeout")


def test_prompt_beyond_context_is_an_error_before_generation(engine, verifier):
    tiny = FaultInjectingEngine(engine, context_length=60)
    res = asyncio.run(Rewriter(task(), tiny, verifier, cfg()).rewrite_all(DOCS[1:]))[0]
    assert res.status == "error" and res.reasons[0].startswith("prompt_too_long")
    assert res.completion_tokens == 0 and res.failed_chunk == 0


def test_verify_batcher_coalesces_concurrent_requests(verifier):
    class CountingVerifier:
        """The real verifier, counting its batch calls."""
        def __init__(self):
            self.batches = []

        async def averify_batch(self, pairs):
            self.batches.append(len(pairs))
            return await verifier.averify_batch(pairs)

    counting = CountingVerifier()
    batcher = VerifyBatcher(counting)
    pairs = [(f"The value is {i}.", f"The value equals {i}.") for i in range(6)]

    async def go():
        return await asyncio.gather(*(batcher.verify(s, r) for s, r in pairs))

    verdicts = asyncio.run(go())
    assert len(verdicts) == 6 and counting.batches == [6]
    assert all(_consistent(v) for v in verdicts)


def test_a_failing_pair_fails_only_its_own_variant(verifier):
    """The real verifier refuses an empty source; the other pairs of the same batch still get their verdicts."""
    batcher = VerifyBatcher(verifier)
    pairs = [("The value is 1.", "The value equals 1."), ("", "Something."), ("The value is 2.", "It is 2.")]

    async def go():
        return await asyncio.gather(*(batcher.verify(s, r) for s, r in pairs), return_exceptions=True)

    good1, bad, good2 = asyncio.run(go())
    assert isinstance(bad, ValueError) and "empty" in str(bad)
    assert _consistent(good1) and _consistent(good2)


def _consistent(verdict) -> bool:
    return next(c for c in verdict.checks if c.name == "consistency").passed
