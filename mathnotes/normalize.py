"""Math normaliser: LaTeX and number formats to one canonical plain form, number and formula extraction,
final-answer extraction and answer comparison.

Surface variants compare equal after normalisation: `1,000` = `1000` = `1{,}000`; `\\frac{1}{2}` = `\\dfrac12` =
`1/2` = `0.5`; `\\left( x \\right)` = `(x)`; `a \\cdot b` = `a*b`; `x^{2}` = `x^2`; `6\\,\\text{cm}` = `6 cm`;
`24 cm^2` = `24 \\text{cm}^2` (the exponent belongs to the unit, it is not a number of its own).
A final answer is found in `\\boxed{...}` (nested braces allowed), after "final answer"/"the answer is"/"answer:"
(also French, German, Spanish markers), or as `= X.` on the last line.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

# ---------------------------------------------------------------- LaTeX -> plain


def read_group(s: str, i: int) -> tuple[str, int]:
    """The argument starting at s[i]: a {...} group (nested) or one token; returns (content, index after it)."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return "", i
    if s[i] == "{":
        depth, j = 0, i
        while j < len(s):
            if s[j] == "{" and (j == 0 or s[j - 1] != "\\"):
                depth += 1
            elif s[j] == "}" and s[j - 1] != "\\":
                depth -= 1
                if depth == 0:
                    return s[i + 1:j], j + 1
            j += 1
        return s[i + 1:], len(s)          # unbalanced: take the rest rather than fail
    if s[i] == "\\":
        m = re.match(r"\\[A-Za-z]+|\\.", s[i:])
        return m.group(0), i + len(m.group(0))
    return s[i], i + 1


_SIMPLE = re.compile(r"^(?:-?\d+(?:\.\d+)?|[A-Za-z]|[A-Za-z]_?\d|\\?[A-Za-z]+)$")


def _wrap(x: str) -> str:
    x = x.strip()
    return x if _SIMPLE.match(x) else f"({x})"


def _expand_commands(s: str) -> str:
    """\\frac, \\sqrt, \\text-like wrappers, \\boxed: rewritten recursively with their (nested) arguments."""
    out, i = [], 0
    while i < len(s):
        m = re.compile(r"\\(d|t|c)?frac|\\sqrt|\\(?:text|mathrm|mathbf|textbf|textit|mathit|operatorname|mbox|"
                       r"boxed|fbox)\b").match(s, i)
        if not m:
            out.append(s[i])
            i += 1
            continue
        name = m.group(0)
        if name.endswith("frac"):
            a, j = read_group(s, m.end())
            b, j = read_group(s, j)
            out.append(f"{_wrap(_expand_commands(a))}/{_wrap(_expand_commands(b))}")
        elif name == "\\sqrt":
            j = m.end()
            if j < len(s) and s[j] == "[":
                k = s.find("]", j)
                j = k + 1 if k > 0 else j
            a, j = read_group(s, j)
            out.append(f"sqrt({_expand_commands(a)})")
        else:                                         # wrappers keep their content only
            a, j = read_group(s, m.end())
            out.append(_expand_commands(a))
        i = j
    return "".join(out)


_DELIMS = re.compile(r"\$\$|\$|\\\[|\\\]|\\\(|\\\)")
_DROP = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg|displaystyle|textstyle|"
                   r"limits|nolimits)(?![A-Za-z])|\\begin\{[^}]*\}|\\end\{[^}]*\}|&")
