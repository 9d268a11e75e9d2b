"""The check registry: name -> how a check is called and how its score relates to its threshold.

It imports nothing of the verifier, so the spec can validate check names (VerifierSpec.checks) against it without
an import cycle; the result and context types the checks use live in rephrase.verify.base.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal


@dataclass(frozen=True)
class CheckDef:
    """A registered check. `threshold` names a field of `Thresholds` (or None); `direction` "min" means the check
    passes when score >= threshold, "max" when score <= threshold. `needs` says which embeddings it reads."""
    name: str
    fn: Callable[..., Any]  # (source, rewrite, CheckContext) -> CheckResult: rephrase.verify.base.CheckFn
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


def register_check(name: str, fn: Callable[..., Any], *, threshold: str | None = None, direction: str = "min",
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
