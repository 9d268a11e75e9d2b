"""Offline detectors: language (langid, which ships its own model), math content, and web boilerplate lines.

Language is detected on the prose only: LaTeX spans and commands are removed first, because `x^2 - 5x` reads
as no language at all and tilts a short text towards whatever langid guesses for symbols. The math detector
scores LaTeX density, equation-like lines and math vocabulary (English, French, German, Spanish) and says why.
Boilerplate lines (navigation, "posted by", timestamps, ads, cookie/legal footers) are what a learning note
removes, so the math-aware checks do not ask a note to keep the numbers found there.
"""
from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass

_MATH_SPAN = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\\begin\{([^}]+)\}.*?\\end\{\1\}|"
                        r"(?<![\\$])\$[^$\n]+?\$", re.S)
_COMMAND = re.compile(r"\\[A-Za-z]+|[{}^_]")


def prose(text: str) -> str:
    """`text` without math spans, LaTeX commands and digits: what a language detector should see."""
    t = _MATH_SPAN.sub(" ", text)
    t = _COMMAND.sub(" ", t)
    t = re.sub(r"[\d=+*/<>()\[\]|\\-]+", " ", t)
    return re.sub(r"\s+", " ", t).strip()


@functools.lru_cache(maxsize=1)
def _identifier():
    from langid.langid import LanguageIdentifier, model  # loads the model that ships inside the package
    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


#: fewer prose letters than this and langid's answer is noise: "und" (undetermined) instead
MIN_LETTERS = 12


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the prose of `text`; ("und", 0.0) when there is too little prose."""
    p = prose(text)
    if sum(c.isalpha() for c in p) < MIN_LETTERS:
        return "und", 0.0
    lang, prob = _identifier().classify(p)
    return lang, float(prob)


# ---------------------------------------------------------------- math content

_MATH_WORDS = re.compile(r"\b(?:equation|solve|solution|theorem|proof|lemma|integral|derivative|function|"
                         r"polynomial|factor|fraction|probability|sum|product|prime|divisible|remainder|"
                         r"triangle|hypotenuse|square|root|matrix|vector|limit|series|induction|"
                         r"équation|résoudre|démonstration|dérivée|fonction|somme|"
                         r"gleichung|lösung|beweis|ableitung|funktion|dreieck|"
                         r"ecuación|solución|demostración|derivada|función)s?\b", re.I)
_EQUATION_LINE = re.compile(r"[\w)]\s*[=<>≤≥≡]\s*[-\w(\\]|\d\s*[-+*/^×·]\s*\d")


@dataclass
class MathDecision:
    """The detector's verdict on one document, with the signals behind it (recorded with the routing)."""
    is_math: bool
    score: float
    latex_density: float
    equation_lines: float
    vocab_per_100_words: float

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def math_score(text: str, threshold: float = 0.35) -> MathDecision:
    """Score in [0, 1]: LaTeX share of the characters, share of lines that look like equations, and math
    vocabulary density, each saturating, combined with weights 0.5 / 0.3 / 0.2."""
    n = max(1, len(text))
    latex = sum(len(m.group(0)) for m in _MATH_SPAN.finditer(text)) / n
    lines = [ln for ln in text.splitlines() if ln.strip()]
    eq = sum(1 for ln in lines if _EQUATION_LINE.search(ln)) / max(1, len(lines))
    words = max(1, len(re.findall(r"\w+", text)))
    vocab = 100 * len(_MATH_WORDS.findall(text)) / words
    score = 0.5 * min(1.0, latex / 0.15) + 0.3 * min(1.0, eq / 0.4) + 0.2 * min(1.0, vocab / 3.0)
    return MathDecision(score >= threshold, score, latex, eq, vocab)


# ---------------------------------------------------------------- boilerplate

_BOILER = re.compile(
    r"\b(?:posted|reply\s*#|beitrag von|publié|publicado|updated:|last edited|reading time|share:|tags:|"
    r"\d+\s+comments?|log\s?in|register|sign up|subscribe|cookie|privacy|terms|impressum|datenschutz|"
    r"sponsored|advertisement|anzeige|publicidad|publicité|related:|buy our|nach oben|all rights reserved)",
    re.I)
_NAV_SEP = re.compile(r"\s(?:\||>>?|›|»|/)\s")
_BUTTONS = re.compile(r"\[[^\]]{1,30}\]")


def is_boilerplate(line: str) -> bool:
    """A page-furniture line: navigation breadcrumbs, buttons, post metadata, ads, legal or cookie footers.
    A line carrying math ($, \\, an equation) is never boilerplate."""
    s = line.strip()
    if not s or "$" in s or "\\" in s:
        return False
    if len(_NAV_SEP.findall(s)) >= 2 or len(_BUTTONS.findall(s)) >= 2:
        return True
    return bool(_BOILER.search(s)) and len(s) < 200


def strip_boilerplate(text: str) -> str:
    """`text` without its boilerplate lines (kept line structure otherwise)."""
    return "\n".join(ln for ln in text.splitlines() if not is_boilerplate(ln))