_SYMBOLS = [
    (r"\\(?:cdot|times|ast)(?![A-Za-z])", "*"), (r"\\div(?![A-Za-z])", "/"),
    (r"\\(?:leq?|leqslant)(?![A-Za-z])", "<="), (r"\\(?:geq?|geqslant)(?![A-Za-z])", ">="),
    (r"\\(?:neq?)(?![A-Za-z])", "!="), (r"\\equiv(?![A-Za-z])", "≡"), (r"\\pm(?![A-Za-z])", "±"),
    (r"\\(?:to|rightarrow|longrightarrow)(?![A-Za-z])", "->"), (r"\\(?:Rightarrow|implies)(?![A-Za-z])", "=>"),
    (r"\\(?:dots|ldots|cdots)(?![A-Za-z])", "..."), (r"\\infty(?![A-Za-z])", "inf"), (r"\\%", "%"),
    (r"\\(?:,|;|:|!|quad|qquad|enspace| )", " "), (r"~", " "), (r"\\\\", " "),
    (r"\\pmod\s*\{([^{}]*)\}", r"(mod \1)"), (r"\\bmod(?![A-Za-z])", " mod "),
    (r"\\(?:circ|degree)(?![A-Za-z])", "°"),
]
_SYMBOLS_RE = [(re.compile(p), r) for p, r in _SYMBOLS]
_UNICODE = str.maketrans({"−": "-", "–": "-", "×": "*", "·": "*", "⋅": "*", "÷": "/", "≤": "<=", "≥": ">=",
                          "≠": "!=", "\u00a0": " ", "\u202f": " ", "\u2009": " ", "²": "^2", "³": "^3", "∞": "inf"})


def latex_to_plain(s: str) -> str:
    """Canonical plain text of a (LaTeX-bearing) string; idempotent. Whitespace is collapsed, not removed."""
    s = s.translate(_UNICODE)
    s = re.sub(r"(\d)\{,\}(\d{3})", r"\1\2", s)                      # 1{,}000
    s = re.sub(r"(\d)\\,(\d{3})(?!\d)", r"\1\2", s)                  # 1\,000
    s = re.sub(r"\\[dt]binom", r"\\binom", s)
    s = _DELIMS.sub(" ", s)
    s = re.sub(r"(\d)\s*\\[dt]?frac\s*\{(\d+)\}\s*\{(\d+)\}", r"\1 \2/\3", s)   # mixed number 3\frac{1}{2}
    for rx, rep in _SYMBOLS_RE:
        s = rx.sub(rep, s)
    s = _DROP.sub(" ", s)
    s = _expand_commands(s)
    s = re.sub(r"([\^_])\{([^{}]*)\}", lambda m: m.group(1) + _wrap(m.group(2)), s)
    s = re.sub(r"\\([A-Za-z]+)", r"\1", s)                          # \pi -> pi, \sum -> sum
    s = s.replace("{", "").replace("}", "")
    s = re.sub(r"(?<![\d.])(\d{1,3})((?:,\d{3})+)(?![\d,]*\d)", lambda m: m.group(1) + m.group(2).replace(",", ""),
               s)                                                       # 1,000,000
    if _spaced_thousands(s):                                            # 1 000 000
        s = re.sub(r"(?<=\d) (?=\d{3}(?!\d))", "", s)
    s = re.sub(r"\s+", " ", s)
    return re.sub(r"([(\[]) | ([)\]])", r"\1\2", s).strip()


def _spaced_thousands(s: str) -> bool:
    """Does `s` group thousands with spaces? Only if no digit group after a space is shorter than three digits
    (never "3 5", "6 8" or the mixed number "3 1/2")."""
    return bool(re.search(r"(?<![\d.])\d{1,3}(?: \d{3})+(?![\d.])", s)) and not re.search(r"\d \d{1,2}(?!\d)", s)


_TEXT_ARG = re.compile(r"\\(?:text|textrm|textit|textbf|mbox)\s*\{[^{}]*\}")


def formula_key(s: str) -> str:
    """Comparison key of a formula: plain form without whitespace, implicit multiplication, end punctuation and
    prose inside it (`\\text{mínimo en}` is words a translation must translate, not formula)."""
    k = re.sub(r"\s+", "", latex_to_plain(_TEXT_ARG.sub(" ", s)))
    k = re.sub(r"(?<!\d)\*|\*(?!\d)", "", k)                        # a*b = ab, but 2*3 stays (23 is another number)
    k = re.sub(r"\((\w)\)", r"\1", k)                               # (x) = x
    return k.rstrip(".,;:")


