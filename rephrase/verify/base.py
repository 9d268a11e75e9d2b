"""Verdict types, the context checks read, and the threshold rule of registered checks.

A check is a plain function `check(source, rewrite, ctx) -> CheckResult`. It is registered under a name in
`CHECKS` together with how its score relates to its threshold, so that calibration can re-decide pass/fail for
other threshold values from the recorded scores without running the models again. Adding a check (mathnotes
adds math-aware ones) is one `register_check(...)` call; enabling it is listing its name in `VerifierSpec.checks`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from rephrase.verify.registry import CHECKS, NEEDS, CheckDef, register_check

__all__ = ["CHECKS", "NEEDS", "CheckContext", "CheckDef", "CheckFn", "CheckResult", "Verdict", "register_check",
           "threshold_check"]

if TYPE_CHECKING:  # numpy only for annotations; the verifier imports it where used
    import numpy as np

    from rephrase.verify.spec import VerifierSpec


@dataclass
class CheckResult:
    """One check's outcome: a score (its meaning is the check's), pass/fail, and a human reason when failed."""
    name: str
    score: float
    passed: bool
    reason: str = ""


@dataclass
class Verdict:
    """Accepted iff every enabled check passed."""
    accepted: bool
    checks: list[CheckResult]

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.reason}" for c in self.checks if not c.passed]

    @property
    def scores(self) -> dict[str, float]:
        return {c.name: float(c.score) for c in self.checks}

    def to_fidelity(self) -> dict[str, Any]:
        """The `fidelity` struct of synthetic rows (corpus.schema.FIDELITY_TYPE). Scores are stored to 4 decimals:
        the encoder's last bits depend on which texts shared its batch (padding, and the embedding cache that
        spares re-encoding; rephrase.verify.embed), and a resumed run must write the rows an uninterrupted one
        would."""
        return {"accepted": self.accepted, "reasons": self.reasons,
                "scores": {k: round(v, 4) for k, v in self.scores.items()}}

    @classmethod
    def of(cls, checks: list[CheckResult]) -> "Verdict":
        return cls(accepted=all(c.passed for c in checks), checks=checks)


@dataclass
class CheckContext:
    """What the verifier precomputed for one pair, shared by all checks (so embeddings are computed once).

    `doc_cos` is the cosine of the whole-text embeddings; `src_sents`/`rw_sents` the sentence splits;
    `sent_sim` the [n_src, n_rw] cosine matrix of sentence embeddings; `src_best`/`rw_best` the best similarity of
    each source (rewrite) sentence against the other side's sentences AND adjacent-sentence windows (a rewrite
    often merges two source sentences into one). `src_clean`/`rw_clean` are the texts without structural
    scaffolding (rephrase.verify.scaffold), `labels` the speaker/role label words removed from the rewrite and
    `titles` its title lines. `cache` lets checks share derived results.
    """
    spec: "VerifierSpec"
    src_sents: list[str]
    rw_sents: list[str]
    src_clean: str = ""
    rw_clean: str = ""
    labels: set[str] = field(default_factory=set)
    titles: set[str] = field(default_factory=set)
    doc_cos: float = float("nan")
    sent_sim: "np.ndarray | None" = None
    src_best: "np.ndarray | None" = None
    rw_best: "np.ndarray | None" = None
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def thresholds(self):
        return self.spec.thresholds


CheckFn = Callable[[str, str, CheckContext], CheckResult]


def threshold_check(name: str, score: float, ctx: CheckContext, reason: str) -> CheckResult:
    """A result whose pass/fail follows the registered threshold rule (the same rule calibration replays)."""
    d = CHECKS[name]
    thr = getattr(ctx.thresholds, d.threshold) if d.threshold else None
    passed = True if thr is None else d.passes(score, thr)
    return CheckResult(name, float(score), passed, "" if passed else reason)
