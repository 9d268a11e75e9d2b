"""RephraseSpec: the one definition of a rephrase job, shared by the CLI (YAML or flags), the REST API and Ray.

`RewriteSpecBase` is what every rewriting job (rephrase, mathnotes) shares: inputs, output, engine (a union of one
spec per backend, rephrase.engines), verifier, the loop's knobs (rephrase.generate.GenerationSpec, inherited, so
spec files stay flat and the loop takes the job's spec as it is), domains, executor, limit.
Cheap to import (pydantic + the engine/verifier specs); nothing heavy loads until the stage's setup().
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from corpus.fields import PathIn, PathOut
from corpus.spec import ExecutorSpec, Spec
from rephrase.engines import EngineSpec, engine_spec
from rephrase.generate import GenerationSpec
from rephrase.styles import StyleBook
from rephrase.verify import VerifierSpec

Domain = Literal["web", "code", "math", "knowledge"]


class _RewriteIO(Spec):
    """What a rewriting job reads, writes and runs with (first in field order: spec files and --help start here)."""
    inputs: list[PathIn] = Field(..., description="input document shards: directories, globs or parquet files")
    output: PathOut = Field(..., description="output directory for synthetic shards, rejects, stats and the spec")
    engine: EngineSpec = Field(default_factory=engine_spec, description="LLM engine that rewrites")
    verifier: VerifierSpec = Field(default_factory=VerifierSpec, description="fidelity verifier")


class RewriteSpecBase(GenerationSpec, _RewriteIO):
    """Fields and checks every rewriting job shares (rephrase, mathnotes): inputs, engine, verifier, the
    chunk-wise loop's knobs (GenerationSpec: the Rewriter takes the job's spec as it is), executor. Jobs subclass
    it and override defaults by redeclaring a field."""
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


class RephraseSpec(RewriteSpecBase):
    styles: list[str] | None = Field(None, description="style names to draw from (none = all)")
    perspectives: list[str] | None = Field(None, description="perspective names to draw from (none = all)")
    styles_file: PathIn | None = Field(None, description="YAML file adding/overriding styles and perspectives")
    variants: int = Field(2, ge=1, description="distinct (style, perspective) rewrites per document")

    @model_validator(mode="after")
    def _styles_exist(self) -> "RephraseSpec":
        # Styles are data: check names and the number of variants now, not hours into a run.
        book = StyleBook.load(self.styles_file).select(self.styles, self.perspectives)
        if self.variants > len(book.pairs()):
            raise ValueError(f"variants={self.variants} but the selected styles and perspectives give only "
                             f"{len(book.pairs())} distinct pairs")
        return self

    def variants_per_doc(self) -> int:
        return self.variants
