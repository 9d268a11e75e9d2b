"""Quantity normaliser: numbers, number words, ordinals, percentages, units, dates, ranges and ids in text.

`extract(text)` returns `Quantity` items in a canonical form so that surface variants compare equal:
"1,200" = "1 200" = "1200" = "twelve hundred"; "a dozen" = 12; "third" = "3rd"; "45 per cent" = "45%";
"3.5 km" = "3.5 kilometres" = "3500 m"; "March 3, 1998" = "3 March 1998" = "1998-03-03"; "3-5 km" gives 3 km and
5 km. Numbers glued to letters that are not a unit or ordinal suffix ("COVID-19", "B-52", "A380") are ids and
compare as whole strings. `compare(source, rewrite)` checks BOTH ways: source quantities missing from the rewrite,
and rewrite quantities the source does not support.

The scanner runs in passes (dates, ids, digits, number words), each blanking the spans it consumed so that a later
pass cannot read "1998" of a date again as a bare number.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rephrase.verify.units import (CURRENCY_PREFIX, FRACTIONS, MONTHS, NAME_RE, ORDINALS, ROMAN_MONTHS,
                                   SCALE_ABBREV, SCALES, SMALL, TENS, TOLERANCE, UNITS, match_unit)
from rephrase.verify.scaffold import normalize

#: relative tolerance when two quantities are compared through a unit conversion (5 miles ~ 8 km);
#: same-unit and unit-less numbers must be equal (1998 vs 1999 is a changed fact).
CONVERSION_REL_TOL = 0.02


@dataclass
class Quantity:
    kind: str              # num | ord | date | id | decade
    value: float | str     # number, or the id string; dates use y/m/d
    unit: str | None = None
    text: str = ""
    start: int = 0
    end: int = 0
    scale: float = 1.0
    y: int | None = None
    m: int | None = None
    d: int | None = None
    soft: bool = False     # may support the other side's quantities, but is never required to be matched
    bound: str | None = None  # ">" for "more than 2 m", "<" for "less than 3 km": a bound, not a value
    alts: tuple = ()       # a clock time's readings in seconds of the day ("9:16" is 09:16 or 21:16)
    parts: tuple = ()      # a compound measure's parts ("5 days, 22 hours and 54 minutes")
    fall: bool = False     # stated as a fall ("fell by 0.7%", "a decline of 3%"): the same change as "-0.7%"
    pos: bool = False      # a number used as a position after its noun ("game 6", "Frame five", "| 3 |" of a table)

    def label(self) -> str:
        if self.kind == "date" and self.d is None and self.y is None:
            return f"--{self.m:02d}"
        if self.kind == "date":
            return "-".join(f"{x:02d}" if i else str(x) for i, x in enumerate((self.y, self.m, self.d))
                            if x is not None) if self.y else f"--{self.m:02d}-{self.d:02d}"
        if self.kind in ("id", "time"):
            return str(self.value)
        v = _fmt(float(self.value))
        return {"ord": f"#{v}", "decade": f"{v}s"}.get(self.kind, v + (f" {self.unit}" if self.unit else ""))


def _fmt(v: float) -> str:
    return str(int(v)) if v == int(v) and abs(v) < 1e15 else f"{v:g}"


# ---------------------------------------------------------------- dates
_MON = "|".join(sorted(MONTHS, key=len, reverse=True))
_ORD_SUF = r"(?:st|nd|rd|th)?"
_I = re.IGNORECASE
_DATE_RES = [  # (regex, has year, has day); order matters: most specific first
    # "15.vi.1215", "29.VIII.1842": day, Roman-numeral month, year
    (re.compile(r"\b(?P<d>\d{1,2})\.(?P<rom>[ivxIVX]{1,4})\.(?P<y>\d{3,4})\b"), 1, 1),
    (re.compile(rf"\b(?P<d>\d{{1,2}}){_ORD_SUF}\s+(?:of\s+)?(?P<mon>{_MON})\.?,?\s+(?P<y>\d{{3,4}})\b", _I), 1, 1),
    (re.compile(rf"\b(?P<mon>{_MON})\.?\s+(?P<d>\d{{1,2}}){_ORD_SUF},?\s+(?P<y>\d{{3,4}})\b", _I), 1, 1),
    (re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})\b"), 1, 1),
    (re.compile(rf"\b(?P<mon>{_MON})\.?,?\s+(?:of\s+)?(?P<y>\d{{4}})\b", _I), 1, 0),
    # "1971-11" (an ISO year and month; "2010-11" was read as a range of years before)
    (re.compile(r"(?<![\d.,-])(?P<y>1\d{3}|20\d\d)-(?P<m>0[1-9]|1[0-2])(?![\d%]|[.,-]\d)"), 1, 0),
    (re.compile(rf"\b(?P<d>\d{{1,2}}){_ORD_SUF}\s+(?:of\s+)?(?P<mon>{_MON})\b", _I), 0, 1),
    (re.compile(rf"\b(?P<mon>{_MON})\.?\s+(?P<d>\d{{1,2}}){_ORD_SUF}\b(?![\d,.]\d)", _I), 0, 1),
]


_ORD_WORD = "|".join(sorted(ORDINALS, key=len, reverse=True))
_ORD_DATE = re.compile(rf"\b(?:(?P<tens>twenty|thirty)-)?(?P<o>{_ORD_WORD})\s+(?:of\s+)?(?=(?:{_MON})\b)", re.IGNORECASE)


def _month(name: str) -> int:
    return MONTHS.get(name) or MONTHS.get(name.capitalize()) or MONTHS[name.lower()]


_MONTH_THE = re.compile(rf"\b(?P<mon>{_MON})\s+the\s+(?=\d|(?:twenty-|thirty-)?(?:{'|'.join(ORDINALS)})\b)", re.IGNORECASE)


def _ordinal_dates(text: str) -> str:
    """"the sixth of July" -> "the 6 July" (same length kept is not needed: dates are parsed from this text)."""
    def repl(m: re.Match) -> str:
        n = ORDINALS[m.group("o").lower()] + (TENS[m.group("tens").lower()] if m.group("tens") else 0)
        return f"{n} " if n <= 31 else m.group(0)
    text = _MONTH_THE.sub(lambda m: m.group("mon") + " ", text)  # "July the 14th" -> "July 14th"
    text = re.sub(rf"\b(?:{_MON})\s+(?:(twenty|thirty)-)?({_ORD_WORD})\b", _month_ordinal, text, flags=re.IGNORECASE)
    return _ORD_DATE.sub(repl, text)


def _month_ordinal(m: re.Match) -> str:
    n = ORDINALS[m.group(2).lower()] + (TENS[m.group(1).lower()] if m.group(1) else 0)
    return m.group(0).split()[0] + f" {n}" if n <= 31 else m.group(0)


#: an all-digit date "22/05/2013", "05/22/2013", "22.05.2013" (the same separator twice)
_NUMERIC_DATE = re.compile(r"(?<![\d/.])(?P<a>\d{1,2})(?P<sep>[/.])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4})(?![\d/]|\.\d)")
#: a bare month name (capitalised; not "May", "March" alone: a verb as often as a month)
_BARE_MONTH = re.compile(rf"\b(?P<mon>{'|'.join(m for m in sorted(MONTHS, key=len, reverse=True) if m[0].isupper() and m not in ('May', 'March', 'Mar'))})\b")
#: a day listed before a dated day: "20 or 21 March", "the 20th or 21st of March"
_DAY_BEFORE = re.compile(r"\b(?P<d>\d{1,2})(?:st|nd|rd|th)?\s*(?:,|or|and|to|-)\s*(?:the\s+)?$", re.IGNORECASE)


def _numeric_dates(text: str) -> list[Quantity]:
    """Day-first or month-first by whichever part exceeds 12; when both could be months the date is read both ways,
    each reading soft (it may support the other side's date, and is not itself required)."""
    out = []
    for mt in _NUMERIC_DATE.finditer(text):
        a, b, y = int(mt.group("a")), int(mt.group("b")), int(mt.group("y"))
        readings = [(m, d) for m, d in ((b, a), (a, b)) if 1 <= m <= 12 and 1 <= d <= 31]
        for m, d in dict.fromkeys(readings):
            out.append(Quantity("date", 0.0, text=mt.group(0), start=mt.start(), end=mt.end(), y=y, m=m, d=d,
                                soft=len(set(readings)) > 1))
    return out


def _dates(text: str) -> tuple[list[Quantity], str]:
    out = _numeric_dates(text)
    text = _blank(text, out)
    for rx, has_y, has_d in _DATE_RES:
        for mt in rx.finditer(text):
            g = mt.groupdict()
            if g.get("mon") in ("may", "march", "mar") and not (has_y and has_d):  # the verb, not the month
                continue  # ("opened 22 may 2013" is a date even in lower case)
            if g.get("rom"):
                month = ROMAN_MONTHS.get(g["rom"].lower(), 0)
            else:
                month = int(g["m"]) if g.get("m") else _month(g["mon"])
            day = int(g["d"]) if has_d else None
            if not 1 <= month <= 12 or (day is not None and not 1 <= day <= 31):
                continue
            out.append(Quantity("date", 0.0, text=mt.group(0), start=mt.start(), end=mt.end(),
                                y=int(g["y"]) if has_y else None, m=month, d=day))
            db = _DAY_BEFORE.search(text, max(0, mt.start() - 16), mt.start()) if has_d else None
            if db and 1 <= int(db.group("d")) <= 31:  # "20 or 21 March": the 20th is in March too
                out.append(Quantity("date", 0.0, text=db.group(0), start=db.start(), end=db.end(),
                                    y=out[-1].y, m=month, d=int(db.group("d"))))
        text = _blank(text, out)
    # "that December, on the 11th": a bare month is soft, never blanked (it may complete a day and a year)
    out += [Quantity("date", 0.0, text=mt.group(0), start=mt.start(), end=mt.start(), m=_month(mt.group("mon")),
                     soft=True) for mt in _BARE_MONTH.finditer(text)]
    return out, text


def _blank(text: str, qs: list[Quantity]) -> str:
    chars = list(text)
    for q in qs:
        chars[q.start:q.end] = " " * (q.end - q.start)
    return "".join(chars)


# ---------------------------------------------------------------- clock and race times
_DAYPART = (r"(?P<dp>a\.?m\.?|p\.?m\.?|(?:in\s+the\s+)?(?:morning|afternoon|evening)|at\s+night|"
            r"o'?clock|(?:z|utc|gmt)\b)")
#: "20:17:40", "9:16 pm", "23:40 UTC", "20:17:40Z", "2:01:09" (a race time), "59:51"
_CLOCK = re.compile(r"(?<![\d:.,])(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}(?:\.\d+)?))?(?![\d:])"
                    rf"(?:\s*{_DAYPART})?", re.IGNORECASE)
_HOUR_WORDS = {w: v for w, v in SMALL.items() if 1 <= v <= 12}
_MIN_WORD = r"(?:(?:twenty|thirty|forty|fifty)-?\s*)?(?:%s)" % "|".join(sorted(SMALL, key=len, reverse=True))
#: "sixteen past nine at night", "half past ten", "a quarter to six in the morning", "nine o'clock"
_WORD_CLOCK = re.compile(
    rf"\b(?:(?P<q>(?:a\s+)?quarter|half)|(?P<n>\d{{1,2}}|{_MIN_WORD}|twenty|thirty)(?:\s+minutes?)?)\s+"
    rf"(?P<rel>past|after|to)\s+(?P<h>\d{{1,2}}|{'|'.join(_HOUR_WORDS)})\b"
    rf"(?:\s*{_DAYPART}|(?=\s*(?:[.,;:!?)\u2014\u2013]|$)))", re.IGNORECASE)  # not "3 to 4 years" 
_PM = ("p", "afternoon", "evening", "night")


def _word_value(w: str) -> int:
    w = w.lower().replace("-", " ").split()
    return int(w[0]) if w[0].isdigit() else int(sum(SMALL.get(x, TENS.get(x, 0)) for x in w))


def _readings(h: int, m: int, s: float, dp: str | None, zero_padded: bool) -> tuple:
    dp = (dp or "").lower()
    if re.match(r"a\.?m", dp) or "morning" in dp:
        hs = [h % 12]
    elif any(k in dp for k in _PM) or re.match(r"p\.?m", dp):
        hs = [h % 12 + 12]
    elif h > 12 or zero_padded or dp in ("z", "utc", "gmt"):
        hs = [h]
    else:  # a bare "9:16" is 09:16 or 21:16
        hs = [h, (h + 12) % 24]
    return tuple(sorted({x * 3600 + m * 60 + s for x in hs}))


def _times(text: str) -> tuple[list[Quantity], str]:
    """Clock times compare as seconds of the day ("11:40 pm" = "23:40" = "sixteen ... " in words; a time zone
    mark "Z"/"UTC" is no number); "2:01:09" and "59:51" (race times) compare as written."""
    out = []
    for mt in _CLOCK.finditer(text):
        h, m, sec = int(mt.group("h")), int(mt.group("m")), float(mt.group("s") or 0)
        if m > 59 or sec >= 60:
            continue
        if h > 23:  # "59:51": minutes and seconds of a race
            alts = (h * 60 + m + sec,)
            value = f"{h}:{m:02d}" + (f":{mt.group('s')}" if mt.group("s") else "")
        else:
            alts = _readings(h, m, sec, mt.group("dp"), mt.group("h").startswith("0"))
            value = f"{h}:{m:02d}" + (f":{mt.group('s')}" if mt.group("s") else "") + (
                "" if len(alts) > 1 else f" ({alts[0] // 3600:.0f}h)")
        # a media timestamp "[00:03:12]", "[COMMENTARY TRACK - 00:03:12]" marks a transcript, not a stated time
        stamp = bool(re.search(r"\[[^\]\n]{0,40}$", text[max(0, mt.start() - 40):mt.start()])) and bool(
            re.match(r"[^\[\n]{0,5}\]", text[mt.end():mt.end() + 6]))
        out.append(Quantity("time", value, text=mt.group(0), start=mt.start(), end=mt.end(), alts=alts, soft=stamp))
    text = _blank(text, out)
    for mt in _WORD_CLOCK.finditer(text):
        h = _word_value(mt.group("h")) if mt.group("h")[0].isdigit() else _HOUR_WORDS[mt.group("h").lower()]
        mins = (15 if "quarter" in mt.group("q").lower() else 30) if mt.group("q") else _word_value(mt.group("n"))
        if not 1 <= h <= 12 or not 0 < mins < 60 or (mt.group("rel").lower() == "to" and mt.group("n") and not (
                mt.group("dp") or "minute" in mt.group(0).lower())):
            continue  # "a majority of ten to two" is no time
        if mt.group("rel").lower() == "to":
            h, mins = h - 1 or 12, 60 - mins
        alts = _readings(h, mins, 0, mt.group("dp"), False)
        out.append(Quantity("time", f"{h}:{mins:02d}" + ("" if len(alts) > 1 else f" ({alts[0] // 3600:.0f}h)"),
                            text=mt.group(0), start=mt.start(), end=mt.end(), alts=alts))
    return out, _blank(text, out)


# ---------------------------------------------------------------- ids ("COVID-19", "A380")
_ALNUM = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
_NUM_SUFFIX = re.compile(r"^\d+(?:\.\d+)?-?(?P<suf>[A-Za-z]+)$")
_COMPOUND = re.compile(r"^\d+(?:\.\d+)?(?:st|nd|rd|th|0s)?-[A-Za-z]")
#: "13th-15th", "1280s-1290s": a range of ordinals or decades, read by the digit pass (not an id)
_SUFFIX_RANGE = re.compile(r"^\d+(?:st|nd|rd|th|s)-\d+(?:st|nd|rd|th|s)$")


def _ids(text: str) -> tuple[list[Quantity], str]:
    out = []
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
        pm = re.fullmatch(r"(?i:top|under|over|u)-(\d{1,3})s?", tok)
        if pm:  # "top-10", "under-16s": the number, not a name ("the top ten", "children under 16")
            out.append(Quantity("num", float(pm.group(1)), text=tok, start=mt.start(), end=mt.end()))
            continue
        if _COMPOUND.match(tok) or _SUFFIX_RANGE.match(tok):
            continue  # "225-day", "3-year-old", "4th-century": a number in a compound adjective (digit pass)
        tok = _id_head(tok)
        out.append(Quantity("id", tok.lower(), text=tok, start=mt.start(), end=mt.start() + len(tok)))
    return out, _blank(text, out)


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
    if suf in ("st", "nd", "rd", "th", "s", "x") or suf.lower() in SCALE_ABBREV:  # "x": "92x Earth's"
        return True
    return match_unit(suf, 0) is not None and match_unit(suf, 0)[1] == len(suf)


# ---------------------------------------------------------------- digits
_DIGITS = re.compile(r"(?<![\w.])(?:(?<![\d-])-(?=\d))?(?:\d{1,3}(?:(?:,|[ \u00a0\u202f])\d{3})+|\d+)(?:\.\d+)?(?![\d])")
_SCALE_AFTER = re.compile(r"[ \u00a0-]?(?P<w>hundred|thousand|million|billion|trillion|bn|tn)\b|(?P<k>k)\b",
                          re.IGNORECASE)
_ORD_AFTER = re.compile(r"(?:st|nd|rd|th)\b")
_DECADE_AFTER = re.compile(r"'?s\b")


_MINUS = re.compile(r"\bminus\s+(?=\d)", re.IGNORECASE)
_FRACTION = re.compile(r"(?<![\w/.])(\d{1,3})/(\d{1,3})(?![\w/])")


_YY = re.compile(r"(?<![\w'])'(\d{2})\b(?!\s*(?:%|s\b))")
_DECADE_WORDS = {w: v for w, v in (("twenties", 20), ("thirties", 30), ("forties", 40), ("fifties", 50),
                                   ("sixties", 60), ("seventies", 70), ("eighties", 80), ("nineties", 90))}
_DECADE_WORD = re.compile(r"\b(?:the\s+)?(?:early\s+|mid-?\s*|late\s+)?(%s)\b" % "|".join(_DECADE_WORDS), re.IGNORECASE)


def _short_years(text: str) -> tuple[list[Quantity], str]:
    """"December '93" (a year given by its last two digits) and "the seventies" (a decade without its century):
    they state a year or decade only up to the century, and match any year or decade with those digits."""
    out = [Quantity("yy", float(m.group(1)), text=m.group(0), start=m.start(), end=m.end(),
                    m=_month_before(text, m.start())) for m in _YY.finditer(text)]
    out += [Quantity("yy_decade", float(_DECADE_WORDS[m.group(1).lower()]), text=m.group(0), start=m.start(),
                     end=m.end()) for m in _DECADE_WORD.finditer(text)]
    return out, _blank(text, out)


def _month_before(text: str, pos: int) -> int | None:
    """The month named right before `pos` ("December '93"), if any."""
    mm = re.search(rf"\b({_MON})\.?,?\s*$", text[max(0, pos - 12):pos], re.IGNORECASE)
    return _month(mm.group(1)) if mm and mm.group(1) not in ("may", "march", "mar") else None


def _fractions(text: str) -> tuple[list[Quantity], str]:
    """"2/3" = two thirds."""
    out = [Quantity("num", int(m.group(1)) / int(m.group(2)), text=m.group(0), start=m.start(), end=m.end())
           for m in _FRACTION.finditer(text) if 0 < int(m.group(1)) < int(m.group(2))]  # "225/45", "24/7": no fraction
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
        if _DECADE_AFTER.match(text, end) and value >= 10 and value % 10 == 0:
            out.append(Quantity("decade", value, text=raw, start=mt.start(), end=end + 1))
            continue
        out.append(_with_suffixes(text, Quantity("num", value, text=raw, start=mt.start(), end=end)))
    return out


_BELOW_ZERO = re.compile(r"\s+below\s+zero\b", re.IGNORECASE)


def _with_suffixes(text: str, q: Quantity) -> Quantity:
    """Apply a scale word ("1.5 million"), a unit ("3.5 km") and a currency prefix ("$3")."""
    sm = _SCALE_AFTER.match(text, q.end)
    if sm:
        w = (sm.group("w") or sm.group("k")).lower()
        q.scale = SCALES.get(w) or SCALE_ABBREV[w]
        q.value = float(q.value) * q.scale
        q.end = sm.end()
    um = match_unit(text, q.end)
    if um:
        q.unit, q.end = um
    bz = _BELOW_ZERO.match(text, q.end) if q.unit in ("deg", "degC", "degF") else None
    if bz:  # "ten degrees below zero (Celsius)" = -10 °C
        q.value, q.end = -abs(float(q.value)), bz.end()
        um = match_unit(text, q.end)
        if um and UNITS[um[0]].dim == "temperature" and q.unit == "deg":
            q.unit, q.end = um
    before = text[max(0, q.start - 4):q.start].rstrip()
    for sym, unit in CURRENCY_PREFIX.items():
        if before.endswith(sym) and q.unit is None:
            q.unit = unit
            break
    q.text = text[q.start:q.end]
    return q


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
#: chemical formulas and their names: an id on one side is matched by the name on the other
FORMULA_NAMES = {"co2": "carbon dioxide", "h2o": "water", "o2": "oxygen", "n2": "nitrogen", "h2": "hydrogen",
                 "ch4": "methane", "nacl": "sodium chloride", "h2so4": "sulfuric acid", "nh3": "ammonia"}
#: adverbs that state a count ("twice" = "two times"); "once" is left out: it mostly means "formerly"
MULTIPLES = {"twice": 2.0, "thrice": 3.0}


def _is_numword(w: str) -> bool:
    return w in SMALL or w in TENS or w in SCALES or w == "dozen"


def _word_phrase(text: str, toks: list, i: int) -> tuple[Quantity | None, int]:
    """Parse the number-word phrase starting at token i; returns (quantity or None, next index)."""
    w, start, _ = toks[i]
    j = i + 1 if w in _ARTICLE and i + 1 < len(toks) and toks[i + 1][0] in ("hundred", "thousand", "million",
                                                                            "billion", "dozen") else i
    words = []
    while j < len(toks) and (_is_numword(toks[j][0]) or (toks[j][0] == "and" and words and j + 1 < len(toks)
                                                         and _is_numword(toks[j + 1][0])
                                                         and toks[j + 1][0] not in SCALES)):
        gap = text[toks[j - 1][2]:toks[j][1]] if words else ""
        if toks[j][0] != "and" and words and (gap.strip().lower() not in ("", "-", "and")
                                              or gap.strip() == "-" != gap):  # " - " is a dash, not "sixty-five"
            break
        words.append(toks[j][0])
        j += 1
    if not words or words[0] in SCALES and j == i + len(words):  # a bare "million" is not a stated number
        return _ordinal_word(text, toks, i)
    if words[-1] in TENS and j < len(toks) and toks[j][0] in ORDINALS and _gap(text, toks[j - 1][2], toks[j][1]) == "-":
        return _ordinal_word(text, toks, j)  # "twenty-first": the ordinal reader adds the tens
    if j < len(toks) and words[-1] in SMALL | TENS and toks[j][0] in FRACTIONS and toks[j][0] not in ("second",):
        n = _words_value(words)  # "two thirds"
        return Quantity("num", n / FRACTIONS[toks[j][0]], text=text[start:toks[j][2]], start=start,
                        end=toks[j][2]), j + 1
    if len(words) == 2 and all(SMALL.get(w, 10) < 10 for w in words) and (
            _gap(text, toks[j - 2][2], toks[j - 1][1]) == "-" or words[0] == "zero"):
        words, j = words[:1], j - 1  # "six-four", "six–four" is a score, not 64 ("two-two-five" = 225 stays)
    value, end = _words_value(words), toks[j - 1][2]
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
    if j + 2 < len(toks) and [t[0] for t in toks[j:j + 3]] == ["and", "a", "half"]:  # "ten and a half"
        q.value, j = float(q.value) + 0.5, j + 3
        q.end = toks[j - 1][2]
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
                           r"under|the|a|an|its|their|his|her|this|that|each|per|which|who|is|was|are|were)\b)[a-z]{3,}\b")


