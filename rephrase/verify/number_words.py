"""Readers of ids, digits and number words for the number normaliser (rephrase.verify.numbers).

Ids ("COVID-19", "A380"), digit numbers with their scale, unit and currency ("1.5 million", "3.5 km", "$3"),
digit fractions ("2/3"), and numbers in words: cardinals ("twelve hundred", "two-two-five"), fractions
("two thirds", "a quarter of a percentage point"), decimals ("nine point five eight"), ordinals ("twenty-first")
and multiples ("twice").
"""
from __future__ import annotations

import re

from rephrase.verify.quantity import Quantity, _blank
from rephrase.verify.units import (CURRENCY_PREFIX, FRACTIONS, NAME_RE, ORDINALS, SCALE_ABBREV, SCALES, SMALL, TENS,
                                   UNITS, match_unit)


# ---------------------------------------------------------------- ids ("COVID-19", "A380")
_ALNUM = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
_NUM_SUFFIX = re.compile(r"^\d+(?:\.\d+)?-?(?P<suf>[A-Za-z]+)$")
_COMPOUND = re.compile(r"^\d+(?:\.\d+)?(?:st|nd|rd|th|0s)?-[A-Za-z]")
#: "13th-15th", "1280s-1290s": a range of ordinals or decades, read by the digit pass (not an id)
_SUFFIX_RANGE = re.compile(r"^\d+(?:st|nd|rd|th|s)-\d+(?:st|nd|rd|th|s)$")


_THOUSANDER = re.compile(r"(?<![\w.,])(\d{1,2},?000)ers?\b")
_E_NOTATION = re.compile(r"(?<![\w.])(?P<m>\d+(?:\.\d+)?)[eE](?P<e>[+-]?\d{1,3})(?![\w.])")


_LSD_NUM = r"(?:\d{1,2}|(?:(?:twenty|thirty|forty|fifty)-?)?(?:one|two|three|four|five|six|seven|eight|nine)|ten|" \
           r"eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty)"
#: a pre-decimal amount: "7s 6d", "7s. 6d.", "seven shillings and sixpence", "7 shillings and 6 pence", "sixpence",
#: "threepence", "half a crown" (2s 6d)
_LSD = re.compile(
    rf"(?<![\w.£$€])(?:(?P<s>{_LSD_NUM})(?:\s?s\.?|\s+shillings?)(?:,?\s+(?:and\s+)?|\s?(?=\d))"
    rf"(?:(?P<d>{_LSD_NUM})(?:\s?d\b\.?|[\s-]?pence\b)|(?P<dw>{_LSD_NUM})pence\b)"
    rf"|(?P<dw1>{_LSD_NUM})pence\b"
    r"|(?P<crown>\b(?:half[\s-]+a[\s-]+crown|a\s+half[\s-]crown)\b))", re.IGNORECASE)


def _lsd_value(w: str) -> int:
    if w.isdigit():
        return int(w)
    return sum(SMALL.get(x, TENS.get(x, 0)) for x in re.split(r"-", re.sub(r"(?<=[a-z])(?=one|two|three|four|five|six|"
                                                                            r"seven|eight|nine)", "-", w.lower())))


def _pre_decimal(text: str) -> tuple[list[Quantity], str]:
    """Pre-decimal money in old pence: "7s 6d" = "seven shillings and sixpence" = 90d; "half a crown" = 30d.
    The total is required, its shilling and pence parts are soft (as a compound measure's parts)."""
    out = []
    for mt in _LSD.finditer(text):
        if mt.group("crown"):
            out.append(Quantity("num", 30.0, unit="old_penny", text=mt.group(0), start=mt.start(), end=mt.end()))
            continue
        if mt.group("s") is None and re.fullmatch(r"\d+", mt.group("dw1") or ""):
            continue  # "10pence" glued digits: a modern price, not read here
        parts = []
        if mt.group("s"):
            parts.append(Quantity("num", float(_lsd_value(mt.group("s"))), unit="shilling", text=mt.group("s"),
                                  start=mt.start("s"), end=mt.end("s"), soft=True))
        g = next(k for k in ("d", "dw", "dw1") if mt.group(k))
        parts.append(Quantity("num", float(_lsd_value(mt.group(g))), unit="old_penny", text=mt.group(g),
                              start=mt.start(g), end=mt.end(g), soft=True))
        total = sum(float(q.value) * (12 if q.unit == "shilling" else 1) for q in parts)
        out += parts + [Quantity("num", total, unit="old_penny", text=mt.group(0), start=mt.start(), end=mt.end(),
                                 parts=tuple(parts) if len(parts) > 1 else ())]
    return out, _blank(text, out)


