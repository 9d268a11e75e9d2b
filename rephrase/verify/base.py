"""Verdict types and the check registry.

A check is a plain function `check(source, rewrite, ctx) -> CheckResult`. It is registered under a name in
`CHECKS` together with how its score relates to its threshold, so that calibration can re-decide pass/fail for
other threshold values from the recorded scores without running the models again. Adding a check (mathnotes
adds math-aware ones) is one `register_check(...)` call; enabling it is listing its name in `VerifierSpec.checks`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

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
        """The `fidelity` struct of synthetic rows (corpus.schema.FIDELITY_TYPE)."""
        return {"accepted": self.accepted, "reasons": self.reasons, "scores": self.scores}

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


@dataclass(frozen=True)
class CheckDef:
    """A registered check. `threshold` names a field of `Thresholds` (or None); `direction` "min" means the check
    passes when score >= threshold, "max" when score <= threshold. `needs` says which embeddings it reads."""
    name: str
    fn: CheckFn
    threshold: str | None = None
    direction: Literal["min", "max"] = "min"
    needs: frozenset[str] = frozenset()
    grid: tuple[float, ...] = ()
    help: str = ""

    def passes(self, score: float, threshold: float) -> bool:
        return score >= threshold if self.direction == "min" else score <= threshold


#: check name -> definition. Built-in checks register in rephrase.verify.checks; others may add their own.
CHECKS: dict[str, CheckDef] = {}

NEEDS = frozenset({"doc", "sentences"})


def register_check(name: str, fn: CheckFn, *, threshold: str | None = None, direction: str = "min",
                   needs: tuple[str, ...] = (), grid: tuple[float, ...] = (), help: str = "",
                   replace: bool = False) -> CheckDef:
    """Register `fn` as check `name`; an existing name is an error unless `replace=True`."""
    if name in CHECKS and not replace:
        raise ValueError(f"check {name!r} is already registered (pass replace=True to override it)")
    unknown = set(needs) - NEEDS
    if unknown:
        raise ValueError(f"check {name!r}: unknown needs {sorted(unknown)}, expected a subset of {sorted(NEEDS)}")
    if direction not in ("min", "max"):
        raise ValueError(f"check {name!r}: direction must be 'min' or 'max', got {direction!r}")
    d = CheckDef(name, fn, threshold, direction, frozenset(needs), tuple(grid), help)  # type: ignore[arg-type]
    CHECKS[name] = d
    return d


def threshold_check(name: str, score: float, ctx: CheckContext, reason: str) -> CheckResult:
    """A result whose pass/fail follows the registered threshold rule (the same rule calibration replays)."""
    d = CHECKS[name]
    thr = getattr(ctx.thresholds, d.threshold) if d.threshold else None
    passed = True if thr is None else d.passes(score, thr)
    return CheckResult(name, float(score), passed, "" if passed else reason)