_OF_A_UNIT = re.compile(r"\s+of\s+an?(?=\s)", re.IGNORECASE)


def _unit_name_at(text: str, pos: int) -> tuple[str, int] | None:
    """A unit written out as a word ("kilometre", "day", "century") right after `pos`, not a symbol ("a m" is no
    unit)."""
    um = match_unit(text, pos)
    word = text[pos:um[1]].strip(" -") if um else ""
    return um if um and word.replace(" ", "").isalpha() and (len(word) > 3 or NAME_RE.match(text, pos)) else None


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


def _ordinal_word(text: str, toks: list, i: int) -> tuple[Quantity | None, int]:
    w, start, end = toks[i]
    prev = toks[i - 1][0] if i else ""
    if w in MULTIPLES:
        # soft: "revised twice, in 2008 and 2019" counts what the years state; it states a fact only when matched
        return Quantity("num", MULTIPLES[w], text=w, start=start, end=end, soft=True), i + 1
    if w in FRACTIONS and prev in _ARTICLE | {"one"} and w not in ("second",) and not (
            w in ORDINALS and prev in _ARTICLE and _ORDINAL_NOUN.match(text, end)):  # "a third reading" is ordinal
        q = Quantity("num", 1 / FRACTIONS[w], text=text[toks[i - 1][1]:end], start=toks[i - 1][1], end=end)
        of = _OF_A_UNIT.match(text, end)
        um = _unit_name_at(text, of.end()) if of else None
        if um:  # "a quarter of a percentage point" = 0.25 pct
            q.unit, q.end = um
            q.text = text[q.start:q.end]
            return q, next((k for k in range(i + 1, len(toks)) if toks[k][1] >= q.end), len(toks))
        return q, i + 1
    if w in _ARTICLE or (w == "half" and i + 1 < len(toks) and toks[i + 1][0] in _ARTICLE):
        # "about a kilometre" = 1 km (soft: "a year" is as often a rate, "visitors a year"); "half a century" = 50 years
        art_end = end if w in _ARTICLE else toks[i + 1][2]
        um = _unit_name_at(text, art_end)
        if um:
            q = Quantity("num", 1.0 if w in _ARTICLE else 0.5, unit=um[0], text=text[start:um[1]], start=start,
                         end=um[1], soft=w in _ARTICLE)
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