# ---------------------------------------------------------------- numbers

#: canonical unit -> (dimension, factor to the dimension's base unit)
UNITS: dict[str, tuple[str, float]] = {
    "mm": ("length", 1e-3), "cm": ("length", 1e-2), "km": ("length", 1e3), "m": ("length", 1.0),
    "mm^2": ("area", 1e-6), "cm^2": ("area", 1e-4), "m^2": ("area", 1.0), "km^2": ("area", 1e6),
    "cm^3": ("volume", 1e-3), "m^3": ("volume", 1e3), "ml": ("volume", 1e-3), "l": ("volume", 1.0),
    "mg": ("mass", 1e-3), "kg": ("mass", 1e3), "g": ("mass", 1.0),
    "s": ("time", 1.0), "min": ("time", 60.0), "h": ("time", 3600.0),
    "%": ("ratio", 0.01), "°": ("angle", 1.0),
}
_UNIT_WORDS = {
    "millimeters": "mm", "millimetres": "mm", "millimeter": "mm", "millimetre": "mm", "centimeters": "cm",
    "centimetres": "cm", "centimeter": "cm", "centimetre": "cm", "zentimeter": "cm", "kilometers": "km",
    "kilometres": "km", "kilometer": "km", "kilometre": "km", "meters": "m", "metres": "m", "meter": "m",
    "metre": "m", "mètres": "m", "metros": "m", "kilograms": "kg", "kilogram": "kg", "grams": "g", "gram": "g",
    "seconds": "s", "second": "s", "sec": "s", "minutes": "min", "minute": "min", "hours": "h", "hour": "h",
    "percent": "%", "per cent": "%", "pour cent": "%", "prozent": "%", "por ciento": "%", "degrees": "°",
    "degree": "°", "liters": "l", "litres": "l", "liter": "l", "litre": "l", "ml": "ml",
    "mm": "mm", "cm": "cm", "km": "km", "mg": "mg", "kg": "kg", "min": "min", "%": "%", "°": "°",
}
_UNIT_RE = re.compile(r"\s?(?P<u>" + "|".join(sorted(map(re.escape, _UNIT_WORDS), key=len, reverse=True)) +
                      r")(?![A-Za-z])(?:\s?\^\s?\(?(?P<e>[23])\)?)?", re.I)


@dataclass(frozen=True)
class Num:
    """A number found in text: signed value, the raw spelling, an optional canonical unit, and `parts` (the
    numerator/denominator of a fraction, or both readings of an ambiguous "2,5") that may also vouch for it."""
    value: float
    raw: str
    unit: str | None = None
    parts: tuple[float, ...] = ()

    def label(self) -> str:
        v = int(self.value) if self.value == int(self.value) and abs(self.value) < 1e15 else self.value
        return f"{self.raw!r}" + ("" if str(v) == self.raw.replace(",", "") else f" (= {v})")


_NUMBER = re.compile(r"(?P<sign>-\s?)?(?<![\w.])(?P<a>\d+(?:\.\d+)?)(?:\s?/\s?(?P<b>\d+(?:\.\d+)?)(?![\w.(]))?"
                     r"|(?P<sign2>-)?(?<![\w\d])(?P<d>\.\d+)")
_MIXED = re.compile(r"(?<![\w.,/])(\d+) (\d+)/(\d+)(?![\w.,(/])")
_DECIMAL_COMMA = re.compile(r"(?<![\w.,])(\d+),(\d{1,2}|\d{4,})(?![\d,])")
_UNARY_BEFORE = re.compile(r"(?:^|[(\[=,;:<>≡±]|\b(?:or|and|is|ou|et|oder|und|o|y|est|ist|es))\s*$", re.I)


