"""The Verifier: runs the enabled checks on (source, rewrite) pairs, with all embeddings of a batch in one call.

For a batch it collects every text the enabled checks need (whole texts and sentences), encodes the unique ones
once, then hands each pair a CheckContext with its cosine, sentence similarity matrix and
best-match vectors. The optional LLM judge runs through an async Engine; `averify_batch` overlaps it (and the
CPU-bound checks, in a worker thread) with whatever else the event loop is doing, e.g. generation.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import numpy as np

import rephrase.verify.scaffold as scaffold
from rephrase.verify.base import CHECKS, CheckContext, CheckResult, Verdict
from rephrase.verify.spec import VerifierSpec
from rephrase.verify.text import merge_questions, split_sentences

if TYPE_CHECKING:
    from rephrase.engines.base import Engine


def _windows(emb: np.ndarray, sents: list[str]) -> np.ndarray:
    """Embeddings of adjacent-sentence pairs (a rewrite often merges two source sentences, or splits one).

    MiniLM mean-pools its token states, so the embedding of "A B" is close to the length-weighted mean of the
    embeddings of A and B; computing it that way instead of encoding the concatenation halves the texts to encode.
    """
    if len(sents) < 2:
        return np.zeros((0, emb.shape[1]), dtype=emb.dtype)
    w = np.array([max(1, len(s.split())) for s in sents], dtype=emb.dtype)[:, None]
    win = emb[:-1] * w[:-1] + emb[1:] * w[1:]
    return win / np.linalg.norm(win, axis=1, keepdims=True).clip(1e-12)


def _pooled(emb: np.ndarray, sents: list[str]) -> np.ndarray:
    """The normalised length-weighted mean of sentence embeddings: a whole text's embedding under mean pooling."""
    w = np.array([max(1, len(x.split())) for x in sents], dtype=emb.dtype)[:, None]
    v = (emb * w).sum(0)
    return v / max(float(np.linalg.norm(v)), 1e-12)


class _Plan:
    """Index bookkeeping for one pair inside the batch's flat list of texts to embed."""

    def __init__(self, texts: list[str], source: str, rewrite: str, need_doc: bool, need_sents: bool):
        src, rw = scaffold.strip(source), scaffold.strip(rewrite)
        # labels of both sides: a source table's column names are structure in the rewrite too
        self.src_clean, self.rw_clean, self.titles = src.text, rw.text, set(rw.titles)
        self.labels = rw.labels | src.labels
        self.src_sents = merge_questions(split_sentences(src.text)) or [src.text.strip() or source]
        self.rw_sents = merge_questions(split_sentences(rw.text)) or [rw.text.strip() or rewrite]
        # with sentence embeddings at hand, a text's embedding is their length-weighted mean (see _windows):
        # encoding the whole texts again would double the encoder's work for the same vector, near enough
        self.doc = self._add(texts, [source, rewrite]) if need_doc and not need_sents else None
        self.doc_from_sents = need_doc and need_sents
        if need_sents:
            self.src = self._add(texts, self.src_sents)
            self.rw = self._add(texts, self.rw_sents)
        else:
            self.src = None

    @staticmethod
    def _add(texts: list[str], items: list[str]) -> slice:
        start = len(texts)
        texts.extend(items)
        return slice(start, len(texts))

    def context(self, spec: VerifierSpec, emb: np.ndarray) -> CheckContext:
        ctx = CheckContext(spec, self.src_sents, self.rw_sents, self.src_clean, self.rw_clean, self.labels,
                           self.titles)
        if self.doc is not None:
            d = emb[self.doc]
            ctx.doc_cos = float(d[0] @ d[1])
        if self.src is not None:
            s, r = emb[self.src], emb[self.rw]
            if self.doc_from_sents:
                ctx.doc_cos = float(_pooled(s, self.src_sents) @ _pooled(r, self.rw_sents))
            ctx.sent_sim = s @ r.T                                        # (n_src, n_rw)
            ctx.src_best = (s @ np.concatenate([r, _windows(r, self.rw_sents)]).T).max(axis=1)
            ctx.rw_best = (r @ np.concatenate([s, _windows(s, self.src_sents)]).T).max(axis=1)
        return ctx