# ---------------------------------------------------------------- ranges and the public API
_RANGE_GAP = re.compile(r"^\s*(?:-|–|—|to|and|or|,)\s*$", re.IGNORECASE)


def _ranges(qs: list[Quantity], text: str) -> None:
    """'3-5 km', '3 to 5 km', 'between 1 and 2 million': the first end inherits the unit (and scale) of the last."""
    for a, b in zip(reversed(qs[:-1]), reversed(qs[1:])):
        if a.kind == b.kind == "num" and a.unit is None and b.unit and _RANGE_GAP.match(text[a.end:b.start]) and not (
                "," in text[a.end:b.start] and len(b.text) - len(b.text.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) == 1):
            # (not over a comma to a one-letter symbol: "R seventeen, ninety-four W" is a code, not 17 W)
            a.unit = b.unit
            if a.scale == 1.0 and b.scale != 1.0:
                a.value, a.scale = float(a.value) * b.scale, b.scale


#: numbers that state no fact and that rewrites rightly drop: citation marks "[12]", list numbering "3. "
_NOISE = re.compile(r"\[\d{1,3}(?:\s*[,–-]\s*\d{1,3})*\]|(?m:^)\s*\d{1,2}[.)/](?=\s+\D)|"
                    r"\b(?:p|pp|page|entry|no|vol|episode|ep|card|step|post|slide|item)\.?\s*#?\d{1,4}\b(?!\s*(?:%|percent)|[,.]\d)",
                    re.IGNORECASE)