def numbers(text: str, decimal_comma: bool = False) -> list[Num]:
    """Numbers of `text` (LaTeX allowed): mixed numbers ("3 1/2") first, then the rest in order. With
    `decimal_comma`, "2,5" reads as 2.5 (or as 2 and 5)."""
    plain = latex_to_plain(text)
    out: list[Num] = []
    if decimal_comma:
        for m in _DECIMAL_COMMA.finditer(plain):
            a, b = int(m.group(1)), int(m.group(2))
            out.append(Num(float(f"{a}.{m.group(2)}"), m.group(0), None, (float(a), float(b))))
        plain = _DECIMAL_COMMA.sub(lambda m: " " * len(m.group(0)), plain)
    for m in _MIXED.finditer(plain):                     # "3 1/2" = 3.5 (from 3\frac{1}{2} or written so)
        whole, frac = float(m.group(1)), float(m.group(2)) / float(m.group(3))
        out.append(Num(whole + frac, m.group(0), None, (whole, frac)))
    plain = _MIXED.sub(lambda m: " " * len(m.group(0)), plain)
    unit_end = -1
    for m in _NUMBER.finditer(plain):
        if m.start() < unit_end:
            continue                     # the exponent of a unit ("cm^2") is part of the unit
        num, unit_end = _num_from_match(plain, m)
        out.append(num)
    return out


def _num_from_match(plain: str, m: re.Match) -> tuple[Num, int]:
    """The number of match `m` and the end of the unit that follows it (-1 when none)."""
    if m.group("d") is not None:
        sign = -1.0 if m.group("sign2") else 1.0
        return Num(sign * float(m.group("d")), m.group(0)), -1
    a = float(m.group("a"))
    value, parts = a, ()
    if m.group("b") is not None and float(m.group("b")) != 0:
        b = float(m.group("b"))
        value, parts = a / b, (a, b)
    unary = m.group("sign") is not None and bool(_UNARY_BEFORE.search(plain[:m.start()]))
    value = -value if unary else value
    unit, unit_end = None, -1
    um = _UNIT_RE.match(plain, m.end())
    if um and m.group("b") is None:
        unit_end = um.end()
        unit = _UNIT_WORDS[um.group("u").lower()] + (f"^{um.group('e')}" if um.group("e") else "")
        unit = unit if unit in UNITS else unit.split("^")[0]
    raw = m.group(0).lstrip("- ") if not unary else m.group(0).replace(" ", "")
    return Num(value, raw, unit, parts), unit_end


def _close(x: float, y: float) -> bool:
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


def _decimals(raw: str) -> int:
    m = re.search(r"\.(\d+)$", raw.split("/")[0])
    return len(m.group(1)) if m else 0


def value_matches(want: Num, have: Num, signed: bool = False) -> bool:
    """Does `have` state the number `want` states? Units must agree (or convert) when both sides give one; a
    rounded decimal (0.167, at least two places) stands for the exact value (1/6)."""
    a, b = (want.value, have.value) if signed else (abs(want.value), abs(have.value))
    if want.unit and have.unit and want.unit != have.unit:
        (da, fa), (db, fb) = UNITS.get(want.unit, ("?", 1)), UNITS.get(have.unit, ("!", 1))
        return da == db and math.isclose(a * fa, b * fb, rel_tol=1e-6)
    if _close(a, b):
        return True
    if want.unit == "%" or have.unit == "%":                          # 40% = 0.4
        if _close(a / 100, b) if want.unit == "%" else _close(a, b / 100):
            return True
    d, dw = _decimals(have.raw), _decimals(want.raw)
    return (d >= 2 and _close(round(a, d), b)) or (dw >= 2 and _close(round(b, dw), a))


def number_found(want: Num, pool: list[Num]) -> bool:
    """`want` appears in `pool`: as a value, or (a fraction / ambiguous decimal) through all of its parts."""
    if any(value_matches(want, h) for h in pool):
        return True
    if want.parts:
        return all(any(_close(p, abs(h.value)) or any(_close(p, q) for q in h.parts) for h in pool)
                   for p in want.parts)
    return any(any(_close(abs(want.value), q) for q in h.parts) for h in pool)


