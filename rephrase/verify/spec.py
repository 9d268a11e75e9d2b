"""VerifierSpec: which fidelity checks run, their thresholds and the consistency model's weights.

The default verifier is the calibrated consistency model (rephrase.verify.consistency, fitted on
rephrase/data/dev.jsonl) plus three gates that state no fact: a low embedding cosine (garbage / off-topic output,
not fidelity: cosine is at chance for one-fact corruptions), the length ratio and verbatim-copy detection. The older
per-signal checks (numbers, entities, negation, omission, addition) stay registered for users who want hard rules;
their signals are the model's features. Rerun `k2forge rephrase calibrate` to re-derive the model for other data.
"""
from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from corpus.fields import ModelSource
from corpus.spec import Spec
from rephrase.engines import EngineSpec
from rephrase.verify.consistency_model import ConsistencyModel
from rephrase.verify.registry import CHECKS

DEFAULT_CHECKS = ["consistency", "embedding", "length", "near_copy", "meta"]


class Thresholds(Spec):
    """One threshold per check; the check's registry entry says whether a score must be above or below it."""
    min_cosine: float = Field(0.3, ge=-1, le=1, description="embedding: whole-text cosine must be at least this "
                                                            "(a gate against off-topic output, not a fidelity test)")
    min_number_score: float = Field(1.0, ge=0, le=1,
                                    description="numbers: share of quantities matched both ways (1 = all)")
    min_entity_score: float = Field(1.0, ge=0, le=1,
                                    description="entities: share of named entities matched both ways (1 = all)")
    max_negation_flips: float = Field(0, ge=0, description="negation: aligned sentence groups with flipped polarity")
    min_omission_sim: float = Field(0.45, ge=-1, le=1,
                                    description="omission: every source sentence needs a rewrite counterpart "
                                                "at least this similar")
    min_addition_sim: float = Field(0.4, ge=-1, le=1,
                                    description="addition: every rewrite sentence needs source support at "
                                                "least this similar")
    align_min_sim: float = Field(0.3, ge=-1, le=1,
                                 description="sentences less similar than this are not aligned (negation groups)")
    min_length_ratio: float = Field(0.35, ge=0, description="length: rewrite/source words at least this")
    max_length_ratio: float = Field(3.0, gt=0, description="length: rewrite/source words at most this")
    max_ngram_overlap: float = Field(0.4, ge=0, le=1,
                                     description="near_copy: share of rewrite n-grams found verbatim in the source")
    min_judge_score: float = Field(0.5, ge=0, le=1, description="judge: 1 = the judge found the rewrite faithful")

    @model_validator(mode="after")
    def _bounds(self) -> "Thresholds":
        if self.min_length_ratio > self.max_length_ratio:
            raise ValueError(f"min_length_ratio ({self.min_length_ratio}) exceeds max_length_ratio "
                             f"({self.max_length_ratio})")
        return self


class VerifierSpec(Spec):
    checks: list[str] = Field(default_factory=lambda: list(DEFAULT_CHECKS),
                              description="enabled checks, by registry name (rephrase.verify.CHECKS)")
    thresholds: Thresholds = Field(default_factory=Thresholds, description="per-check thresholds")
    consistency: ConsistencyModel | None = Field(None, description="weights of the consistency check's model "
                                                                   "(none = the packaged, calibrated default)")
    embedding_model: ModelSource | None = Field(None, description="sentence-transformers model dir or id "
                                                          "(none = the packaged offline all-MiniLM-L6-v2)")
    embed_batch_size: int = Field(128, ge=1, description="texts per embedding forward pass")
    ngram_n: int = Field(8, ge=2, description="near_copy: n of the verbatim word n-grams")
    judge: bool = Field(False, description="also ask an LLM judge whether the rewrite adds, drops or changes a fact")
    judge_engine: EngineSpec | None = Field(None, description="engine of the judge (none = the embedded local "
                                                              "model); only built when judge is true")
    judge_max_tokens: int = Field(96, ge=8, description="judge answer length limit in tokens")

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, v: list[str]) -> list[str]:
        if "judge" in v:
            raise ValueError("the judge is enabled with judge: true (it runs asynchronously), not listed in checks")
        unknown = [c for c in v if c not in CHECKS]
        if unknown:
            raise ValueError(f"unknown check(s) {unknown}; registered: {sorted(set(CHECKS) - {'judge'})}")
        if len(set(v)) != len(v):
            raise ValueError(f"checks listed twice: {sorted({c for c in v if v.count(c) > 1})}")
        return v

    def with_thresholds(self, **values: float) -> "VerifierSpec":
        """A copy with some thresholds replaced (validated)."""
        return self.model_validate({**self.model_dump(), "thresholds": {**self.thresholds.model_dump(), **values}})
