"""Chunk-wise autoregressive rewriting (Kimi K2 section 2.2), scheduled so the engine stays saturated.

For one (document, variant): chunk i is rewritten from the original chunk i plus the tail of the rewrite so far
(bounded by tokens) as context, so style and coherence carry over; each rewritten chunk is verified against its
source before the next one starts; a failing chunk is resampled with a new seed up to `attempts` times; if it
still fails, the whole variant is rejected with its reasons (nothing is silently dropped). Accepted chunks are
stitched in order with the original separators.

Across documents and variants everything runs concurrently: one asyncio task per (document, variant), at most
`concurrency` of them in flight, longest documents first (so the tail of a run is not one long document alone).
Verification runs in a worker thread through `VerifyBatcher`, which coalesces the chunks of all in-flight
variants into one `averify_batch` call, so embeddings are batched while the engine keeps generating.

The loop's knobs are one `GenerationSpec`; the job specs inherit it, so a `Rewriter` takes a job's spec as it is.
"""
from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, get_args

from pydantic import Field, model_validator

from corpus.spec import Spec
from rephrase.chunking import Chunk, chunk_text, stitch
from rephrase.engines.base import ChatRequest, Completion, Engine, EngineError, SamplingParams
from rephrase.prompts import Task
from rephrase.styles import Variant
from rephrase.verify.base import CheckResult, Verdict

ChunkFailurePolicy = Literal["reject_variant", "keep_prefix", "keep_source_chunk"]
POLICIES: tuple[str, ...] = get_args(ChunkFailurePolicy)


class GenerationSpec(Spec):
    """The loop's knobs. Job specs inherit them (rephrase.spec.RewriteSpecBase), so the Rewriter takes a job's
    spec as it is; `variants_per_doc()` says how many variants of a document to write (a job's own rule)."""
    seed: int = Field(0, description="seed of variant choice and sampling (same seed -> same output)")
    attempts: int = Field(3, ge=1, description="samples per chunk before the chunk counts as failed")
    on_chunk_failure: ChunkFailurePolicy = Field(
        "reject_variant", description="yield policy for a chunk that fails verification (or is truncated or "
        "empty) on every attempt: reject_variant = reject the whole variant; keep_prefix = keep the verified "
        "chunks before it as a shorter document (meta.policy, meta.failed_chunk); keep_source_chunk = splice "
        "the source chunk in and go on (meta.source_chunks); engine errors always reject")
    chunk_target_tokens: int = Field(256, ge=8, description="target chunk length in engine tokens")
    chunk_max_tokens: int = Field(384, ge=8, description="hard upper bound of a chunk in engine tokens")
    context_tail_tokens: int = Field(128, ge=0, description="tokens of the rewrite so far given as context")
    max_new_tokens: int = Field(512, ge=1, description="generation limit per chunk")
    temperature: float = Field(0.7, ge=0, description="sampling temperature (0 = greedy)")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling mass")
    concurrency: int = Field(64, ge=1, description="(document, variant) rewrites in flight per worker; keep it "
                                                   "several times the engine's batch, or batches run part-empty "
                                                   "while variants wait for verification")
    request_timeout_s: float | None = Field(None, gt=0, description="per-request timeout (none = engine's own)")

    @model_validator(mode="after")
    def _chunk_bounds(self):
        if self.chunk_max_tokens < self.chunk_target_tokens:
            raise ValueError(f"chunk_max_tokens ({self.chunk_max_tokens}) must be >= chunk_target_tokens "
                             f"({self.chunk_target_tokens})")
        return self

    def variants_per_doc(self) -> int:
        return 1


@dataclass
class ChunkOutcome:
    index: int
    source: str
    rewrite: str = ""
    attempts: int = 0
    accepted: bool = False
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    spliced: bool = False          # keep_source_chunk: the source text stands in the output for this chunk