#: scaffolding numbers written with a capital or in a fixed frame: an audio tour's "Stop 14", a phone menu's
#: "press 2 for the next stop", a quiz's "For 400:" / "For 100 points", a forum's "ELI5"
_NOISE_FRAME = re.compile(r"\bStop\s+\d{1,3}\b|\b(?i:press)\s+\d\b(?=\s+(?:for|to)\b)|"
                          r"\b(?i:for)\s+\$?(?:[1-9]00|1000)\s*:|\b(?i:for)\s+\$?\d{1,5}\s+points\b|\b(?i:eli5)\b|"
                          r"\b(?i:chapter|lesson|worksheet)\s+\d{1,2}\b(?!\s*(?:%|[.,]\d))|"
                          r"(?m:^)[ \t]*(?i:panel|caption|frame|scene|slide|card|speaker|part|round)\s+\d{1,2}\s*:|"
                          r"(?m:^)[ \t]*[QA]\d{1,2}\s*[.:)]|(?m:^)[ \t#]*(?:BOX|Box|Figure|Fig\.|Table)\s+\d{1,2}(?:\.\d{1,2})?\b|"
                          r"\(\d{1,2}\s+marks?\)|"  # an exam question's "(5 marks)"; a listicle's "7 Things to Know":
                          r"(?m:^)[ \t#]*(?:\d{1,2}|(?i:three|four|five|six|seven|eight|nine|ten|twelve))\s+"
                          r"(?i:things|facts|reasons|ways|tips|questions|takeaways|moments)\b")
