"""The built-in fidelity checks, each registered in CHECKS with its threshold rule.

Every check returns a score and, when it fails, a reason that says what was wrong and where (which number, which
name, which sentence), because reasons become rejection statistics and are read by people tuning prompts.
"""
from __future__ import annotations

import re

import numpy as np

import rephrase.verify.entities as entities
import rephrase.verify.negation as negation
import rephrase.verify.numbers as numbers
from rephrase.verify.base import CheckContext, CheckResult, register_check, threshold_check
from rephrase.verify.overlap import length_ratio, ngram_overlap
from rephrase.verify.text import is_claimless, shorten as _short


def _list(items: list[str], n: int = 4) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(repr(x) for x in items[:n]) + more


def check_embedding(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    return threshold_check("embedding", ctx.doc_cos, ctx,
                           f"cosine {ctx.doc_cos:.3f} < {ctx.thresholds.min_cosine}: rewrite is off-topic")


def check_numbers(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    diff = numbers.compare(source, rewrite)
    parts = []
    if diff.missing:
        parts.append(f"missing in rewrite {_list([q.label() for q in diff.missing])}")
    if diff.extra:
        parts.append(f"not in source {_list([q.label() for q in diff.extra])}")
    return threshold_check("numbers", diff.score, ctx, "; ".join(parts))


def check_entities(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    diff = entities.compare(source, rewrite)
    parts = []
    if diff.missing:
        parts.append(f"missing in rewrite {_list([e.text for e in diff.missing])}")
    if diff.added:
        parts.append(f"not in source {_list([e.text for e in diff.added])}")
    return threshold_check("entities", diff.score, ctx, "; ".join(parts))


def check_negation(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    flips = negation.find_flips(ctx.src_sents, ctx.rw_sents, ctx.sent_sim, ctx.thresholds.align_min_sim)
    reason = "; ".join(f"polarity differs: source {_short(f.source)!r} vs rewrite {_short(f.rewrite)!r}"
                       for f in flips[:2])
    return threshold_check("negation", float(len(flips)), ctx, reason)


def check_omission(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    if ctx.src_best is None or not len(ctx.src_best):
        return CheckResult("omission", 1.0, True)
    i = int(ctx.src_best.argmin())
    score = float(ctx.src_best[i])
    return threshold_check("omission", score, ctx, f"source sentence {i + 1} has no counterpart in the rewrite "
                                                   f"(best similarity {score:.2f}): {_short(ctx.src_sents[i])!r}")


def check_addition(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    if ctx.rw_best is None or not len(ctx.rw_best):
        return CheckResult("addition", 1.0, True)
    # style glue ("Let me walk you through it.") states nothing to support; numbers/entities still see it all
    best = np.where([is_claimless(s) for s in ctx.rw_sents], np.inf, ctx.rw_best)
    if not np.isfinite(best).any():
        return CheckResult("addition", 1.0, True)
    j = int(best.argmin())
    score = float(ctx.rw_best[j])
    return threshold_check("addition", score, ctx, f"rewrite sentence {j + 1} is not supported by the source "
                                                   f"(best similarity {score:.2f}): {_short(ctx.rw_sents[j])!r}")


def check_length(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    t = ctx.thresholds
    ratio = length_ratio(source, rewrite)
    if t.min_length_ratio <= ratio <= t.max_length_ratio:
        return CheckResult("length", ratio, True)
    return CheckResult("length", ratio, False, f"length ratio {ratio:.2f} outside "
                                               f"[{t.min_length_ratio}, {t.max_length_ratio}]")


def check_near_copy(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    n = ctx.spec.ngram_n
    share = ngram_overlap(source, rewrite, n)
    return threshold_check("near_copy", share, ctx, f"{share:.0%} of the {n}-grams are shared verbatim with the "
                                                    f"source (of the rewrite's or of the source's): not rewritten")


# The generator talking about its task instead of doing it: a prompt label echoed ("Text to rewrite:"), or a
# sentence about the rewriting itself ("The original text was rewritten in the tone of ..."). Small models do both;
# neither is a fact of the source, and neither is style glue the consistency model may shrug off.
_META_LABEL = re.compile(r"^[ \t>*#-]*(?:text to rewrite|rewritten (?:text|passage|version)|original (?:text|passage)|"
                         r"source text|your rewrite(?: so far)?|emphasis added|note to (?:the )?(?:reader|editor)|"
                         r"(?:summary of )?changes(?: made)?)\b[^\n:]{0,40}:", re.IGNORECASE | re.MULTILINE)
_META_TALK = re.compile(r"\b(?:re-?writ(?:e|es|ten|ing)|rephras\w*|paraphras\w*|(?:the|this|my|your) (?:original|"
                        r"source|given|above|following) (?:text|passage|paragraph|version))\b",
                        re.IGNORECASE)


def check_meta(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    """1.0 when the rewrite echoes a prompt label or talks about the rewriting (words the source does not use)."""
    m = _META_LABEL.search(rewrite)
    if m and not re.search(re.escape(m.group(0).strip(" \t>*#-:")), source, re.IGNORECASE):
        return CheckResult("meta", 1.0, False, f"the rewrite echoes a prompt label: {_short(m.group(0).strip())!r}")
    source_talk = {t.lower()[:6] for t in _META_TALK.findall(source)}  # "rewrites" in the source allows "rewrote"
    for sent in ctx.rw_sents or [rewrite]:
        hit = next((t for t in _META_TALK.findall(sent) if t.lower()[:6] not in source_talk), None)
        if hit:
            return CheckResult("meta", 1.0, False, f"the rewrite talks about the rewriting ({hit!r}): {_short(sent)!r}")
    return CheckResult("meta", 0.0, True)


_GRID_SIM = tuple(round(0.2 + 0.05 * i, 2) for i in range(13))
register_check("embedding", check_embedding, threshold="min_cosine", needs=("doc",), grid=_GRID_SIM,
               help="whole-text embedding cosine")
register_check("numbers", check_numbers, threshold="min_number_score", grid=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
               help="numbers, dates, units, ids compared both ways")
register_check("entities", check_entities, threshold="min_entity_score", grid=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
               help="named entities kept, none swapped in")
register_check("negation", check_negation, threshold="max_negation_flips", direction="max", needs=("sentences",),
               grid=(0, 1, 2), help="negation parity per aligned sentence group")
register_check("omission", check_omission, threshold="min_omission_sim", needs=("sentences",), grid=_GRID_SIM,
               help="every source sentence has a counterpart")
register_check("addition", check_addition, threshold="min_addition_sim", needs=("sentences",), grid=_GRID_SIM,
               help="every rewrite sentence has support in the source")
register_check("length", check_length, help="rewrite/source length ratio within bounds")
register_check("near_copy", check_near_copy, threshold="max_ngram_overlap", direction="max",
               grid=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), help="verbatim n-gram overlap")
register_check("meta", check_meta, needs=("sentences",),
               help="no prompt label echoed, no sentence about the rewriting itself")