@dataclass
class VariantResult:
    """The outcome of one (document, variant). status: accepted | rejected (a chunk failed) | error.

    An accepted result shaped by the yield policy says so: `policy` is "keep_prefix" (then `prefix_chunks`
    leading chunks are kept and `failed_chunk` is the first one that failed) or "keep_source_chunk" (then
    `source_chunks` are the indices, and `source_spans` the character spans of `text`, that are source text);
    `reasons` then holds the failed chunks' reasons. Token counts are the engine's: `source_tokens` of the
    document's chunks, `synthetic_tokens` of the verified rewritten chunks in `text` (spliced source excluded).
    """
    doc: dict[str, Any]
    variant: Variant | None
    prompt_sha: str = ""
    status: str = "error"
    text: str = ""
    reasons: list[str] = field(default_factory=list)
    chunks: list[ChunkOutcome] = field(default_factory=list)
    n_chunks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failed_attempt_reasons: list[str] = field(default_factory=list)
    failed_chunk: int | None = None
    task: str = ""
    policy: str = ""
    prefix_chunks: int | None = None
    source_chunks: list[int] = field(default_factory=list)
    source_spans: list[tuple[int, int]] = field(default_factory=list)
    source_tokens: int = 0
    synthetic_tokens: int = 0
    spliced_tokens: int = 0


def request_seed(seed: int, doc_id: str, variant: int, chunk: int, attempt: int) -> int:
    """A 31-bit seed that depends only on where the request is in the run, never on timing."""
    key = f"{seed}\x00{doc_id}\x00{variant}\x00{chunk}\x00{attempt}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big") >> 1


def tail_by_tokens(text: str, max_tokens: int, count: Callable[[str], int]) -> str:
    """The longest suffix of `text` within `max_tokens` tokens, starting at a word boundary."""
    if max_tokens <= 0 or not text:
        return ""
    if count(text) <= max_tokens:
        return text
    lo, hi = 0, len(text)              # smallest start with count(text[start:]) <= max_tokens
    while lo < hi:
        mid = (lo + hi) // 2
        if count(text[mid:]) <= max_tokens:
            hi = mid
        else:
            lo = mid + 1
    space = text.find(" ", lo)
    return text[space + 1:] if 0 <= space < len(text) - 1 else text[lo:]