#: a vulgar fraction after NFKC ("8½" -> "81⁄2", "¾" -> "3⁄4"): one digit over a small denominator, with the
#: whole part glued before it
_VULGAR = re.compile(r"(?<![\d.])(\d*?)(\d)\u2044(\d{1,2})(?!\d)")
#: an abbreviated end of a year or decade range: "1958-61" = 1958 to 1961, "the 1280s-90s"
_YEAR_RANGE = re.compile(r"(?<![\d.,-])(1\d|20)(\d\d)-(\d\d)(?![\d%]|[.,]\d)(?!\s*(?:%|per\s*cent))")
_DECADE_RANGE = re.compile(r"(?<![\d.,-])(1\d|20)(\d0)s-(\d0)s\b")


def _vulgar(m: re.Match) -> str:
    den = int(m.group(3))
    if not den:
        return m.group(0)
    v = (int(m.group(1)) if m.group(1) else 0) + int(m.group(2)) / den
    return repr(v) if m.group(1) else f"{m.group(2)}/{den}"


def _expand_ranges(text: str) -> str:
    """"1958-61" -> "1958-1961" (only where the short end is later: "2010-11"), "1280s-90s" -> "1280s-1290s"."""
    text = _YEAR_RANGE.sub(lambda m: m.group(0) if int(m.group(3)) <= int(m.group(2)) else
                           f"{m.group(1)}{m.group(2)}-{m.group(1)}{m.group(3)}", text)
    return _DECADE_RANGE.sub(lambda m: m.group(0) if int(m.group(3)) <= int(m.group(2)) else
                             f"{m.group(1)}{m.group(2)}s-{m.group(1)}{m.group(3)}s", text)


#: a line that starts with a bare number and a capital ("2 No artificial waterway ...", a circled "②" after NFKC)
_LINE_NUM = re.compile(r"(?m)^[ \t]*(\d{1,2})(?=[ \t]+[A-Z\u00C0-\u024F\"'(])")


def _list_numbers(text: str) -> str:
    """Blank bare line-start numbers that count 1, 2, 3, ... over three or more lines: list numbering."""
    ms = [m for m in _LINE_NUM.finditer(text) if match_unit(text, m.end(1)) is None]  # not "5 W", "3 K"
    run: list[re.Match] = []
    out = list(text)
    for m in ms + [None]:
        if m is not None and (not run or int(m.group(1)) == int(run[-1].group(1)) + 1):
            run.append(m)
            continue
        if len(run) >= 3:
            for r in run:
                out[r.start(1):r.end(1)] = " " * (r.end(1) - r.start(1))
        run = [m] if m is not None else []
    return "".join(out)


#: a number used as a label: "tank No. 2", "win no. 4", "patent number 139,121", "#3"
_LABEL_NO = re.compile(r"(?:\b(?:no|nos|number)\.?\s*#?|(?<![\w&])#)(?P<n>\d{1,3}(?:,\d{3})+|\d{1,7})\b"
                       r"(?![.,]\d|\s*(?:%|percent|per\s*cent))", re.IGNORECASE)


_MEDAL = re.compile(r"\b(?:took|won|claimed|taking|winning|earned|with)\s+(?:the\s+)?(?P<m>gold|silver|bronze)\b",
                    re.IGNORECASE)


def _medals(text: str) -> list[Quantity]:
    """"took bronze" (soft): it may support "third", "in third", and is never required."""
    return [Quantity("ord", float({"gold": 1, "silver": 2, "bronze": 3}[m.group("m").lower()]), text=m.group(0),
                     start=m.start("m"), end=m.end(), soft=True) for m in _MEDAL.finditer(text)]


def _labels(text: str) -> tuple[list[Quantity], str]:
    """A label number is soft, read both as a number and as a position ("win no. 4" for "his fourth win",
    "tank 2" for "tank No. 2"): it may support the other side, and a rewrite may drop it."""
    out = []
    for mt in _LABEL_NO.finditer(text):
        v = float(mt.group("n").replace(",", ""))
        for kind in ("num", "ord"):
            out.append(Quantity(kind, v, text=mt.group(0), start=mt.start(), end=mt.end(), soft=True))
    return out, _blank(text, out)


