"""Split a document into chunks for chunk-wise rewriting, measured with the engine's own tokenizer.

Cuts are tried at paragraph boundaries, then sentence boundaries (and single line breaks), then whitespace, and
only as a last resort at an arbitrary character position bounded by tokens. A cut never falls inside a
protected span: a number (3.14, 1,000, 12:30, 6.02e23), a LaTeX span ($..$, $$..$$, \\[..\\], \\(..\\),
\\begin{env}..\\end{env}), a fenced or indented code block, or a URL. Only a protected span that alone exceeds
`max_tokens` is cut (the hard split), because `max_tokens` protects the engine's context window.

Chunks cover the text exactly: the raw spans concatenate to the input, so stitching rewritten chunks with each
chunk's trailing separator keeps the document's paragraph structure.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Callable

CountFn = Callable[[str], int]

_PROTECTED = [
    re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S),   # fenced code
    re.compile(r"(?:(?<=\n\n)|\A)(?:(?: {4}|\t)[^\n]*(?:\n|\Z)|[ \t]*\n(?=(?: {4}|\t)))+"),  # indented code
    re.compile(r"\\begin\{([^}\n]+)\}.*?\\end\{\1\}", re.S),
    re.compile(r"\$\$.+?\$\$", re.S),
    re.compile(r"\\\[.+?\\\]", re.S),
    re.compile(r"\\\(.+?\\\)", re.S),
    re.compile(r"(?<![\\$])\$(?![\s$])[^$\n]+?(?<![\s\\])\$(?!\d)"),                       # inline math
    re.compile(r"\b(?:https?|ftp)://[^\s<>\"]+[^\s<>\".,;:!?)\]'}]|\bwww\.[^\s<>\"]+[^\s<>\".,;:!?)\]'}]"),
    re.compile(r"[-+]?\d+(?:[.,:]\d+)+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+"),                    # numbers
]
_PARAGRAPH = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*")   # keeps the next line's indentation
_SENTENCE = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*[ \t]+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])|\n")
_WHITESPACE = re.compile(r"\s+")
_ABBREV = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|Sr|Jr|vs|etc|e\.g|i\.e|cf|al|Fig|No|Vol|pp|Inc|Ltd|Co)|"
                     r"\b[A-Z])\.[\"')\]]*[ \t]+$")


@dataclass(frozen=True)
class Chunk:
    """A piece of the document: `text` is what the model sees (stripped); `sep` is what followed it."""
    index: int
    start: int
    end: int
    text: str
    sep: str


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Sorted, merged (start, end) spans that no cut may fall strictly inside."""
    spans = []
    for pat in _PROTECTED:
        for m in pat.finditer(text):
            s, e = m.start(), m.start() + len(m.group(0).rstrip())
            if e > s:
                spans.append((s, e))
    spans.sort()
    merged: list[list[int]] = []
    for s, e in spans:
        if merged and s < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


class _Guard:
    """Answers 'is a cut at position p allowed?' in O(log n) over the protected spans."""

    def __init__(self, spans: list[tuple[int, int]]):
        self.starts = [s for s, _ in spans]
        self.spans = spans

    def allowed(self, p: int) -> bool:
        i = bisect.bisect_left(self.starts, p) - 1   # last span starting strictly before p
        return i < 0 or self.spans[i][1] <= p


def chunk_text(text: str, count_tokens: CountFn, target_tokens: int = 256,
               max_tokens: int | None = None) -> list[Chunk]:
    """Chunks of about `target_tokens` (never more than `max_tokens`, default 2 x target) covering `text`."""
    max_tokens = max_tokens or 2 * target_tokens
    if target_tokens < 1 or max_tokens < target_tokens:
        raise ValueError(f"chunking: need 1 <= target_tokens ({target_tokens}) <= max_tokens ({max_tokens})")
    if not text.strip():
        return []
    splitter = _Splitter(text, count_tokens, target_tokens, max_tokens)
    pieces = splitter.split(0, len(text), 0)
    return _finish(text, splitter.pack(pieces))


