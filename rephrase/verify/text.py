"""Small text utilities shared by the checks: sentence splitting, word tokens, content words.

Sentence splitting is rule based (no model download is possible): split after . ! ? when the next non-space
character starts a new sentence, but not after abbreviations ("Dr.", "e.g.", "U.S.") or inside decimals
("3.5"); line breaks, bullets and "Q:"/"A:" labels also start a new sentence, because styled rewrites (notes, Q&A)
are written that way.
"""
from __future__ import annotations

import re

ABBREVIATIONS = frozenset("""
mr mrs ms dr prof st jr sr vs etc e.g i.e cf al approx no vol fig est inc ltd co corp dept univ gen col lt sgt
mt ft esp incl jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k a.d b.c c ca
""".split())

_END = re.compile(r"([.!?]+)([\"')\]]*)\s+")
_LINE = re.compile(r"\n+|(?m:^)\s*(?:[-*\u2022]|\d+[.)])\s+(?=\S)|\b(?:Q|A|Question|Answer)\s*:\s*")
_WORD = re.compile(r"[A-Za-z\u00C0-\u024F]+(?:['\u2019][A-Za-z]+)?")

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours out over own same she should so some such than that the their theirs them then
there these they this those through to too under until up very was we were what when where which while who whom
why will with would you your yours yourself its it's also which whose however although though yet thus hence
therefore may might must shall one ones many much another every either neither upon via per within without
""".split())


def split_sentences(text: str) -> list[str]:
    """Sentences (and note/Q&A lines) of `text`, stripped, empty pieces dropped."""
    out: list[str] = []
    for block in _LINE.split(text):
        if block and block.strip():
            out.extend(_split_block(block))
    return [s for s in (x.strip(" \t-*\u2022") for x in out) if s and _WORD.search(s)]


def merge_questions(sents: list[str]) -> list[str]:
    """Join each question with the sentence that answers it: "Who walked on the Moon? Armstrong." is one claim,
    and neither half means much alone to an embedding model."""
    out: list[str] = []
    for s in sents:
        if out and out[-1].rstrip().endswith("?") and not s.rstrip().endswith("?"):
            out[-1] = out[-1] + " " + s
        else:
            out.append(s)
    return out


def _split_block(block: str) -> list[str]:
    pieces, start = [], 0
    for m in _END.finditer(block):
        end = m.end(2)
        if m.group(1).startswith(".") and _is_abbreviation(block[start:m.start(1)]):
            continue
        nxt = block[m.end():m.end() + 1]
        if nxt and nxt.islower():  # "approx. three" or a lower-case continuation: not a sentence start
            continue
        pieces.append(block[start:end])
        start = m.end()
    pieces.append(block[start:])
    return [p.strip() for p in pieces if p.strip()]


def _is_abbreviation(before: str) -> bool:
    last = before.rsplit(None, 1)[-1].lower() if before.strip() else ""
    last = last.lstrip("(\"'")
    return last in ABBREVIATIONS or (len(last) == 1 and last.isalpha())


def shorten(s: str, n: int = 80) -> str:
    """`s` on one line, cut to `n` characters with "..." (for reasons people read)."""
    s = " ".join(s.split())
    return s if len(s) <= n else s[:n - 3] + "..."


def words(text: str) -> list[str]:
    """Word tokens (letters, with an inner apostrophe), original case."""
    return _WORD.findall(text)


def content_words(text: str) -> list[str]:
    """Lower-cased words that are not stopwords and longer than two letters."""
    return [w for w in (x.lower() for x in words(text)) if len(w) > 2 and w not in STOPWORDS]


_HAN_KANA = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Letters/digits of any script as runs; Chinese/Japanese characters one token each (no spaces between words),
# so a translation from Russian or Chinese gets a meaningful length ratio instead of 0 source words.
_WORD_TOKEN = re.compile(f"[{_HAN_KANA}]|[^\\W_{_HAN_KANA}]+")


def word_tokens(text: str) -> list[str]:
    """Lower-cased word and number tokens (any script), for n-gram overlap and length ratios."""
    return _WORD_TOKEN.findall(text.lower())


def is_claimless(sentence: str) -> bool:
    """A short sentence with no number and no mid-sentence name ("Let's start with the numbers.", "Imagine that!"):
    style glue that carries no checkable fact, so the addition check does not demand source support for it."""
    if re.search(r"\d", sentence):
        return False
    ws = words(sentence)
    if any(w[:1].isupper() for w in ws[1:]):
        return False
    return len(content_words(sentence)) <= 3