def extract(text: str) -> list[Quantity]:
    """All quantities in `text`, in order of appearance (after Unicode normalisation: "−5", "５" read as "-5", "5")."""
    text = _list_numbers(_NOISE_FRAME.sub(lambda m: " " * len(m.group(0)), normalize(text)))
    labels, text = _labels(text)
    text = _expand_ranges(_VULGAR.sub(_vulgar, _NOISE.sub(lambda m: " " * len(m.group(0)), text)))
    text = _MINUS.sub("-", _ordinal_dates(text))
    times, text = _times(text)
    dates, rest = _dates(text)
    dates += times
    short, rest = _short_years(rest)
    dates += short
    ids, rest = _ids(rest)
    fractions, rest = _fractions(rest)
    digits = fractions + _digits(rest)
    nums = sorted(digits + _number_words(_blank(rest, digits)), key=lambda q: q.start)
    _ranges(nums, rest)
    nums = _compound_measures(nums, rest)
    for q in nums:
        q.fall = bool(_FALL.search(rest[max(0, q.start - 40):q.start]))
        q.pos = (q.kind == "num" and q.unit is None and float(q.value).is_integer() and 1 <= float(q.value) <= 99
                 and (bool(_POS_BEFORE.search(rest[max(0, q.start - 24):q.start])) or bool(
                     re.search(r"(?:^|\n)[ \t]*$", rest[max(0, q.start - 24):q.start]) and re.match(r"[ \t]*[;|]", rest[q.end:])))
                 and (not _COUNTED_NOUN.match(rest, q.end) or bool(_NUMBER_BEFORE.search(rest[max(0, q.start - 12):q.start]))))
        bm = _BOUND.search(rest[max(0, q.start - 24):q.start])
        if bm:
            q.bound = ">" if bm.group("gt") else "<"
    return sorted(dates + ids + nums + labels + _medals(rest), key=lambda q: q.start)


#: a fall written in words before a number: "a fall of about 949,000 (0.7%)", "fell by 0.7%", "down 3%"
_FALL = re.compile(r"\b(?:fall|fell|falls|drop|dropped|drops|decline|declined|decrease|decreased|down|lower|lowered|"
                   r"reduced|reduction|shrank|loss|lost|cut)(?:\s+(?:by|of)\b|(?=\s+(?:about|around|some|nearly|almost|~)?\s*"
                   r"[\d(]))(?!.*\b(?:rise|rose|increase|gain|up|to)\b)", re.IGNORECASE)  # not "drop to -10 °C"
#: a position number after its noun ("game 6", "Frame five") or in a table's first column; not "won six titles"
_POS_BEFORE = re.compile(r"(?:\b(?!(?:the|a|an|of|in|on|at|by|for|to|with|about|than|and|or|all|only|just|some|"
                         r"nearly|around|over|under|his|her|its|their|took|had|has|have|was|were|is|are|won|made|"
                         r"got|gave|after|before|from|into|every|each|aged|age|ages|than)\b)[A-Za-z]{3,}[ \t]+|"
                         r"(?m:^)[ \t]*\|[ \t]*)$", re.IGNORECASE)
_NUMBER_BEFORE = re.compile(r"\b(?:number|no\.?)\s+$", re.IGNORECASE)  # "Frame number five makes the cover"
_COUNTED_NOUN = re.compile(r"[ \t-]*(?:[A-Za-z]+(?<!ss)s\b|(?:people|men|women|children|times|per|of|percent)\b)", re.IGNORECASE)
_MEASURE_GAP = re.compile(r"^\s*,?\s*(?:and)?\s*$", re.IGNORECASE)
_RANGE_START = re.compile(r"\b(?:between|from)\s*$", re.IGNORECASE)


def _compound_measures(nums: list[Quantity], text: str) -> list[Quantity]:
    """"8 minutes and 20 seconds", "5 ft 10 in", "2 h 30 min", "5 days, 22 hours and 54 minutes": one measure in
    units of falling size, read as their sum in the smallest unit (500 s); the parts stay as soft quantities, so
    "8 min" alone is still supported, and the total is also stated by its parts ("5 D 22 H 54 M")."""
    out, k = [], 0
    while k < len(nums):
        chain = [nums[k]]
        while k + len(chain) < len(nums):
            a, b = chain[-1], nums[k + len(chain)]
            if not (a.kind == b.kind == "num" and a.unit and b.unit and a.unit != b.unit
                    and UNITS[a.unit].dim == UNITS[b.unit].dim and not UNITS[a.unit].offset
                    and UNITS[a.unit].factor > UNITS[b.unit].factor and _MEASURE_GAP.match(text[a.end:b.start])
                    and (len(chain) > 1 or not _RANGE_START.search(text[max(0, a.start - 10):a.start]))):
                break
            chain.append(b)
        if len(chain) == 1:
            out.append(chain[0])
            k += 1
            continue
        last = chain[-1]
        total = sum(float(q.value) * UNITS[q.unit].factor for q in chain) / UNITS[last.unit].factor
        for q in chain:
            q.soft = True
        out += chain + [Quantity("num", round(total, 9), unit=last.unit, text=text[chain[0].start:last.end],
                                 start=chain[0].start, end=last.end, parts=tuple(chain))]
        k += len(chain)
    return out


#: a bound written before a number: "more than two metres" is stated by "2.25 m" (not the other way round)
_BOUND = re.compile(r"(?:\b(?P<gt>more than|over|above|greater than|exceeding|upwards of|in excess of)|"
                    r"\b(?P<lt>less than|under|below|fewer than|at most)|(?P<gts>[>\u2265])|(?P<lts>[<\u2264]))"
                    r"\s*[~\u2248]?\s*$", re.IGNORECASE)


def _within_bound(q: Quantity, o: Quantity) -> bool:
    """Does the value `o` states satisfy the bound `q` states, within a factor of two ("more than two metres" for
    2.25 m; not "more than 2 m" for 100 m, which says something else)?"""
    if o.kind != "num" or o.bound:
        return False
    if q.unit is not None and o.unit is not None:
        (dq, vq), (do, vo) = _base(q), _base(o)
        if dq != do:
            return False
    elif q.unit is None:
        vq, vo = float(q.value), float(o.value)
    else:
        return False
    if vq <= 0:
        return False
    return vq <= vo <= 2 * vq if q.bound == ">" else vq / 2 <= vo <= vq


def _base(q: Quantity) -> tuple[str | None, float]:
    if q.unit is None:
        return None, float(q.value)
    u = UNITS[q.unit]
    return u.dim, (float(q.value) + u.offset) * u.factor