class _Splitter:
    levels = (_PARAGRAPH, _SENTENCE, _WHITESPACE)

    def __init__(self, text: str, count: CountFn, target: int, max_tokens: int):
        self.text, self.count, self.target, self.max = text, count, target, max_tokens
        self.guard = _Guard(protected_spans(text))

    def _tokens(self, s: int, e: int) -> int:
        return self.count(self.text[s:e].strip())

    def split(self, s: int, e: int, level: int) -> list[tuple[int, int]]:
        """Spans of [s, e): natural boundaries are used down to `target`, mid-sentence cuts only above max."""
        limit = self.target if level < 2 else self.max
        if self._tokens(s, e) <= limit:
            return [(s, e)]
        if level == len(self.levels):
            return self.hard_split(s, e)
        cuts = self._cuts(self.levels[level], s, e, level)
        if not cuts:
            return self.split(s, e, level + 1)
        bounds = [s, *cuts, e]
        out: list[tuple[int, int]] = []
        for a, b in zip(bounds, bounds[1:]):
            out.extend(self.split(a, b, level + 1))
        return out

    def _cuts(self, pat: re.Pattern, s: int, e: int, level: int) -> list[int]:
        cuts = []
        for m in pat.finditer(self.text, s, e):
            c = m.end()
            if not (s < c < e) or not self.guard.allowed(m.start()) or not self.guard.allowed(c):
                continue
            if pat is _SENTENCE and _ABBREV.search(self.text, max(s, m.start() - 8), c):
                continue   # "Dr. Smith", "e.g. this": a period that does not end a sentence
            cuts.append(c)
        return cuts

    def hard_split(self, s: int, e: int) -> list[tuple[int, int]]:
        """Longest prefixes within max tokens, at an allowed position when one exists (the last resort)."""
        out = []
        while self._tokens(s, e) > self.max:
            lo, hi = s + 1, e            # largest p in [s+1, e) with tokens(s, p) <= max
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self._tokens(s, mid) <= self.max:
                    lo = mid
                else:
                    hi = mid - 1
            p = next((q for q in range(lo, s, -1) if self.guard.allowed(q)), lo)
            out.append((s, p))
            s = p
        out.append((s, e))
        return out

    def pack(self, pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Merge consecutive pieces while the merged chunk stays within `target` tokens."""
        chunks: list[tuple[int, int]] = []
        for s, e in pieces:
            # whitespace on either side joins its neighbour: no chunk may be empty (nothing to rewrite or verify)
            if chunks and (not self.text[s:e].strip() or not self.text[chunks[-1][0]:chunks[-1][1]].strip()
                           or self._tokens(chunks[-1][0], e) <= self.target):
                chunks[-1] = (chunks[-1][0], e)
            else:
                chunks.append((s, e))
        return chunks


def _finish(text: str, spans: list[tuple[int, int]]) -> list[Chunk]:
    out = []
    for i, (s, e) in enumerate(spans):
        raw = text[s:e]
        trail = raw[len(raw.rstrip()):]
        sep = "\n\n" if trail.count("\n") >= 2 else ("\n" if "\n" in trail else (" " if trail else ""))
        out.append(Chunk(i, s, e, raw.rstrip().lstrip("\n"), sep))   # keeps code indentation
    return out


def stitch(rewrites: list[str], chunks: list[Chunk]) -> str:
    """Join rewritten chunks in order with the original separators (the last chunk's is dropped)."""
    if len(rewrites) != len(chunks):
        raise ValueError(f"stitch: {len(rewrites)} rewrites for {len(chunks)} chunks")
    parts = []
    for i, (r, c) in enumerate(zip(rewrites, chunks)):
        parts.append(r.strip())
        if i < len(chunks) - 1:
            parts.append(c.sep or " ")
    return "".join(parts)
