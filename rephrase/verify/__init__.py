"""Fidelity verification of rewritten passages against their sources (Kimi K2 report, knowledge rephrasing step 3).

Cosine similarity alone is blind to a changed number or a flipped claim (on the labelled set a faithful rewrite
in a new style scores LOWER than a corrupted near-copy), so a Verdict combines several checks, each with a score
and a reason: embedding similarity, numbers/dates/units both ways, named entities, negation flips, sentence
alignment (omissions and additions), the length ratio, verbatim-copy detection and an optional LLM judge.

    from rephrase.verify import Verifier, VerifierSpec
    verdicts = Verifier(VerifierSpec()).verify_batch([(source, rewrite)])
    verdicts[0].accepted, verdicts[0].reasons, verdicts[0].to_fidelity()

Checks live in a registry (`CHECKS`); `register_check(name, fn, threshold=..., direction=...)` adds one and
listing its name in `VerifierSpec.checks` enables it. `verify_file` and `calibrate` back the CLI commands
`k2forge rephrase verify` / `calibrate`. Importing this package is cheap: torch and sentence-transformers load
on the first verification.
"""
from rephrase.verify.base import CHECKS, CheckContext, CheckDef, CheckResult, Verdict, register_check
from rephrase.verify import checks as _builtin_checks  # noqa: F401  (registers the built-in checks)
from rephrase.verify import judge as _judge  # noqa: F401  (registers the judge's threshold rule)
from rephrase.verify.spec import DEFAULT_CHECKS, Thresholds, VerifierSpec
from rephrase.verify.verifier import Verifier
from rephrase.verify.calibrate import CalibrationReport, calibrate, verify_file

__all__ = ["CHECKS", "CheckContext", "CheckDef", "CheckResult", "Verdict", "register_check", "DEFAULT_CHECKS",
           "Thresholds", "VerifierSpec", "Verifier", "CalibrationReport", "calibrate", "verify_file"]
