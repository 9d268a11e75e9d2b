"""MathNotesSpec: the one definition of a mathnotes job (CLI flags or YAML, REST API, Ray runs).

Defaults follow SwallowMath (temperature 0.2, top-p 0.7). Two verifiers: `verifier` checks learning notes,
`translate_verifier` checks translations; each starts from math-aware check lists (mathnotes.checks) and is a
plain rephrase VerifierSpec, so checks and thresholds are configured the same way as for rephrase.
Cheap to import: pydantic, the engine/verifier specs and the (regex-only) math checks.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

import mathnotes.checks  # noqa: F401  (registers the math checks before VerifierSpec validates their names)
from corpus.fields import PathOut
from rephrase.spec import Domain, RewriteSpecBase
from rephrase.verify import VerifierSpec

#: notes drop boilerplate and add steps, so sentence omission/addition and near-copy checks do not apply
NOTE_CHECKS = ["embedding", "length", "math_numbers", "math_formulas", "math_answer"]
#: MiniLM is English-only, so a cross-lingual cosine says little: translations are checked on their math
TRANSLATE_CHECKS = ["length", "math_numbers_exact", "math_formulas", "math_answer", "math_english"]


class MathNotesSpec(RewriteSpecBase):
    output: PathOut = Field(..., description="output directory for synthetic shards, rejects, routing, stats, spec")
    format: Literal["note", "structured"] = Field("note", description="free learning note, or Task Description / "
                                                                      "Approach / Solution Steps / Final Answer")
    translate: bool = Field(True, description="translate non-English math documents into English (else skip them)")
    note_after_translate: bool = Field(True, description="rewrite accepted translations as learning notes too")
    keep_translation: bool = Field(True, description="also write accepted translations as rows (task translate)")
    verifier: VerifierSpec = Field(default_factory=lambda: VerifierSpec(checks=list(NOTE_CHECKS)),
                                   description="verifier of learning notes")
    translate_verifier: VerifierSpec = Field(default_factory=lambda: VerifierSpec(checks=list(TRANSLATE_CHECKS)),
                                             description="verifier of translations")
    domains: list[Domain] = Field(["math"], description="documents of these domains go through")
    detect_math: bool = Field(False, description="also pick math out of `detect_domains` with the math detector")
    detect_domains: list[Domain] = Field(["web"], description="domains the math detector looks at")
    math_threshold: float = Field(0.4, ge=0, le=1, description="math detector score needed to route a document")
    attempts: int = Field(2, ge=1, description="samples per chunk before the chunk counts as failed "
                                               "(on_chunk_failure says what that costs)")
    chunk_target_tokens: int = Field(512, ge=8, description="target chunk length in engine tokens")
    chunk_max_tokens: int = Field(768, ge=8, description="hard upper bound of a chunk in engine tokens")
    max_new_tokens: int = Field(1024, ge=1, description="generation limit per chunk")
    temperature: float = Field(0.2, ge=0, description="sampling temperature (SwallowMath: 0.2)")
    top_p: float = Field(0.7, gt=0, le=1, description="nucleus sampling mass (SwallowMath: 0.7)")

    @model_validator(mode="after")
    def _structured_checks(self) -> "MathNotesSpec":
        if self.format == "structured" and self.verifier.checks == NOTE_CHECKS:
            # the default note checks plus the section/box check; a user's own list is left as given
            self.verifier = self.verifier.model_copy(update={"checks": NOTE_CHECKS + ["math_structure"]})
        return self
