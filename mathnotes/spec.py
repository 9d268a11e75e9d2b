"""MathNotesSpec: the one definition of a mathnotes job (CLI flags or YAML, REST API, Ray runs).

Defaults follow SwallowMath (temperature 0.2, top-p 0.7). Two verifiers: `verifier` checks learning notes,
`translate_verifier` checks translations; each starts from math-aware check lists (mathnotes.checks) and is a
plain rephrase VerifierSpec, so checks and thresholds are configured the same way as for rephrase.
Cheap to import: pydantic, the engine/verifier specs and the (regex-only) math checks.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

import mathnotes.checks  # noqa: F401  (registers the math checks before VerifierSpec validates their names)
from corpus.spec import ExecutorSpec, Spec
from rephrase.engines import EngineSpec
from rephrase.verify import VerifierSpec

Domain = Literal["web", "code", "math", "knowledge"]

#: notes drop boilerplate and add steps, so sentence omission/addition and near-copy checks do not apply
NOTE_CHECKS = ["embedding", "length", "math_numbers", "math_formulas", "math_answer"]
#: MiniLM is English-only, so a cross-lingual cosine says little: translations are checked on their math
TRANSLATE_CHECKS = ["length", "math_numbers_exact", "math_formulas", "math_answer", "math_english"]


class MathNotesSpec(Spec):
    inputs: list[str] = Field(..., description="input document shards: directories, globs or parquet files")
    output: str = Field(..., description="output directory for synthetic shards, rejects, routing, stats, spec")
    format: Literal["note", "structured"] = Field("note", description="free learning note, or Task Description / "
                                                                      "Approach / Solution Steps / Final Answer")
    translate: bool = Field(True, description="translate non-English math documents into English (else skip them)")
    note_after_translate: bool = Field(True, description="rewrite accepted translations as learning notes too")
    keep_translation: bool = Field(True, description="also write accepted translations as rows (task translate)")
    engine: EngineSpec = Field(default_factory=EngineSpec, description="LLM engine")
    verifier: VerifierSpec = Field(default_factory=lambda: VerifierSpec(checks=list(NOTE_CHECKS)),
                                   description="verifier of learning notes")
    translate_verifier: VerifierSpec = Field(default_factory=lambda: VerifierSpec(checks=list(TRANSLATE_CHECKS)),
                                             description="verifier of translations")
    domains: list[Domain] = Field(["math"], description="documents of these domains go through")
    detect_math: bool = Field(False, description="also pick math out of `detect_domains` with the math detector")
    detect_domains: list[Domain] = Field(["web"], description="domains the math detector looks at")
    math_threshold: float = Field(0.4, ge=0, le=1, description="math detector score needed to route a document")
    seed: int = Field(0, description="sampling seed (same seed -> same output)")
    attempts: int = Field(2, ge=1, description="samples per chunk before the document is rejected")
    chunk_target_tokens: int = Field(512, ge=8, description="target chunk length in engine tokens")
    chunk_max_tokens: int = Field(768, ge=8, description="hard upper bound of a chunk in engine tokens")
    context_tail_tokens: int = Field(128, ge=0, description="tokens of the output so far given as context")
    max_new_tokens: int = Field(1024, ge=1, description="generation limit per chunk")
    temperature: float = Field(0.2, ge=0, description="sampling temperature (SwallowMath: 0.2)")
    top_p: float = Field(0.7, gt=0, le=1, description="nucleus sampling mass (SwallowMath: 0.7)")
    concurrency: int = Field(16, ge=1, description="documents in flight per worker")
    request_timeout_s: float | None = Field(None, gt=0, description="per-request timeout (none = engine's own)")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec, description="where shards are processed")
    limit: int | None = Field(None, ge=1, description="process only the first N input documents (shard order)")

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("inputs")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one input is required")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "MathNotesSpec":
        if self.chunk_max_tokens < self.chunk_target_tokens:
            raise ValueError(f"chunk_max_tokens ({self.chunk_max_tokens}) must be >= chunk_target_tokens "
                             f"({self.chunk_target_tokens})")
        if self.format == "structured" and self.verifier.checks == NOTE_CHECKS:
            # the default note checks plus the section/box check; a user's own list is left as given
            self.verifier = self.verifier.model_copy(update={"checks": NOTE_CHECKS + ["math_structure"]})
        return self

    def gen_config(self):
        """The loop's knobs (rephrase.generate.GenConfig): one variant per document."""
        from rephrase.generate import GenConfig
        return GenConfig(seed=self.seed, variants=1, attempts=self.attempts,
                         chunk_target_tokens=self.chunk_target_tokens, chunk_max_tokens=self.chunk_max_tokens,
                         context_tail_tokens=self.context_tail_tokens, max_new_tokens=self.max_new_tokens,
                         temperature=self.temperature, top_p=self.top_p, concurrency=self.concurrency,
                         request_timeout_s=self.request_timeout_s)
