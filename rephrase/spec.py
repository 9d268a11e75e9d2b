"""RephraseSpec: the one definition of a rephrase job, shared by the CLI (YAML or flags), the REST API and Ray.

Cheap to import (pydantic + the engine/verifier specs); nothing heavy loads until the stage's setup().
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from corpus.spec import ExecutorSpec, Spec
from rephrase.engines import EngineSpec
from rephrase.verify import VerifierSpec

Domain = Literal["web", "code", "math", "knowledge"]
ChunkFailurePolicy = Literal["reject_variant", "keep_prefix", "keep_source_chunk"]


class RewriteSpecBase(Spec):
    """Fields and checks every rewriting job shares (rephrase, mathnotes): inputs, engine, verifier, the
    chunk-wise loop's knobs, executor. Jobs subclass it and override defaults by redeclaring a field."""
    inputs: list[str] = Field(..., description="input document shards: directories, globs or parquet files")
    output: str = Field(..., description="output directory for synthetic shards, rejects, stats and the spec")
    engine: EngineSpec = Field(default_factory=EngineSpec, description="LLM engine that rewrites")
    verifier: VerifierSpec = Field(default_factory=VerifierSpec, description="fidelity verifier")
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
    domains: list[Domain] = Field(["knowledge"], description="only documents of these domains are rewritten")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec, description="where shards are processed")
    limit: int | None = Field(None, ge=1, description="rewrite only the first N input documents (shard order)")

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
    def _chunk_bounds(self):
        if self.chunk_max_tokens < self.chunk_target_tokens:
            raise ValueError(f"chunk_max_tokens ({self.chunk_max_tokens}) must be >= chunk_target_tokens "
                             f"({self.chunk_target_tokens})")
        return self

    def variants_per_doc(self) -> int:
        return 1

    def gen_config(self):
        """The loop's knobs (rephrase.generate.GenConfig)."""
        from rephrase.generate import GenConfig
        return GenConfig(seed=self.seed, variants=self.variants_per_doc(), attempts=self.attempts,
                         chunk_target_tokens=self.chunk_target_tokens, chunk_max_tokens=self.chunk_max_tokens,
                         context_tail_tokens=self.context_tail_tokens, max_new_tokens=self.max_new_tokens,
                         temperature=self.temperature, top_p=self.top_p, concurrency=self.concurrency,
                         request_timeout_s=self.request_timeout_s, on_chunk_failure=self.on_chunk_failure)


class RephraseSpec(RewriteSpecBase):
    styles: list[str] | None = Field(None, description="style names to draw from (none = all)")
    perspectives: list[str] | None = Field(None, description="perspective names to draw from (none = all)")
    styles_file: str | None = Field(None, description="YAML file adding/overriding styles and perspectives")
    variants: int = Field(2, ge=1, description="distinct (style, perspective) rewrites per document")

    @model_validator(mode="after")
    def _styles_exist(self) -> "RephraseSpec":
        # Styles are data: check names and the number of variants now, not hours into a run.
        from rephrase.styles import StyleBook
        book = StyleBook.load(self.styles_file).select(self.styles, self.perspectives)
        if self.variants > len(book.pairs()):
            raise ValueError(f"variants={self.variants} but the selected styles and perspectives give only "
                             f"{len(book.pairs())} distinct pairs")
        return self

    def variants_per_doc(self) -> int:
        return self.variants