def _ids(text: str) -> tuple[list[Quantity], str]:
    lsd, text = _pre_decimal(text)  # "7s 6d" before "6d" is read as an id
    # "1e12", "6.02e23": a number in scientific notation (one trillion), not an id
    out = lsd + [Quantity("num", float(m.group(0)), text=m.group(0), start=m.start(), end=m.end())
           for m in _E_NOTATION.finditer(text)]
    # "the first 8,000er": a peak over 8,000 metres (soft: it may support an "8,000", and is never required)
    out += [Quantity("num", float(m.group(1).replace(",", "")), text=m.group(0), start=m.start(), end=m.end(),
                     soft=True) for m in _THOUSANDER.finditer(text)]
    text = _blank(text, out)
    for mt in _ALNUM.finditer(text):
        tok = mt.group(0)
        if not (re.search(r"\d", tok) and re.search(r"[A-Za-z]", tok)):
            continue
        m = _NUM_SUFFIX.match(tok)
        if m and _benign_suffix(tok, m.group("suf")):
            continue  # "5km", "3rd", "1990s": the digit pass reads these
        if _is_unit_symbol(tok):
            continue  # "km2" after a number is a unit, not an id
        if re.fullmatch(r"(?:s|h|m|kg|mol|yr)-[123]", tok):
            continue  # a unit exponent ("m s-1"), read with its number by the digit pass
        iso = _isotope(tok)
        if iso:  # "U-235" = "uranium-235" = "U235": one isotope, however the element is written
            out.append(Quantity("id", iso, text=tok, start=mt.start(), end=mt.end()))
            continue
        pm = re.fullmatch(r"(?i:top|under|over|u)-(\d{1,3})s?", tok)
        if pm:  # "top-10", "under-16s": the number, not a name ("the top ten", "children under 16")
            out.append(Quantity("num", float(pm.group(1)), text=tok, start=mt.start(), end=mt.end()))
            continue
        if re.fullmatch(r"\d+(?:\.\d+)?-\d+(?:\.\d+)?(?:m|mn|bn|k|tn)", tok) and _currency_before(text, mt.start()):
            continue  # "£5-7m": a range of money (digit pass), not an id
        if _COMPOUND.match(tok) or _SUFFIX_RANGE.match(tok):
            continue  # "225-day", "3-year-old", "4th-century": a number in a compound adjective (digit pass)
        tok = _id_head(tok)
        out.append(Quantity("id", tok.lower(), text=tok, start=mt.start(), end=mt.start() + len(tok)))
    return out, _blank(text, out)


#: isotopes by element symbol and name, with the span of mass numbers they take (so "U-16", a team "under 16", is no
#: uranium): "less than 20% U-235" = "less than twenty per cent uranium-235"
_ISOTOPES = {"U": ("uranium", 210, 245), "Pu": ("plutonium", 228, 247), "Th": ("thorium", 208, 238),
             "C": ("carbon", 8, 22), "Co": ("cobalt", 50, 75), "I": ("iodine", 108, 145),
             "Cs": ("caesium", 112, 152), "Sr": ("strontium", 73, 107), "Ra": ("radium", 201, 235),
             "Rn": ("radon", 193, 231), "Am": ("americium", 223, 252), "Tc": ("technetium", 85, 120),
             "K": ("potassium", 32, 57), "H": ("hydrogen", 1, 7)}
_ISOTOPE_NAMES = {name: sym for sym, (name, _, _) in _ISOTOPES.items()} | {"cesium": "Cs"}


def _isotope(tok: str) -> str | None:
    """The canonical "u-235" of an isotope token ("U-235", "U235", "uranium-235"), or None."""
    m = re.fullmatch(r"([A-Z][a-z]?|[A-Za-z][a-z]{4,11})-?(\d{1,3})", tok)
    if not m:
        return None
    sym = m.group(1) if m.group(1) in _ISOTOPES else _ISOTOPE_NAMES.get(m.group(1).lower())
    if sym is None or (m.group(1) == sym and len(sym) == 1 and "-" not in tok and int(m.group(2)) < 100):
        return None  # ("C14", "H2", "K9": a one-letter code glued to a short number is an id; "U235" is uranium)
    lo, hi = _ISOTOPES[sym][1:]
    return f"{sym.lower()}-{int(m.group(2))}" if lo <= int(m.group(2)) <= hi else None


