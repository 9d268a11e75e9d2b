"""Fidelity verification of rewritten passages against their sources (Kimi K2 report, knowledge rephrasing step 3).

Cosine similarity alone is blind to a changed number or a flipped claim, so the default Verdict comes from the
`consistency` check: a logistic model (rephrase.verify.consistency), fitted on labelled pairs by
`k2forge rephrase calibrate`, over restyle-tolerant evidence (rephrase.verify.features: numbers, dates and units,
named entities, negation of aligned sentences, sentence support and coverage) read after structural scaffolding
is removed (rephrase.verify.scaffold); plus gates for off-topic output (embedding), length and verbatim copies.
The rule checks it replaced (numbers, entities, negation, omission, addition) and an optional LLM judge stay
available by name.

    from rephrase.verify import Verifier, VerifierSpec
    verdicts = Verifier(VerifierSpec()).verify_batch([(source, rewrite)])
    verdicts[0].accepted, verdicts[0].reasons, verdicts[0].to_fidelity()

Checks live in a registry (`CHECKS`); `register_check(name, fn, threshold=..., direction=...)` adds one and
listing its name in `VerifierSpec.checks` enables it. `verify_file` and `calibrate` back the CLI commands
`k2forge rephrase verify` / `calibrate`. Importing this package is cheap: torch and sentence-transformers load
on the first verification.
"""
from rephrase.verify.base import CHECKS, CheckContext, CheckDef, CheckResult, Verdict, register_check
from rephrase.verify import checks, consistency, judge  # the built-in checks register themselves on import
from rephrase.verify.spec import DEFAULT_CHECKS, Thresholds, VerifierSpec
from rephrase.verify.verifier import Verifier
from rephrase.verify.calibrate import CalibrationReport, calibrate, verify_file

__all__ = ["checks", "consistency", "judge", "CHECKS", "CheckContext", "CheckDef", "CheckResult", "Verdict",
           "register_check", "DEFAULT_CHECKS", "Thresholds", "VerifierSpec", "Verifier", "CalibrationReport", "calibrate", "verify_file"]