class Verifier:
    """Fidelity verifier. Build once per worker (it loads the embedding model on first use) and reuse."""

    def __init__(self, spec: VerifierSpec | None = None, judge_engine: "Engine | None" = None):
        self.spec = spec or VerifierSpec()
        self.checks = [CHECKS[name] for name in self.spec.checks]
        self._judge_engine = judge_engine
        self._judge = None

    def run_checks(self, pairs: list[tuple[str, str]]) -> list[list[CheckResult]]:
        """The enabled (synchronous) checks' results per pair, embeddings batched across all pairs."""
        return [r for r, _ in self.run_checks_with_contexts(pairs)]

    def run_checks_with_contexts(self, pairs: list[tuple[str, str]]) -> list[tuple[list[CheckResult], CheckContext]]:
        """Like run_checks, plus each pair's CheckContext (calibration reads the consistency features there)."""
        _validate_pairs(pairs)
        needs = set().union(*(c.needs for c in self.checks)) if self.checks else set()
        texts: list[str] = []
        plans = [_Plan(texts, s, r, "doc" in needs, "sentences" in needs) for s, r in pairs]
        emb = None
        if texts:
            from rephrase.verify.embed import encode
            emb = encode(texts, self.spec.embedding_model, self.spec.embed_batch_size)
        if any(c.name == "consistency" for c in self.checks):  # parse every sentence of the batch in one pipe
            from rephrase.verify.nlp import analyse
            analyse([s for p in plans for s in p.src_sents + p.rw_sents])
        out = []
        for (source, rewrite), plan in zip(pairs, plans):
            ctx = plan.context(self.spec, emb)
            out.append(([self._run_one(c, source, rewrite, ctx) for c in self.checks], ctx))
        return out

    @staticmethod
    def _run_one(check, source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
        try:
            return check.fn(source, rewrite, ctx)
        except Exception as e:  # name the check: a bare traceback from deep inside a heuristic is hard to place
            raise RuntimeError(f"fidelity check {check.name!r} failed on source {source[:60]!r}: {e}") from e

    def verify_batch(self, pairs: list[tuple[str, str]]) -> list[Verdict]:
        """Verdicts for `pairs` (synchronous). With the judge enabled this must not run inside an event loop."""
        results = self.run_checks(pairs)
        if self.spec.judge:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                judged = asyncio.run(self.judge().judge_many(pairs))
            else:
                raise RuntimeError("verify_batch with judge=true was called inside an event loop; "
                                   "await averify_batch instead") from None
            results = [r + [j] for r, j in zip(results, judged)]
        return [Verdict.of(r) for r in results]

    async def averify_batch(self, pairs: list[tuple[str, str]]) -> list[Verdict]:
        """Verdicts for `pairs`; the CPU checks run in a worker thread while judge requests are in flight."""
        checks = asyncio.to_thread(self.run_checks, pairs)
        if not self.spec.judge:
            return [Verdict.of(r) for r in await checks]
        results, judged = await asyncio.gather(checks, self.judge().judge_many(pairs))
        return [Verdict.of(r + [j]) for r, j in zip(results, judged)]

    def judge(self):
        """The LLM judge (built on first use; the engine from `judge_engine` or the spec's EngineSpec)."""
        if self._judge is None:
            from rephrase.verify.judge import Judge
            engine = self._judge_engine or _make_judge_engine(self.spec)
            self._judge_engine = engine
            self._judge = Judge(engine, self.spec.judge_max_tokens, self.spec.thresholds.min_judge_score)
        return self._judge


def _make_judge_engine(spec: VerifierSpec) -> "Engine":
    from rephrase.engines import engine_spec, make_engine
    return make_engine(spec.judge_engine or engine_spec())


def _validate_pairs(pairs: list[tuple[str, str]]) -> None:
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"pair {i}: expected (source, rewrite), got {type(pair).__name__}")
        for name, v in zip(("source", "rewrite"), pair):
            if not isinstance(v, str):
                raise ValueError(f"pair {i}: {name} must be a string, got {type(v).__name__}")
            if not v.strip():
                raise ValueError(f"pair {i}: {name} is empty")