def _id_head(tok: str) -> str:
    """An id glued to a word by a hyphen is the id alone: "CO2-grabbing" -> "CO2", "A380-based" -> "A380"
    ("COVID-19" and "B-52" keep their parts: the digits are part of the name)."""
    parts = tok.split("-")
    while len(parts) > 1 and parts[-1].isalpha() and parts[-1].islower() and len(parts[-1]) >= 3:
        head = "-".join(parts[:-1])
        if not (re.search(r"\d", head) and re.search(r"[A-Za-z]", head)):
            break
        parts.pop()
    return "-".join(parts)


def _is_unit_symbol(tok: str) -> bool:
    um = match_unit(tok, 0)
    return um is not None and um[1] == len(tok)


def _benign_suffix(tok: str, suf: str) -> bool:
    if suf in ("st", "nd", "rd", "th", "s", "x", "M", "ST", "ND", "RD", "TH") or suf.lower() in SCALE_ABBREV:
        # "x": "92x Earth's"; "15TH": an ordinal in capitals
        return True
    return match_unit(suf, 0) is not None and match_unit(suf, 0)[1] == len(suf)


# ---------------------------------------------------------------- regnal numbers ("Gregory XIII")
_REGNAL = re.compile(r"\b(?:[A-Z][a-z]{2,}|[A-Z]{3,})\s+(?P<r>[IVXL]{2,6}|V|X)\b(?![\w-]|'\w)")  # "'Figure II'"
#: a text written all in lower case: "john walter ii" (only numerals that are no word or abbreviation: not "iv", "vi")
_REGNAL_LOWER = re.compile(r"\b[a-z]{3,}\s+(?P<r>ii|iii|vii|viii|xii|xiii|xiv|xvi|xvii|xviii|xix)\b(?![\w-]|'\w)")
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50}


def _roman(r: str) -> int | None:
    vals = [_ROMAN[c] for c in r]
    n = sum(-v if k + 1 < len(vals) and v < vals[k + 1] else v for k, v in enumerate(vals))
    return n if 0 < n < 90 and _to_roman(n) == r else None