# ---------------------------------------------------------------- formulas

_FORMULA = re.compile(r"\$\$(?P<dd>.+?)\$\$|\\\[(?P<br>.+?)\\\]|\\\((?P<pa>.+?)\\\)|"
                      r"\\begin\{(?P<env>[^}]+)\}(?P<body>.*?)\\end\{(?P=env)\}|"
                      r"(?<![\\$])\$(?P<d>[^$]+?)(?<!\\)\$", re.S)
_RELATION = re.compile(r"=|<=|>=|<|>|≡|!=|->|=>")


def formulas(text: str) -> list[str]:
    """The formulas of `text` worth checking: display and inline math with a relation or an operator between
    operands (a lone `$6$` or `$n$` is a number or a name, which the number check covers); an environment
    (align, cases) gives one formula per row."""
    out: list[str] = []
    for m in _FORMULA.finditer(text):
        body = next(g for g in (m.group("dd"), m.group("br"), m.group("pa"), m.group("body"), m.group("d"))
                    if g is not None)
        rows = re.split(r"\\\\", body) if m.group("env") or "\\\\" in body else [body]
        for row in rows:
            inner = re.sub(r"\\begin\{[^}]*\}|\\end\{[^}]*\}", " ", row)
            key = formula_key(inner)
            if len(key) >= 3 and (_RELATION.search(key) or re.search(r"[\w)]\s*[-+*/^]\s*[\w(]", key)):
                out.append(row.strip())
    return out


def formula_found(formula: str, rewrite_key: str) -> bool:
    """Is `formula` in the rewrite (given as one formula_key of the whole rewrite)? A chain `a = b = c` also
    counts when each of its sides appears (a note may split a chain into steps)."""
    key = formula_key(formula)
    if key in rewrite_key:
        return True
    sides = [x for x in re.split(r"=|≡", key) if x]
    return len(sides) >= 3 and all(side in rewrite_key for side in sides)


# ---------------------------------------------------------------- final answers

_MARKERS = re.compile(
    r"(?:final\s+answer|the\s+answer\s+is|réponse\s+finale|respuesta\s+final|endergebnis|"
    r"(?:^|\n)[ \t*#>_-]*(?:answer|ans|réponse|ergebnis|antwort|respuesta|resultado|solution)(?=\s*[:=\d$\\-]))"
    r"[ \t*#_]*(?:is|est|ist|es)?[ \t]*[:=-]?[ \t*_]*(?P<rest>[^\n]*)", re.I)


def boxed(text: str) -> list[str]:
    """Contents of every `\\boxed{...}` / `\\fbox{...}` in order, nested braces kept intact."""
    out, i = [], 0
    while True:
        m = re.compile(r"\\(?:boxed|fbox)\s*(?=\{)").search(text, i)
        if not m:
            return out
        content, i = read_group(text, m.end())
        out.append(content.strip())


def final_answer(text: str) -> str | None:
    """The final answer a text states: its last \\boxed{}, else the last "final answer"/"the answer is"/
    "Answer:" (the next line when the marker ends its line), else `= X.` on the last line."""
    b = boxed(text)
    if b:
        return b[-1]
    found = None
    for m in _MARKERS.finditer(text):
        rest = m.group("rest").strip()
        if not rest:                                      # a heading: the answer is on the next line
            nxt = text[m.end():].lstrip("\n").split("\n", 1)[0]
            rest = nxt.strip()
        rest = rest.strip(" .*_")
        if rest and re.search(r"[\w$\\]", rest):
            found = rest
    if found is not None:
        return found
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        m = re.search(r"=\s*([^=]+?)\s*\.?\s*\$*\s*$", lines[-1])
        if m and re.search(r"\d", m.group(1)):
            return m.group(1).strip(" $.")
    return None