def _num_equal(a: Quantity, b: Quantity) -> bool:
    """Does `b` state the number `a` states? A unit-less number may stand for a measured one ("3 and 5 km"), but
    a soft one (a pronoun-like "one") must not vouch for "1 kg"."""
    if a.unit is not None and b.unit is None and b.soft:
        return False
    if a.unit == b.unit or a.unit is None or b.unit is None or _bare_degrees(a, b):
        return math.isclose(float(a.value), float(b.value), rel_tol=1e-9, abs_tol=1e-12)
    (da, va), (db, vb) = _base(a), _base(b)
    if da == db and UNITS[a.unit].offset + UNITS[b.unit].offset:
        return _temperature_equal(a, b)
    if a.parts or b.parts:  # "5 days, 22 hours and 54 minutes" is exact to its smallest unit (not within 2%)
        step = min(UNITS[p.unit].factor for p in a.parts + b.parts)
        return da == db and abs(va - vb) <= 0.5 * step + 1e-9 * abs(va)
    tol = max(CONVERSION_REL_TOL, TOLERANCE.get(a.unit, 0.0), TOLERANCE.get(b.unit, 0.0))
    return da == db and math.isclose(va, vb, rel_tol=tol)


def _temperature_equal(a: Quantity, b: Quantity) -> bool:
    """A temperature conversion ("-30 °C" = "-22 °F") is compared on a scale people write, not in kelvin: 2% of
    ~240 K would let "-30 °C" pass for "-30 °F". `b` is read in `a`'s unit; a rounded conversion is kept."""
    ua, ub = UNITS[a.unit], UNITS[b.unit]
    in_a = (float(b.value) + ub.offset) * ub.factor / ua.factor - ua.offset
    return math.isclose(float(a.value), in_a, rel_tol=CONVERSION_REL_TOL, abs_tol=0.6)


def _bare_degrees(a: Quantity, b: Quantity) -> bool:
    """"100 degrees" may mean "100 °C" or "100 °F": a bare degree matches a temperature of the same value."""
    units = {a.unit, b.unit}
    return "deg" in units and bool(units & {"degC", "degF"})


def _years(qs: list[Quantity]) -> set[int]:
    ys = {q.y for q in qs if q.kind == "date" and q.y is not None}
    ys |= {int(q.value) for q in qs if q.kind == "num" and q.unit is None and float(q.value).is_integer()}
    return ys


def covered(q: Quantity, others: list[Quantity]) -> bool:
    """Is the fact `q` states also stated by `others` (the other text's quantities)?"""
    if q.kind == "date":
        dates = [o for o in others if o.kind == "date"]
        if any((o.y, o.m, o.d) == (q.y, q.m, q.d) for o in dates):
            return True
        if q.d is None:  # "March 1998" is implied by "3 March 1998" (the reverse is a dropped day)
            return any((o.y, o.m) == (q.y, q.m) for o in dates) or (q.y is not None and any(
                o.kind == "yy" and o.m == q.m and int(o.value) == q.y % 100 for o in others))  # "December '93"
        # "on March 3rd in 1998" states 1998-03-03 in two pieces, and so does "in March 1998 - on the 3rd"
        if any((o.y, o.m) == (q.y, q.m) and o.d is None for o in dates) and any(
                o.kind == "ord" and float(o.value) == q.d for o in others):
            return True
        # "in 2016 ... that December, on the 11th": a bare month, the day as an ordinal and the year elsewhere
        if q.y is not None and any(o.m == q.m and o.y is None and o.d is None for o in dates) and any(
                o.kind == "ord" and float(o.value) == q.d for o in others) and q.y in _years(others):
            return True
        return any((o.m, o.d) == (q.m, q.d) for o in dates) and (q.y is None or q.y in _years(others))
    if q.kind == "num":
        alts = [o for o in map(_million_reading, others) if o is not None]
        if any(o.kind == "num" and (_num_equal(q, o) or _ratio_equal(q, o)) for o in others + alts):
            return True
        m = _million_reading(q)
        if m is not None and covered(m, others):
            return True
        if q.unit == "year" and _is_interval(float(q.value), others):
            return True  # "six years later" between two stated years
        if _derived(q, others):
            return True  # "31 wolves in all" for "14 ... another 17"
        if q.bound and any(_within_bound(q, o) for o in others):
            return True  # "more than two metres" for "2.25 m"
        if float(q.value) < 0 and any(o.kind == "num" and o.fall and o.unit == q.unit and
                                      math.isclose(float(o.value), -float(q.value)) for o in others):
            return True  # "(-0.7%)" for "a fall of 0.7%"
        if q.fall and float(q.value) > 0 and any(o.kind == "num" and o.unit == q.unit and
                                                 math.isclose(float(o.value), -float(q.value)) for o in others):
            return True  # "a fall of 0.7%" for "-0.7%"
        if q.pos and any(o.kind == "ord" and float(o.value) == float(q.value) for o in others):
            return True  # "Frame five became the cover" for "the fifth frame"
        if q.parts and all(covered(p, others) for p in q.parts):
            return True  # "5 D 22 H 54 M" states "5 days, 22 hours and 54 minutes" part by part
        return q.unit is None and float(q.value).is_integer() and int(q.value) in _years(
            [o for o in others if o.kind == "date"])
    if q.kind in ("decade", "ord") and any(_same_century(q, o) for o in others):
        return True  # "the 1400s" = "the 15th century"
    if q.kind == "ord" and any(o.kind == "num" and o.pos and float(o.value) == float(q.value) for o in others):
        return True  # "the sixth game" for "game 6"
    if q.kind == "ord" and any(o.kind == "date" and o.d == float(q.value) for o in others):
        return True  # "in August 1961 - on the 13th" for "13 August 1961"
    if q.kind == "time":
        return any(o.kind == "time" and set(o.alts) & set(q.alts) for o in others)
    if q.kind == "yy":
        return any(y % 100 == int(q.value) for y in _years(others))
    if q.kind == "yy_decade":
        return any(o.kind in ("decade", "yy_decade") and float(o.value) % 100 == q.value for o in others)
    if q.kind == "decade" and any(o.kind == "yy_decade" and o.value == float(q.value) % 100 for o in others):
        return True
    if q.kind == "decade" and any(o.kind == "decade" and (float(o.value) < 100 or float(q.value) < 100) and
                                  float(o.value) % 100 == float(q.value) % 100 for o in others):
        return True  # "the '60s" (a decade without its century) = "the 1960s"
    return any(o.kind == q.kind and o.value == q.value for o in others)