def _to_roman(n: int) -> str:
    out = ""
    for v, sym in ((50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")):
        while n >= v:
            out, n = out + sym, n - v
    return out


def _regnal(text: str) -> tuple[list[Quantity], str]:
    """A Roman numeral after a name is an ordinal: "Gregory XIII" = "Gregory the Thirteenth", "World War II" = "the
    Second World War" (a lone "I" is left: mostly the pronoun)."""
    out = []
    for mt in list(_REGNAL.finditer(text)) + list(_REGNAL_LOWER.finditer(text)):
        n = _roman(mt.group("r").upper())
        if n:
            out.append(Quantity("ord", float(n), text=mt.group("r"), start=mt.start("r"), end=mt.end("r")))
    return out, _blank(text, out)


# ---------------------------------------------------------------- digits
_DIGITS = re.compile(r"(?<![\w.])(?:(?<![\d-])-(?=\d))?(?:\d{1,3}(?:(?:,|[ \u00a0\u202f])\d{3})+|\d+)(?:\.\d+)?(?![\d])")
_SCALE_AFTER = re.compile(r"[ \u00a0-]?(?P<w>hundred|thousand|million|billion|trillion|bn|tn)\b|(?P<k>k)\b|"
                          r"(?P<M>(?-i:M))(?![\w.]|\.\w)", re.IGNORECASE)  # "1M+ spectators": M glued is million
_ORD_AFTER = re.compile(r"(?:st|nd|rd|th|ST|ND|RD|TH)\b")  # "the 15TH TO THE 17TH CENTURY" in capitals
_DECADE_AFTER = re.compile(r"'?s\b")
#: "10s. per year": shillings, an abbreviation's point before lower case (not "the 1920s. Then", "in their 20s.")
_SHILLINGS_AFTER = re.compile(r"s\.(?=[ \t]+[a-z])")
_DECADE_BEFORE = re.compile(r"(?:\b(?:the|their|his|her|early|mid|late|our|my|your)[ \t-]+|['\u2019])$", re.IGNORECASE)
_FRACTION = re.compile(r"(?<![\w/.])(\d{1,3})/(\d{1,3})(?![\w/])")


def _fractions(text: str) -> tuple[list[Quantity], str]:
    """"2/3" = two thirds."""
    out = []
    for m in _FRACTION.finditer(text):
        a, b = int(m.group(1)), int(m.group(2))
        if not 0 < a < b:  # "225/45", "24/7": no fraction
            continue
        span = 10 <= a <= 99 and b == a + 1  # "full rate for 24/25": the years 2024/25, or a score of 24 out of 25
        # its parts, the counts "4" and "5" of a "Star rating | 4/5" written "4 of 5 stars" (number_match.covered)
        parts = () if span else tuple(Quantity("num", float(v), text=m.group(0), start=m.start(), end=m.end())
                                      for v in (a, b))
        out.append(Quantity("num", a / b, text=m.group(0), start=m.start(), end=m.end(), soft=span, parts=parts))
        if span:
            out += [Quantity("yy", float(v), text=m.group(0), start=m.start(), end=m.end(), soft=True) for v in (a, b)]
    return out, _blank(text, out)


def _digits(text: str) -> list[Quantity]:
    out: list[Quantity] = []
    for mt in _DIGITS.finditer(text):
        if out and mt.start() < out[-1].end:
            continue  # inside the previous number's unit ("m s-1")
        raw = mt.group(0)
        value = float(re.sub(r"[,\s\u00a0\u202f]", "", raw))
        end = mt.end()
        if _ORD_AFTER.match(text, end) and "." not in raw:
            out.append(Quantity("ord", value, text=raw, start=mt.start(), end=end + 2))
            continue
        sh = _SHILLINGS_AFTER.match(text, end) if "." not in raw and value < 100 else None
        if sh and not _DECADE_BEFORE.search(text[max(0, mt.start() - 8):mt.start()]):
            # "a licence fee of 10s. per year": pre-decimal shillings (an abbreviation's point, then lower case)
            out.append(Quantity("num", value, unit="shilling", text=text[mt.start():sh.end()], start=mt.start(),
                                end=sh.end()))
            continue
        lsd = re.match(r"s(?![\w'])", text[end:]) if "." not in raw and value < 20 else None
        if lsd and _POUNDS_BEFORE.search(text[max(0, mt.start() - 16):mt.start()]):
            # "£4 10s": pounds and shillings (not the decade "the 10s")
            out.append(Quantity("num", value, unit="shilling", text=text[mt.start():end + 1], start=mt.start(),
                                end=end + 1))
            continue
        if _DECADE_AFTER.match(text, end) and value >= 10 and value % 10 == 0:
            out.append(Quantity("decade", value, text=raw, start=mt.start(), end=end + 1))
            continue
        out.append(_with_suffixes(text, Quantity("num", value, text=raw, start=mt.start(), end=end)))
    return out


_POUNDS_BEFORE = re.compile(r"\u00a3\s?\d{1,4}[ \t]+$")
#: after a currency sign a lower-case "m" is million, not metres ("£10 m", "$3m"; "bn", "k" are read already)
_CURRENCY_M = re.compile(r"[ \u00a0]?(?:m|mn|mln)(?![\w\u00b2\u00b3/]|\.\w)")
_INCH_IN_PARENS = re.compile(r"[ \u00a0]?in\.?(?=\s*\))")
_BELOW_ZERO = re.compile(r"\s+below\s+zero\b", re.IGNORECASE)


_CURRENCY_RANGE_BEFORE = re.compile(r"(US\$|[$\u00a3\u20ac])\s?\d+(?:\.\d+)?[-\u2013]$")


def _currency_before(text: str, start: int) -> str | None:
    """The currency (unit) of a sign right before `start`, or before the first end of a range ("£5-7m": the 7 is
    money too)."""
    before = text[max(0, start - 4):start].rstrip()
    sym = next((c for c in CURRENCY_PREFIX if before.endswith(c)), None)
    rm = _CURRENCY_RANGE_BEFORE.search(text[max(0, start - 16):start]) if sym is None else None
    sym = sym or (rm.group(1) if rm else None)
    return CURRENCY_PREFIX[sym] if sym else None


def _with_suffixes(text: str, q: Quantity) -> Quantity:
    """Apply a scale word ("1.5 million"), a unit ("3.5 km") and a currency prefix ("$3")."""
    sm = _SCALE_AFTER.match(text, q.end)
    cm = _CURRENCY_M.match(text, q.end) if not sm and _currency_before(text, q.start) else None
    if cm:
        q.scale = 1e6
        q.value, q.end = float(q.value) * q.scale, cm.end()
    if sm:
        w = (sm.group("w") or sm.group("k") or "million").lower()
        q.scale = SCALES.get(w) or SCALE_ABBREV[w]
        q.value = float(q.value) * q.scale
        q.end = sm.end()
    um = match_unit(text, q.end)
    if um and um[0] == "s" and text[:um[1]].lower().endswith("second") and float(q.value).is_integer() and (
            1000 <= float(q.value) <= 2100):
        um = None  # "the 1989 second edition": a year and an ordinal, not 1989 seconds
    if um:
        q.unit, q.end = um
    elif _INCH_IN_PARENS.match(text, q.end):  # "50 cm (≈ 19.7 in)": "in" closing a conversion is the inch
        q.unit, q.end = "inch", _INCH_IN_PARENS.match(text, q.end).end()
    bz = _BELOW_ZERO.match(text, q.end) if q.unit in ("deg", "degC", "degF") else None
    if bz:  # "ten degrees below zero (Celsius)" = -10 °C
        q.value, q.end = -abs(float(q.value)), bz.end()
        um = match_unit(text, q.end)
        if um and UNITS[um[0]].dim == "temperature" and q.unit == "deg":
            q.unit, q.end = um
    if q.unit is None:
        q.unit = _currency_before(text, q.start)
    af = _AND_A_FRACTION.match(text, q.end) if q.unit else None
    if af:  # "eight hours and a quarter" = 8.25 h
        q.value, q.end = float(q.value) + (0.5 if af.group(1).lower() == "half" else 0.25), af.end()
    q.text = text[q.start:q.end]
    return q


_AND_A_FRACTION = re.compile(r"\s+and\s+a\s+(half|quarter)\b(?![\s-]+(?:[a-z]+\s+)?(?:of|dozen|[a-z]+s)\b)", re.IGNORECASE)


# ---------------------------------------------------------------- number words
_WORD = re.compile(r"[A-Za-z]+")
_ARTICLE = {"a", "an"}


def _number_words(text: str) -> list[Quantity]:
    toks = [(m.group(0).lower(), m.start(), m.end()) for m in _WORD.finditer(text)]
    out, i = [], 0
    while i < len(toks):
        q, i = _word_phrase(text, toks, i)
        if q is not None:
            out.append(q)
    return out


SOFT_ORDINALS = frozenset({"first", "second"})
SOFT_COUNTS = frozenset({"two", "three"})
#: adverbs that state a count ("twice" = "two times"); "once" is left out: it mostly means "formerly"
MULTIPLES = {"twice": 2.0, "thrice": 3.0}


#: "for every hundred thousand inhabitants", "per thousand": a bare scale word after a rate word is the number
_RATE_BEFORE = frozenset({"every", "per", "each"})
_BETWEEN_BEFORE = re.compile(r"\bbetween\s+(?:[a-z]+\s+){0,2}$", re.IGNORECASE)
_AND_LATER = re.compile(r"[^.;:!?()\n]*?\band\b", re.IGNORECASE)


def _range_and(text: str, start: int, and_end: int) -> bool:
    """"between six hundred and two thousand metres": after "between", the "and" of a number phrase is the one
    between the range's ends when no other "and" follows in the clause ("between six hundred and two thousand and
    seven hundred thousand" keeps 602,000)."""
    return bool(_BETWEEN_BEFORE.search(text[max(0, start - 40):start])) and not _AND_LATER.match(text, and_end)


_GROUP_SCALES = ("thousand", "million", "billion", "trillion")


def _regrouped_and(words: list[str]) -> int:
    """Where a phrase joined by "and" starts a second number: a scale of a thousand or more that does not fall after
    the "and" ("forty thousand and four hundred thousand" is 40,000 and 400,000; "a hundred and fourteen thousand"
    is one number, 114,000); 0 when none."""
    top = 0.0
    for k, w in enumerate(words):
        if w == "and" and top:
            later = [SCALES[x] for x in words[k + 1:] if x in _GROUP_SCALES]
            if later and max(later) >= top:
                return k
        elif w in _GROUP_SCALES:
            top = SCALES[w] if not top else min(top, SCALES[w])
    return 0


def _is_numword(w: str) -> bool:
    return w in SMALL or w in TENS or w in SCALES or w == "dozen"


def _word_phrase(text: str, toks: list, i: int) -> tuple[Quantity | None, int]:
    """Parse the number-word phrase starting at token i; returns (quantity or None, next index)."""
    w, start, _ = toks[i]
    j = i + 1 if w in _ARTICLE and i + 1 < len(toks) and toks[i + 1][0] in ("hundred", "thousand", "million",
                                                                            "billion", "dozen") else i
    words = []
    # ("and" joins a number's parts only after a scale word: "two hundred and five"; "twenty twenty-four and
    # twenty twenty-five" are two numbers)
    while j < len(toks) and (_is_numword(toks[j][0]) or (toks[j][0] == "and" and words and words[-1] in SCALES
                                                         and j + 1 < len(toks)
                                                         and _is_numword(toks[j + 1][0])
                                                         and toks[j + 1][0] not in SCALES
                                                         and not _range_and(text, start, toks[j][2]))):
        gap = text[toks[j - 1][2]:toks[j][1]] if words else ""
        # "fifty-eight thousand, three hundred and forty": a comma after a scale word groups the hundreds
        comma = (gap.strip() == "," and words[-1] in _GROUP_SCALES and toks[j][0] not in SCALES
                 and "hundred" in [t[0] for t in toks[j + 1:j + 3]])
        if toks[j][0] != "and" and words and not comma and (gap.strip().lower() not in ("", "-", "and")
                                                            or gap.strip() == "-" != gap):  # " - " is a dash
            break
        words.append(toks[j][0])
        j += 1
    cut = _regrouped_and(words)
    if cut:  # "forty thousand and four hundred thousand": two numbers, not 440,000
        words, j = words[:cut], j - (len(words) - cut)
    if (len(words) >= 2 and words[-1] in SMALL and SMALL[words[-1]] < 10 and all(SMALL.get(w, 10) < 10 for w in words)
            and _gap(text, toks[j - 2][2], toks[j - 1][1]) == "" and re.match(r"-[A-Za-z]", text[toks[j - 1][2]:])
            and not (j < len(toks) and _is_numword(toks[j][0]))):
        words, j = words[:-1], j - 1  # "four zero-day vulnerabilities": 4 zero-days, not 40 (a compound term)
    if (not words or words[0] in SCALES and j == i + len(words) and not (
            words[0] == "hundred" and len(words) >= 3 and words[1] == "and")) and not (
            words and i and toks[i - 1][0] in _RATE_BEFORE) and not (
            # "the thousand years that followed", "the hundred days": a scale word the article counts, a unit after it
            len(words) == 1 and i and toks[i - 1][0] == "the" and _unit_name_at(text, toks[j - 1][2])):
        # a bare "million" is not a stated number
        # ("some hundred and fourteen thousand" = 114,000: a bare "hundred" that "and" continues)
        return _ordinal_word(text, toks, i)
    if (len(words) == 2 and 1 <= SMALL.get(words[0], 0) <= 9 and words[1] in TENS and j < len(toks)
            and toks[j][0] in ORDINALS and ORDINALS[toks[j][0]] < 10 and _gap(text, toks[j - 1][2], toks[j][1]) == "-"
            and re.match(r"\s+of\b", text[toks[j][2]:])):
        den = TENS[words[1]] + ORDINALS[toks[j][0]]  # "one seventy-second of an inch" = 1/72
        return Quantity("num", SMALL[words[0]] / den, text=text[start:toks[j][2]], start=start,
                        end=toks[j][2]), j + 1
    if words[-1] in TENS and j < len(toks) and toks[j][0] in ORDINALS and _gap(text, toks[j - 1][2], toks[j][1]) == "-":
        return _ordinal_word(text, toks, j)  # "twenty-first": the ordinal reader adds the tens
    if j < len(toks) and words[-1] in SMALL | TENS and toks[j][0] in FRACTIONS and toks[j][0] not in ("second",) \
            and not re.match(r"-[A-Za-z]", text[toks[j][2]:]):  # "thirty-eight half-barrier crossings": 38
        n = _words_value(words)  # "two thirds"
        return Quantity("num", n / FRACTIONS[toks[j][0]], text=text[start:toks[j][2]], start=start,
                        end=toks[j][2]), j + 1
    if len(words) == 2 and all(SMALL.get(w, 10) < 10 for w in words) and (
            _gap(text, toks[j - 2][2], toks[j - 1][1]) == "-" or words[0] == "zero"):
        words, j = words[:1], j - 1  # "six-four", "six–four" is a score, not 64 ("two-two-five" = 225 stays)
    value, end = _words_value(words), toks[j - 1][2]
    if _spoken_year(words):  # "nineteen forty-six" = 1946, "twenty twenty-four" = 2024
        value = SMALL.get(words[0], 20) * 100 + _words_value(words[1:])
    if len(words) >= 2 and all(SMALL.get(w, 10) < 10 for w in words):
        value = float("".join(str(SMALL[w]) for w in words))  # spoken digit by digit: "two-two-five" = 225
    if i and toks[i - 1][0] == "minus" and _gap(text, toks[i - 1][2], start) == "":
        value, start = -value, toks[i - 1][1]  # "minus ten degrees"
    q = _with_suffixes(text, Quantity("num", float(value), text=text[start:end], start=start, end=end))
    while j < len(toks) and toks[j][1] < q.end:
        j += 1  # words the unit took ("ten degrees below zero Celsius")
    # a bare "one" is mostly a pronoun ("one of the largest"): it may support a "1" but need not be matched
    # "two"/"three" in words are often derived counts a rewrite adds ("two countries, Nepal and China"): soft too
    q.soft = q.unit is None and (words in (["one"], ["zero"]) or (len(words) == 1 and words[0] in SOFT_COUNTS))
    q.soft = q.soft or (words == ["zero"] and text.startswith("-", end))  # "zero-day", "zero-sum": a term
    if j + 2 < len(toks) and [t[0] for t in toks[j:j + 3]] == ["and", "a", "half"]:  # "ten and a half"
        q.value, j = float(q.value) + 0.5, j + 3
        q.end, q.soft = toks[j - 1][2], False  # "two and a half miles" is a stated measure, not a derived count
        q = _with_suffixes(text, q)
    elif j + 1 < len(toks) and toks[j][0] == "point" and _is_numword(toks[j + 1][0]) and toks[j + 1][0] in SMALL:
        k = j + 1
        while k < len(toks) and toks[k][0] in SMALL and SMALL[toks[k][0]] < 10 and _gap(text, toks[k - 1][2], toks[k][1]) == "":
            k += 1  # "nine point five eight" = 9.58, "zero point one four six" = 0.146
        if k == j + 2 or all(SMALL[t[0]] < 10 for t in toks[j + 1:k]):
            digits = "".join(str(SMALL[t[0]]) for t in toks[j + 1:k])
        else:
            digits, k = str(SMALL[toks[j + 1][0]]), j + 2
        q.value = float(f"{int(value)}.{digits}")  # "two point four"
        j = k
        q.end, q.soft = toks[j - 1][2], False
        q = _with_suffixes(text, q)
    return q, j


#: "a third reading", "a fifth time": a noun after "a third" makes it an ordinal, not a fraction ("a third of",
#: "by a third.", "a third more" stay fractions)
_ORDINAL_NOUN = re.compile(r"\s+(?!(?:of|more|less|fewer|as|than|and|or|in|on|at|by|to|from|for|since|over|"
                           r"under|the|a|an|its|their|his|her|this|that|each|per|which|who|is|was|are|were|"
                           # a verb or adverb after "a third" keeps it a fraction ("roughly a third has not yet been
                           # excavated", "a third still waits", "a third remain")
                           r"has|have|had|will|would|can|could|may|might|must|shall|should|did|does|do|still|also|"
                           r"remain|remains|remained|stay|stays|stayed|went|goes|came|comes|became|becomes|lies|lie|"
                           r"live|lives|lived|now|then|never|already|only|just|more|[a-z]+ly)\b)[a-z]{3,}\b")


_AND_A_HALF = re.compile(r"\s+and\s+a\s+half\b", re.IGNORECASE)
_OF_A_UNIT = re.compile(r"\s+of\s+an?(?=\s)", re.IGNORECASE)


def _unit_name_at(text: str, pos: int) -> tuple[str, int] | None:
    """A unit written out as a word ("kilometre", "day", "century") right after `pos`, not a symbol ("a m" is no
    unit)."""
    um = match_unit(text, pos)
    word = text[pos:um[1]].strip(" -") if um else ""
    return um if um and word.replace(" ", "").isalpha() and (len(word) > 3 or NAME_RE.match(text, pos)) else None


def _spoken_year(words: list[str]) -> bool:
    """A year said in two pairs of digits: a teen or "twenty" and then a tens word ("nineteen forty-six",
    "fifteen eighty-two", "twenty twenty-four", "twenty thirteen"); a count is never said so ("sixty-five",
    "twenty-four")."""
    return (2 <= len(words) <= 3 and (10 <= SMALL.get(words[0], 0) <= 19 or words[0] == "twenty")
            and (words[1] in TENS and (len(words) == 2 or 0 < SMALL.get(words[2], 10) < 10)
                 or len(words) == 2 and 10 <= SMALL.get(words[1], 0) <= 19))


def _gap(text: str, a: int, b: int) -> str:
    return text[a:b].strip().lower()


def _words_value(words: list[str]) -> float:
    total, current = 0.0, 0.0
    for w in words:
        if w in SMALL:
            current += SMALL[w]
        elif w in TENS:
            current += TENS[w]
        elif w == "dozen":
            current = max(current, 1) * 12
        elif w == "hundred":
            current = max(current, 1) * 100
        elif w in SCALES:
            total += max(current, 1) * SCALES[w]
            current = 0
    return total + current


_HALF_OF_SCALES = frozenset({"dozen", "hundred", "thousand", "million", "billion", "trillion"})


def _ordinal_word(text: str, toks: list, i: int) -> tuple[Quantity | None, int]:
    w, start, end = toks[i]
    prev = toks[i - 1][0] if i else ""
    # "a single egg" = 1 egg (soft, like "one"); "in any single year" reads as "in a single year" (the same limit
    # on each year: "No worker has ever exceeded 5 mSv in a single year" -> "... above 5 mSv in any single year")
    if w == "single" and prev in _ARTICLE | {"any", "each", "one"}:
        um = _unit_name_at(text, end)
        if um:  # "a single gram" = 1 g, as "one gram"
            return Quantity("num", 1.0, unit=um[0], text=text[start:um[1]], start=start, end=um[1]), i + 2
        return Quantity("num", 1.0, text=w, start=start, end=end, soft=True), i + 1
    if w == "quarterly":  # "quarterly updates" = four times a year (soft: it may support a "four", never required)
        return Quantity("num", 4.0, text=w, start=start, end=end, soft=True), i + 1
    if w in MULTIPLES:
        # soft: "revised twice, in 2008 and 2019" counts what the years state; it states a fact only when matched
        return Quantity("num", MULTIPLES[w], text=w, start=start, end=end, soft=True), i + 1
    if w in FRACTIONS and prev in _ARTICLE | {"one"} and w not in ("second",) and not (
            w in ORDINALS and prev in _ARTICLE and _ORDINAL_NOUN.match(text, end)):  # "a third reading" is ordinal
        q = Quantity("num", 1 / FRACTIONS[w], text=text[toks[i - 1][1]:end], start=toks[i - 1][1], end=end)
        of = _OF_A_UNIT.match(text, end)
        # "a half-hour lunch", "a quarter mile": the fraction of the unit named right after it
        um = _unit_name_at(text, of.end()) if of else _unit_name_at(text, end) if w in ("half", "quarter") else None
        if um:  # "a quarter of a percentage point" = 0.25 pct
            q.unit, q.end = um
            q.text = text[q.start:q.end]
            return q, next((k for k in range(i + 1, len(toks)) if toks[k][1] >= q.end), len(toks))
        return q, i + 1
    fold = re.fullmatch(r"([a-z]+?)fold", w)
    if fold and (fold.group(1) in SMALL or fold.group(1) in TENS or fold.group(1) in SCALES):
        # "a thousandfold increase" = 1,000 times, "tenfold", "twofold"
        return Quantity("num", _words_value([fold.group(1)]), text=text[start:end], start=start, end=end), i + 1
    if (w == "half" and i + 2 < len(toks) and toks[i + 1][0] in _ARTICLE and toks[i + 2][0] in _HALF_OF_SCALES
            and _gap(text, end, toks[i + 1][1]) == ""):
        q, j = _word_phrase(text, toks, i + 1)  # "half a million dollars" = 500,000 USD
        if q is not None and q.kind == "num":
            q.value, q.start, q.soft = float(q.value) / 2, start, False
            q.text = text[start:q.end]
            return q, j
    if w in _ARTICLE or (w == "half" and i + 1 < len(toks) and toks[i + 1][0] in _ARTICLE):
        # "about a kilometre" = 1 km (soft: "a year" is as often a rate, "visitors a year"); "half a century" = 50 years
        art_end = end if w in _ARTICLE else toks[i + 1][2]
        um = _unit_name_at(text, art_end)
        if um:
            q = Quantity("num", 1.0 if w in _ARTICLE else 0.5, unit=um[0], text=text[start:um[1]], start=start,
                         end=um[1], soft=w in _ARTICLE)
            ah = _AND_A_HALF.match(text, um[1]) if w in _ARTICLE else None
            if ah:  # "a kilometre and a half" = 1.5 km
                q.value, q.end, q.soft = 1.5, ah.end(), False
                q.text = text[start:q.end]
                return q, next((k for k in range(i + 1, len(toks)) if toks[k][1] >= q.end), len(toks))
            return q, i + 1 if w in _ARTICLE else i + 2
    if w == "half":  # "about half its diameter": may support a "50%", never required
        return Quantity("num", 0.5, text=w, start=start, end=end, soft=True), i + 1
    if w in ORDINALS:
        value = ORDINALS[w]
        if prev in TENS and _gap(text, toks[i - 1][2], start) == "-":  # "twenty-first"
            value += TENS[prev]
        # "first"/"second" are mostly discourse ("first described", "a second one"): soft unless compounded
        soft = w in SOFT_ORDINALS and value < 20
        return Quantity("ord", float(value), text=w, start=start, end=end, soft=soft), i + 1
    return None, i + 1
