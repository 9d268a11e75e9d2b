"""Surface checks: verbatim n-gram overlap (a rewrite must actually be rewritten) and the length ratio.

The overlap score is the larger of two shares of word n-grams (n = 8 by default) found verbatim on the other side:
the rewrite's n-grams in the source (a near-copy with one word changed), and the source's n-grams in the rewrite
(the source copied whole, then padded with commentary, which dilutes the first share). A genuine restyling shares
almost no 8-grams with its source either way.
"""
from __future__ import annotations

from rephrase.verify.text import word_tokens


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def ngram_overlap(source: str, rewrite: str, n: int = 8) -> float:
    """Share of the rewrite's n-grams found in the source (0 when the rewrite is shorter than n words)."""
    rw = word_tokens(rewrite)
    if len(rw) < n:
        # a short rewrite is a near-copy when all of it appears in the source
        return 1.0 if rw and " ".join(rw) in " ".join(word_tokens(source)) else 0.0
    grams, src = ngrams(rw, n), ngrams(word_tokens(source), n)
    shared = len(grams & src)
    return max(shared / len(grams), shared / len(src) if src else 0.0)


def length_ratio(source: str, rewrite: str) -> float:
    """Rewrite length over source length, in words (inf when the source has no words)."""
    s, r = len(word_tokens(source)), len(word_tokens(rewrite))
    return r / s if s else float("inf")
