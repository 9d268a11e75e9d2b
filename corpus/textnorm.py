"""Text normalisation before exact keys and shingles (datatrove's TextNormConfig / simplify_text, Curator's
fuzzy-dedup normalisation), so that copies differing only in case, punctuation spacing, Unicode compatibility
forms (full-width letters, ligatures) or whitespace get the same exact key and the same shingles.

Steps, in this order (each one optional; whitespace folding is always done because word shingles are the
whitespace-separated tokens of the normalised text):
  1. `nfkc`        Unicode NFKC: full-width and other compatibility forms to their plain characters.
  2. `lowercase`   `str.casefold()` (like lower(), plus e.g. "ß" -> "ss").
  3. `digits`      every number (digits, optionally with a decimal part) -> "0", as datatrove's norm_numbers.
  4. `punctuation` every Unicode punctuation (P*) and symbol (S*) character -> a space: "Hello, world!" and
                   "HELLO , WORLD !" both become "hello world".
  5. `diacritics`  NFD, then combining marks (Mn) dropped: "café" -> "cafe".
  6. whitespace    runs of whitespace -> one space, ends stripped.
Defaults: all on except `digits` and `diacritics` (numbers and accents carry meaning in math and in many
languages; datatrove folds both). `TextNorm.legacy()` is k2forge's earlier form (NFKC, casefold, whitespace).
"""
from __future__ import annotations

import functools
import re
import sys
import unicodedata

from pydantic import BaseModel, ConfigDict, Field

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@functools.lru_cache(maxsize=None)
def _punct_table() -> dict[int, str]:
    """str.translate table mapping every punctuation and symbol code point to a space (~8.5k entries; ASCII
    text takes CPython's fast translate path, so this costs about 1.5 ns per character)."""
    return {c: " " for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c))[0] in "PS"}


@functools.lru_cache(maxsize=None)
def _mark_table() -> dict[int, None]:
    """str.translate table deleting every nonspacing combining mark."""
    return {c: None for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Mn"}


class TextNorm(BaseModel):
    """Which normalisation steps run (see the module docstring for order and defaults)."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    nfkc: bool = Field(True, description="Unicode NFKC (full-width letters, ligatures -> plain)")
    lowercase: bool = Field(True, description="casefold")
    digits: bool = Field(False, description="every number -> 0")
    punctuation: bool = Field(True, description="punctuation and symbols -> space")
    diacritics: bool = Field(False, description="strip combining marks (cafe == café)")

    @classmethod
    def legacy(cls) -> "TextNorm":
        """NFKC + casefold + whitespace only: k2forge's normalisation before punctuation folding."""
        return cls(punctuation=False)

    def __call__(self, text: str) -> str:
        """The normalised text: words separated by single spaces, no leading or trailing space."""
        if self.nfkc:
            text = unicodedata.normalize("NFKC", text)
        if self.lowercase:
            text = text.casefold()
        if self.digits:
            text = _NUMBER.sub("0", text)
        if self.punctuation:
            text = text.translate(_punct_table())
        if self.diacritics:
            text = unicodedata.normalize("NFD", text).translate(_mark_table())
        return " ".join(text.split())


DEFAULT_NORM = TextNorm()