def _million_reading(q: Quantity) -> Quantity | None:
    """"21m dollars": a number glued to "m" is metres or millions; "42.195k" is thousands or kilometres (a
    runner's "5k"); the other side decides."""
    if q.kind == "num" and q.unit == "m" and re.fullmatch(r"[\d.,]+m", q.text.strip()):
        return Quantity("num", float(q.value) * 1e6, text=q.text, start=q.start, end=q.end, scale=1e6)
    if q.kind == "num" and q.unit is None and q.scale == 1e3 and re.fullmatch(r"[\d.,]+k", q.text.strip()):
        return Quantity("num", float(q.value) / 1e3, unit="km", text=q.text, start=q.start, end=q.end)
    return None


def _ratio_equal(a: Quantity, b: Quantity) -> bool:
    """"50%" = "half", "25 percent" = "a quarter"."""
    for x, y in ((a, b), (b, a)):
        if x.unit == "pct" and y.unit is None and 0 < float(y.value) < 1:
            if math.isclose(float(x.value) / 100, float(y.value), rel_tol=1e-6):
                return True
            # "one third" = "33%", "two thirds" = "67%": a whole percentage rounded from a fraction
            return (float(x.value).is_integer() and _is_simple_fraction(float(y.value))
                    and abs(float(x.value) - 100 * float(y.value)) <= 0.5 + 1e-9)
    return False


def _is_simple_fraction(v: float) -> bool:
    return any(math.isclose(v * d, round(v * d), abs_tol=1e-6) for d in (3, 6, 7, 8, 9, 11, 12))


def _derived(q: Quantity, others: list[Quantity]) -> bool:
    """A number the other side states as the sum or difference of two of its numbers in the same unit: rewrites
    derive totals and gaps ("31 in all", "two years later") that the source implies."""
    # (operands of 1 left out: "53" is no "52 + 1" but the off-by-one change it looks like)
    nums = [float(o.value) for o in others if o.kind == "num" and o.unit == q.unit and not o.soft
            and abs(float(o.value)) != 1][:40]
    v = float(q.value)
    return v > 0 and any(math.isclose(a + b, v) or math.isclose(abs(a - b), v)
                         for i, a in enumerate(nums) for b in nums[i + 1:])


def _is_interval(value: float, others: list[Quantity]) -> bool:
    ys = sorted(_years(others))
    return value.is_integer() and 0 < value < 1000 and any(b - a == value for i, a in enumerate(ys) for b in ys[i:]
                                                           if a >= 100)


def _same_century(a: Quantity, b: Quantity) -> bool:
    for x, y in ((a, b), (b, a)):
        if x.kind == "decade" and y.kind == "ord" and float(x.value) % 100 == 0:
            return float(x.value) / 100 + 1 == float(y.value)
    return False


def _spelled_id(q: Quantity, other_text: str) -> bool:
    """A letter code the other text spells out: "R17" (a tyre rim code) as "R seventeen", "A4" as "A four"."""
    m = re.fullmatch(r"([a-z]{1,2})-?(\d{1,3})", str(q.value)) if q.kind == "id" else None
    if not m:
        return False
    for mt in re.finditer(rf"\b{m.group(1)}[ -](?=[a-z])", other_text, re.IGNORECASE):
        first = next((o for o in extract(other_text[mt.end():mt.end() + 40]) if o.start == 0), None)
        if first is not None and first.kind == "num" and float(first.value) == int(m.group(2)):
            return True
    return False


def _name_alone(q: Quantity, other_text: str) -> bool:
    """A name with a number that the other text writes without it: "COVID-19" as "covid patients" (not "COVID-20",
    and not a short code: "B-52" as "B" is no name)."""
    m = re.fullmatch(r"([a-z]{4,})-(\d{1,2})", str(q.value)) if q.kind == "id" else None
    return bool(m) and re.search(rf"\b{m.group(1)}\b(?![-\s]?\d)", other_text, re.IGNORECASE) is not None


_NAME_BEFORE = re.compile(r"\b([A-Z][a-z]{2,}|[A-Z]{3,})[ \t]+$")
_NOT_NAMES = frozenset({"the", "in", "on", "at", "by", "of", "for", "from", "since", "about", "around", "over", "under",
                        "after", "before", "until", "between", "and", "with", "than", "some", "only", "nearly",
                        "almost", "roughly", "aged", "age", "all", "each", "every", "these", "those", "its", "his",
                        "her", "their", "our", "your", "total", "game", "round", "stage", "set", "frame", "page"})


def _dropped_name(q: Quantity, text: str, other_text: str) -> bool:
    """The number of a name ("Apollo 11", "Intel 4004") that the other text drops with the name word itself: the
    entity features judge a dropped name; the number is no separate quantity."""
    if q.kind != "num" or q.unit is not None or not float(q.value).is_integer() or q.text != q.text.strip():
        return False
    m = _NAME_BEFORE.search(text[max(0, q.start - 30):q.start])
    if not m or m.group(1).lower() in _NOT_NAMES or m.group(1).capitalize() in MONTHS:
        return False
    return re.search(rf"\b{re.escape(m.group(1))}\b", other_text, re.IGNORECASE) is None


def _formula_named(q: Quantity, other_text: str) -> bool:
    name = FORMULA_NAMES.get(str(q.value)) if q.kind == "id" else None
    return bool(name) and name in other_text.lower()


@dataclass
class NumberDiff:
    missing: list[Quantity]   # in the source, not in the rewrite
    extra: list[Quantity]     # in the rewrite, not supported by the source
    n_source: int
    n_rewrite: int

    @property
    def score(self) -> float:
        """Share of all quantities (both sides) that the other side covers; 1.0 when there are none."""
        total = self.n_source + self.n_rewrite
        return 1.0 if total == 0 else 1 - (len(self.missing) + len(self.extra)) / total


def _dedup(qs: list[Quantity]) -> list[Quantity]:
    seen, out = {}, []
    for q in qs:
        key = (q.kind, q.label())
        if key not in seen:
            seen[key] = q
            out.append(q)
        elif q.pos:  # "Games: 6 ... game 6": the repeated number is also a position
            seen[key].pos = True
    return out


def compare(source: str, rewrite: str) -> NumberDiff:
    """Both-way comparison of the quantities stated in `source` and `rewrite` (repetitions count once)."""
    src, rw = _dedup(extract(source)), _dedup(extract(rewrite))
    norm_src = normalize(source)
    missing = [q for q in src if not q.soft and not covered(q, rw) and not _formula_named(q, rewrite)
               and not _spelled_id(q, rewrite) and not _name_alone(q, rewrite)
               and not _dropped_name(q, norm_src, rewrite)]
    extra = [q for q in rw if not q.soft and not covered(q, src) and not _formula_named(q, source)
             and not _name_alone(q, source)]
    return NumberDiff(missing, extra, sum(not q.soft and not _dropped_name(q, norm_src, rewrite) for q in src),
                      sum(not q.soft for q in rw))