class VerifyBatcher:
    """Coalesces verification requests from concurrent variants into `averify_batch` calls (one at a time)."""

    def __init__(self, verifier: Any, max_batch: int = 64):
        self.verifier, self.max_batch = verifier, max_batch
        self._pending: list[tuple[str, str, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None
        self.calls = 0

    async def verify(self, source: str, rewrite: str) -> Any:
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((source, rewrite, fut))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        await asyncio.sleep(0)         # let every coroutine that is ready enqueue first
        while self._pending:
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            self.calls += 1
            try:
                verdicts = await self.verifier.averify_batch([(s, r) for s, r, _ in batch])
            except Exception:           # noqa: BLE001 - find the pair(s) at fault: the others must not fail
                await self._one_by_one(batch)
                continue
            for (_, _, fut), v in zip(batch, verdicts):
                if not fut.done():
                    fut.set_result(v)

    async def _one_by_one(self, batch: list[tuple[str, str, asyncio.Future]]) -> None:
        """Verify each pair alone, so a failure lands only on its own variant (batching must not change results)."""
        for s, r, fut in batch:
            try:
                v = (await self.verifier.averify_batch([(s, r)]))[0]
            except Exception as e:      # noqa: BLE001 - this pair's own failure
                if not fut.done():
                    fut.set_exception(e)
                continue
            if not fut.done():
                fut.set_result(v)


class Rewriter:
    """Runs the loop for one task with one engine and one verifier (a stage owns one per worker)."""

    def __init__(self, task: Task, engine: Engine, verifier: Any, cfg: GenerationSpec,
                 on_request: Callable[[ChatRequest], None] | None = None):
        """`cfg`: the job's spec (or a bare GenerationSpec); `on_request` is called with every ChatRequest sent
        (the benchmark replays them against the bare engine)."""
        self.task, self.engine, self.cfg, self.on_request = task, engine, cfg, on_request
        self.batcher = VerifyBatcher(verifier)

    def chunks(self, text: str) -> list[Chunk]:
        return chunk_text(text, self.engine.count_tokens, self.cfg.chunk_target_tokens, self.cfg.chunk_max_tokens)

    async def rewrite_all(self, docs: list[dict[str, Any]]) -> list[VariantResult]:
        """Every variant of every document; results in (document order, variant order)."""
        jobs: list[tuple[int, int, dict, Variant | None, list[Chunk]]] = []
        results: dict[tuple[int, int], VariantResult] = {}
        for d, doc in enumerate(docs):
            if not (doc.get("text") or "").strip():
                results[(d, 0)] = VariantResult(doc, None, task=self.task.name,
                                                reasons=["empty_text: the document has no text"])
                continue
            chunks = self.chunks(doc["text"])
            for v in self.task.variants(doc, self.cfg.seed, self.cfg.variants_per_doc()):
                jobs.append((d, v.index, doc, v, chunks))
        sem = asyncio.Semaphore(max(1, self.cfg.concurrency))

        async def run(job) -> None:
            d, vi, doc, variant, chunks = job
            async with sem:
                results[(d, vi)] = await self.rewrite_document(doc, variant, chunks)

        # Longest first: the run's tail then holds short documents, so the engine stays busy to the end.
        order = sorted(jobs, key=lambda j: (-len(j[4]), j[0], j[1]))
        await asyncio.gather(*(run(j) for j in order))
        return [results[k] for k in sorted(results)]

    async def rewrite_document(self, doc: dict[str, Any], variant: Variant,
                               chunks: list[Chunk] | None = None) -> VariantResult:
        """Rewrite one document in one variant, chunk by chunk, each chunk conditioned on the rewrite so far."""
        chunks = self.chunks(doc["text"]) if chunks is None else chunks
        res = VariantResult(doc, variant, self.task.prompt_sha(variant), n_chunks=len(chunks), task=self.task.name,
                            source_tokens=sum(self.engine.count_tokens(c.text) for c in chunks))
        done: list[str] = []           # the output's chunks so far: verified rewrites (or spliced source)
        for chunk in chunks:
            context = tail_by_tokens(stitch(done, chunks[:len(done)]) if done else "",
                                     self.cfg.context_tail_tokens, self.engine.count_tokens)
            try:
                out = await self._rewrite_chunk(res, variant, chunk, context, len(chunks))
            except _DocError as e:
                res.status, res.reasons, res.failed_chunk = "error", [str(e)], chunk.index
                return res
            res.chunks.append(out)
            if out.accepted:
                done.append(out.rewrite)
                continue
            policy = self._policy_for(out)
            if policy == "keep_source_chunk":
                out.spliced = True
                done.append(chunk.text)
                continue
            if policy == "keep_prefix" and done:
                return self._accept(res, chunks, done, failed=out)
            return _reject(res, [out])
        if not any(c.accepted for c in res.chunks):
            # keep_source_chunk with nothing verified: the "rewrite" would be the source itself
            return _reject(res, res.chunks)
        return self._accept(res, chunks, done)

    def _policy_for(self, out: ChunkOutcome) -> str:
        """The yield policy that applies to this failed chunk: the spec's, unless the failure is not the rewrite's."""
        policy = self.cfg.on_chunk_failure
        if any(reason_key(r) == "engine_error" for r in out.reasons):
            return "reject_variant"    # the engine failed, not the rewrite: nothing to keep or splice around
        if policy == "keep_source_chunk" and not self.task.splice_source:
            return "reject_variant"    # e.g. a translation: the source chunk is in another language
        return policy

    def _accept(self, res: VariantResult, chunks: list[Chunk], done: list[str],
                failed: ChunkOutcome | None = None) -> VariantResult:
        """Stitch the kept chunks, count synthetic vs spliced tokens, record the policy's provenance."""
        count = self.engine.count_tokens
        res.status = "accepted"
        res.text, spans = stitch_spans(done, chunks[:len(done)])
        for c, part, span in zip(res.chunks, done, spans):
            if c.spliced:
                res.source_chunks.append(c.index)
                res.source_spans.append(span)
                res.spliced_tokens += count(part.strip())
            else:
                res.synthetic_tokens += count(part.strip())
        if failed is not None:
            res.policy, res.prefix_chunks, res.failed_chunk = "keep_prefix", len(done), failed.index
            res.reasons = [f"chunk {failed.index}: {r}" for r in failed.reasons]
        elif res.source_chunks:
            res.policy = "keep_source_chunk"
            res.reasons = [f"chunk {c.index}: {r}" for c in res.chunks if c.spliced for r in c.reasons]
        return res

    async def _rewrite_chunk(self, res: VariantResult, variant: Variant, chunk: Chunk, context: str,
                             total: int) -> ChunkOutcome:
        out = ChunkOutcome(chunk.index, chunk.text)
        messages = self.task.messages(variant, chunk.text, context, chunk.index, total)
        need = self.engine.prompt_tokens(messages) + self.cfg.max_new_tokens
        if need > self.engine.context_length:
            raise _DocError(f"prompt_too_long: chunk {chunk.index} needs {need} tokens (prompt + max_new_tokens) "
                            f"but the engine's context is {self.engine.context_length}")
        for attempt in range(self.cfg.attempts):
            out.attempts = attempt + 1
            comp = await self._generate(res, variant, chunk, messages, attempt)
            res.prompt_tokens += comp.prompt_tokens
            res.completion_tokens += comp.completion_tokens
            rewrite, failure = self._screen(comp)
            if failure is None:
                try:
                    verdict = await self._verify(chunk.text, rewrite)
                except Exception as e:   # noqa: BLE001 - a verifier crash fails this document, not the run
                    raise _DocError(f"verify_error: chunk {chunk.index}: {e}") from e
                out.scores = dict(verdict.scores)
                failure = None if verdict.accepted else list(verdict.reasons)
            if failure is None:
                out.rewrite, out.accepted, out.reasons = rewrite, True, []
                return out
            out.rewrite, out.reasons = rewrite, failure if isinstance(failure, list) else [failure]
            res.failed_attempt_reasons.extend(out.reasons)
        return out

    async def _generate(self, res: VariantResult, variant: Variant, chunk: Chunk,
                        messages: list[dict[str, str]], attempt: int) -> Completion:
        seed = request_seed(self.cfg.seed, res.doc["id"], variant.index, chunk.index, attempt)
        params = SamplingParams(temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                max_tokens=self.cfg.max_new_tokens, seed=seed)
        # Chunks still to go (this one included) as priority: longest remaining chain first keeps batches full
        # to the end of a run (the last variants are not left to finish their chains in part-empty batches).
        req = ChatRequest(messages, params, request_id=f"{res.doc['id']}/{variant.index}/{chunk.index}/{attempt}",
                          priority=chunk.index - res.n_chunks)
        if self.on_request is not None:
            self.on_request(req)
        try:
            if self.cfg.request_timeout_s:
                return await asyncio.wait_for(self.engine.generate(req), self.cfg.request_timeout_s)
            return await self.engine.generate(req)
        except asyncio.TimeoutError:
            raise _DocError(f"timeout: chunk {chunk.index} took longer than {self.cfg.request_timeout_s} s") from None
        except EngineError as e:
            raise _DocError(f"engine_error: chunk {chunk.index}: {e}") from None

    def _screen(self, comp: Completion) -> tuple[str, str | None]:
        """(cleaned rewrite, failure reason or None) for problems visible without the verifier."""
        if comp.finish_reason == "error":
            return "", f"engine_error: {comp.error or 'the engine reported an error'}"
        text = self.task.clean(comp.text)
        if comp.finish_reason == "length":
            return text, f"truncated: the completion hit max_new_tokens={self.cfg.max_new_tokens}"
        if not text:
            return "", "empty_completion: the model returned no text"
        return text, None

    async def _verify(self, source: str, rewrite: str) -> Any:
        verdict = await self.batcher.verify(source, rewrite)
        if not self.task.checks:
            return verdict
        extra = [CheckResult(*check(source, rewrite)) for check in self.task.checks]
        checks = list(verdict.checks) + extra
        return Verdict(accepted=verdict.accepted and all(c.passed for c in extra), checks=checks)


def _reject(res: VariantResult, failed: list[ChunkOutcome]) -> VariantResult:
    """Reject the variant with the reasons of its failed chunks (the first of them is `failed_chunk`)."""
    failed = [c for c in failed if not c.accepted]
    res.status, res.failed_chunk = "rejected", failed[0].index
    res.reasons = [f"chunk {c.index}: {r}" for c in failed for r in c.reasons]
    return res


def stitch_spans(parts: list[str], chunks: list[Chunk]) -> tuple[str, list[tuple[int, int]]]:
    """`stitch(parts, chunks)` and the (start, end) character span of each part in the stitched text."""
    spans, pos = [], 0
    for i, (p, c) in enumerate(zip(parts, chunks)):
        n = len(p.strip())
        spans.append((pos, pos + n))
        pos += n + (len(c.sep or " ") if i < len(chunks) - 1 else 0)
    return stitch(parts, chunks), spans


class _DocError(Exception):
    """A per-document failure (timeout, engine error, prompt beyond context): recorded, the run continues."""


def reason_key(reason: str) -> str:
    """The category of a reason string ("chunk 3: numbers: 2 missing" -> "numbers")."""
    if reason.startswith("chunk ") and ": " in reason:
        reason = reason.split(": ", 1)[1]
    return reason.split(":", 1)[0].strip() or "unknown"