_LHS = re.compile(r"(?:\([A-Za-z](?:\s*,\s*[A-Za-z])+\)|\b[A-Za-z](?:_\w+)?(?:\([A-Za-z0-9]\))?)\s*=(?!=)")
_MATH_WORDS = {"sqrt", "pi", "sin", "cos", "tan", "log", "ln", "exp", "inf", "mod", "e", "i"}
_EQUALS_WORDS = re.compile(r"\b(?:equals|is equal to|est égale? à|ist gleich|es igual a)\b", re.I)
_LIST_SEP = re.compile(r"\s+(?:or|and|ou|et|oder|und|o|y)\s+|[,;]", re.I)


def answer_atoms(ans: str) -> str:
    """An answer reduced to what it asserts: no LHS names (`x =`), prose words or units; only math left."""
    s = latex_to_plain(ans.split(";")[0])                 # "n^2; for example ...": the claim, not the example
    s = _EQUALS_WORDS.sub(" = ", s)
    s = re.sub(r"\(mod \d+\)", " ", s)
    s = _LHS.sub(" ", s)
    s = re.sub(r"\s+(?:or|and|ou|et|oder|und|o|y)\s+", ", ", s, flags=re.I)   # "x = 2 or x = 3" lists values
    s = re.sub(r"(?<=\d)" + _UNIT_RE.pattern, " ", s, flags=re.I)      # "24 cm^2": the 2 is no number
    s = re.sub(r"[A-Za-zÀ-ÿ]{2,}", lambda m: m.group(0) if m.group(0).lower() in _MATH_WORDS else " ", s)
    return re.sub(r"\s+", " ", s).strip(" .:")


def _result_part(ans: str) -> str | None:
    """The right-hand side of a single relation chain ("7^2023 ≡ 3 (mod 10)" -> "3"), or None."""
    plain = _EQUALS_WORDS.sub(" = ", latex_to_plain(ans.split(";")[0]))
    if _LIST_SEP.search(plain) or not re.search(r"=|≡", plain):
        return None
    return re.split(r"=|≡", plain)[-1]


def answers_equal(a: str, b: str) -> bool:
    """Do two stated answers agree? Equal keys, or the same numbers (as a multiset, signs and fractions
    normalised) when nothing but numbers is left, compared also on the result side of a relation chain."""
    cands_a = [a] + [r for r in [_result_part(a)] if r]
    cands_b = [b] + [r for r in [_result_part(b)] if r]
    return any(_atoms_equal(x, y) for x in cands_a for y in cands_b)


def _atoms_equal(a: str, b: str) -> bool:
    ka, kb = formula_key(answer_atoms(a)), formula_key(answer_atoms(b))
    if ka and ka == kb:
        return True
    letters = re.compile(r"[A-Za-z]")
    if letters.search(re.sub(r"sqrt|pi|inf", "", ka)) or letters.search(re.sub(r"sqrt|pi|inf", "", kb)):
        parts_a = sorted(p for p in re.split(r"[,;]", ka) if p)
        return bool(parts_a) and parts_a == sorted(p for p in re.split(r"[,;]", kb) if p)
    na = sorted(n.value for n in _answer_numbers(a))
    nb = sorted(n.value for n in _answer_numbers(b))
    if _same_numbers(na, nb):
        return True
    pa, pb = "%" in latex_to_plain(a), "%" in latex_to_plain(b)      # 10% = 0.1
    return pa != pb and _same_numbers([x / 100 for x in na] if pa else na, [x / 100 for x in nb] if pb else nb)


def _same_numbers(na: list[float], nb: list[float]) -> bool:
    return bool(na) and len(na) == len(nb) and all(_close(x, y) or _rounded(x, y) for x, y in zip(na, nb))


def _answer_numbers(ans: str) -> list[Num]:
    return numbers(answer_atoms(ans))


def _rounded(x: float, y: float) -> bool:
    for d in (2, 3, 4):
        if _close(round(x, d), y) or _close(round(y, d), x):
            return True
    return False
