"""Quantity normaliser: numbers, number words, ordinals, percentages, units, dates, ranges and ids in text.

`extract(text)` returns `Quantity` items in a canonical form so that surface variants compare equal:
"1,200" = "1 200" = "1200" = "twelve hundred"; "a dozen" = 12; "third" = "3rd"; "45 per cent" = "45%";
"3.5 km" = "3.5 kilometres" = "3500 m"; "March 3, 1998" = "3 March 1998" = "1998-03-03"; "3-5 km" gives 3 km and
5 km. Numbers glued to letters that are not a unit or ordinal suffix ("COVID-19", "B-52", "A380") are ids and
compare as whole strings. `compare(source, rewrite)` checks BOTH ways: source quantities missing from the rewrite,
and rewrite quantities the source does not support.

The scanner runs in passes (dates, ids, digits, number words), each blanking the spans it consumed so that a later
pass cannot read "1998" of a date again as a bare number.

This module holds the public API and the passes that frame the others (noise, labels, ranges, compound measures);
the readers of particular forms are rephrase.verify.number_times (dates, clock and race times, short years) and
rephrase.verify.number_words (ids, digits, number words), the `Quantity` record is rephrase.verify.quantity, and
matching one quantity against the other text's is rephrase.verify.number_match (`covered`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rephrase.verify.number_match import CONVERSION_REL_TOL, covered, version_parts
from rephrase.verify.number_times import _dates, _ordinal_dates, _short_years, _times
from rephrase.verify.number_words import (MULTIPLES, SOFT_COUNTS, SOFT_ORDINALS, _digits, _fractions, _ids,
                                          _number_words, _regnal)
from rephrase.verify.quantity import Quantity, _blank
from rephrase.verify.scaffold import normalize
from rephrase.verify.units import COMPOUNDS, MONTHS, ORDINALS, SCALES, UNITS, match_unit, per_unit

__all__ = ["CONVERSION_REL_TOL", "FORMULA_NAMES", "MULTIPLES", "SOFT_COUNTS", "SOFT_ORDINALS", "NumberDiff", "Quantity",
           "compare", "covered", "extract"]

_MINUS = re.compile(r"\bminus\s+(?=\d)", re.IGNORECASE)
#: chemical formulas and their names: an id on one side is matched by the name on the other
FORMULA_NAMES = {"co2": "carbon dioxide", "h2o": "water", "o2": "oxygen", "n2": "nitrogen", "h2": "hydrogen",
                 "ch4": "methane", "nacl": "sodium chloride", "h2so4": "sulfuric acid", "nh3": "ammonia"}


# ---------------------------------------------------------------- ranges and the public API
_RANGE_GAP = re.compile(r"^\s*(?:-|–|—|to|and|or|,)\s*$", re.IGNORECASE)


#: the sides of a size: "16.5 × 21.6 cm" is 16.5 cm by 21.6 cm
_BY_GAP = re.compile(r"^\s*(?:\u00d7|x)\s*$")


def _ranges(qs: list[Quantity], text: str) -> None:
    """'3-5 km', '3 to 5 km', 'between 1 and 2 million', '16.5 × 21.6 cm': the first end (or side) inherits the unit
    (and scale) of the last."""
    for a, b in zip(reversed(qs[:-1]), reversed(qs[1:])):
        gap = text[a.end:b.start]
        if a.kind == b.kind == "num" and (a.unit is None or a.unit == b.unit and a.scale == 1.0 != b.scale
                                          and UNITS[a.unit].dim in ("usd", "gbp", "eur")) and b.unit and (_RANGE_GAP.match(gap) or _BY_GAP.match(gap)) and not (
                "," in text[a.end:b.start] and len(b.text) - len(b.text.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) == 1):
            # (not over a comma to a one-letter symbol: "R seventeen, ninety-four W" is a code, not 17 W)
            if _year_before(a, b, gap):
                continue
            a.unit = b.unit
            if a.scale == 1.0 and b.scale != 1.0:
                a.value, a.scale = float(a.value) * b.scale, b.scale
            sw = re.search(r"(?i)\b(million|billion|trillion)\b", b.text) if a.scale == b.scale == 1.0 else None
            if sw and not re.search(r"(?i)\b(?:thousand|million|billion|trillion)\b", a.text) and (
                    float(a.value) < SCALES[sw.group(1).lower()]):
                # "five to seven million pounds" in words: the first end is millions too
                a.value = float(a.value) * SCALES[sw.group(1).lower()]


def _year_before(a: Quantity, b: Quantity, gap: str) -> bool:
    """"In 2023, 1.1 million kg": a year written as four bare digits before a comma, or above the other end, opens
    the clause and is no end of a range: it takes neither the unit nor the multiplier of the number after it."""
    year = bool(re.fullmatch(r"1\d{3}|20\d\d", a.text)) and a.scale == 1.0
    return year and ("," in gap or float(a.value) > float(b.value) / (b.scale or 1.0))


#: numbers that state no fact and that rewrites rightly drop: citation marks "[12]", list numbering "3. "
_NOISE = re.compile(r"\[\d{1,3}(?:\s*[,–-]\s*\d{1,3})*\]|(?m:^)\s*\d{1,2}[.)/](?=\s+\D)|"
                    r"(?m:^)[ \t]*\d{1,2}/(?=[ \t]+\d)|"  # a thread's post number before a figure: "2/ 1.19 kg"
                    r"\b(?:p|pp|page|entry|no|vol|episode|ep|card|step|post|slide|item)\.?\s*#?\d{1,4}\b(?!\s*(?:%|percent)|[,.]\d)",
                    re.IGNORECASE)


#: scaffolding numbers written with a capital or in a fixed frame: an audio tour's "Stop 14", a phone menu's
#: "press 2 for the next stop", a quiz's "For 400:" / "For 100 points", a forum's "ELI5"
_NOISE_FRAME = re.compile(r"\bStop\s+\d{1,3}\b|\b(?i:press)\s+\d{1,3}\b(?=\s+(?:for|to|when|once|if|now|and|or)\b|\s*[.!,;])|"
                          # an audio tour's way on: "Please move on to Exhibit 10.", "continue to Stop 4"
                          r"\b(?i:move|go|walk|head|continue|proceed|come)\s+(?:(?i:on|over|back|along)\s+)?(?i:to)\s+"
                          r"(?:(?i:the)\s+)?(?:(?i:next)\s+)?(?i:exhibit|stop|room|gallery|track|station|case|display|"
                          r"object|point|number)\s+\d{1,3}\b(?!\s*(?:%|[.,]\d))|"
                          r"\b(?i:for)\s+\$?(?:[1-9]00|1000)\s*:|\b(?i:for)\s+\$?\d{1,5}\s+points\b|\b(?i:eli5)\b|"
                          r"\b(?i:chapter|lesson|worksheet)\s+\d{1,2}\b(?!\s*(?:%|[.,]\d))|"
                          r"(?m:^)[ \t]*(?i:panel|caption|frame|scene|slide|card|speaker|part|round|host|guest|track|exhibit|stop|"
                          r"caller|voice|player|contestant|interviewer)\s+\d{1,2}\s*:|(?m:^)[ \t]*[A-Z]{2,}\s+\d\s*:|"
                          r"(?m:^)[ \t]*[QA]\d{1,2}\s*[.:)]|(?m:^)[ \t#]*(?:BOX|Box|Figure|Fig\.|Table)\s+\d{1,2}(?:\.\d{1,2})?\b|"
                          r"\(\d{1,2}\s+marks?\)|"  # an exam question's "(5 marks)"; a listicle's "7 Things to Know":
                          r"(?m:^)[ \t#]*(?:\d{1,2}|(?i:three|four|five|six|seven|eight|nine|ten|twelve))(?:\s+[A-Z][\w'-]*){0,2}\s+"
                          r"(?i:things|facts|reasons|ways|tips|questions|takeaways|moments)\b|"
                          # a man page's header "HTTP2(7)": the page name and its manual section
                          r"\b[A-Z][A-Z0-9_.-]*\(\d[a-z]?\)(?!\w)|"
                          # a quiz's "Question four:"; a crossword's "1 Across:", "6 Down" and its enumeration "(4,6):"
                          r"\b(?i:question)\s+(?:\d{1,2}|(?i:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve))"
                          r"(?=\s*[:.?!])|\b\d{1,2}\s+(?:Across|Down|ACROSS|DOWN)\b|\(\d{1,2}(?:[,-]\s?\d{1,2})*\)(?=\s*:)")
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


_ISO_DATE = re.compile(r"(?<![\d.,-])\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?![\d-])")


def _iso_month(m: re.Match, iso_text: bool) -> bool:
    """Is "2000-10" an ISO year and month rather than a range of years? Always before a day ("2000-10-16"), and in
    a text that writes ISO dates; a zero-padded month ("2000-08") may be either (read both ways, soft)."""
    mm = int(m.group(3))
    return 1 <= mm <= 12 and (m.string.startswith("-", m.end()) or iso_text or m.group(3).startswith("0"))


def _expand_ranges(text: str) -> str:
    """"1958-61" -> "1958-1961" (only where the short end is later: "2010-11"), "1280s-90s" -> "1280s-1290s"."""
    iso_text = bool(_ISO_DATE.search(text))
    text = _YEAR_RANGE.sub(lambda m: m.group(0) if int(m.group(3)) <= int(m.group(2)) or _iso_month(m, iso_text)
                           else f"{m.group(1)}{m.group(2)}-{m.group(1)}{m.group(3)}", text)
    return _DECADE_RANGE.sub(lambda m: m.group(0) if int(m.group(3)) <= int(m.group(2)) else
                             f"{m.group(1)}{m.group(2)}s-{m.group(1)}{m.group(3)}s", text)


def _ambiguous_year_months(dates: list[Quantity], text: str) -> list[Quantity]:
    """"2007-08" (zero-padded, the month later than the year's last digits) in a text without ISO dates is a
    year-month or a range of years: the date and both years are soft, each may support the other side."""
    if _ISO_DATE.search(text):
        return []
    out = []
    for q in dates:
        m = re.fullmatch(r"(\d\d)(\d\d)-(0\d)", q.text) if q.kind == "date" and q.d is None else None
        if m and int(m.group(3)) > int(m.group(2)):
            q.soft = True
            for y in (int(m.group(1) + m.group(2)), int(m.group(1) + m.group(3))):
                out.append(Quantity("num", float(y), text=q.text, start=q.start, end=q.end, soft=True))
    return out


#: a line that starts with a bare number and a capital ("2 No artificial waterway ...", a circled "②" after NFKC)
_LINE_NUM = re.compile(r"(?m)^[ \t]*(\d{1,2})(?=[ \t]+[A-Z\u00C0-\u024F\"'(])")


_CELL = re.compile(r"[^;|\n]+")
_APPROX = re.compile(r"^(?:[~\u2248]|approx\.?|about|c\.|ca\.)\s*", re.IGNORECASE)


def _cell_unit(cell: str) -> str | None:
    """The unit a table header cell names for its column: "°C", "≈ °F", "Height (m)", "Speed [km/h]"."""
    cell = _APPROX.sub("", cell.strip().rstrip(".").strip())
    m = re.search(r"[(\[]\s*(?:in\s+)?([^()\[\]]+?)\s*[)\]]$", cell)
    for cand in ([m.group(1)] if m else []) + [cell]:
        cand = _APPROX.sub("", cand)
        um = match_unit(cand, 0) if cand else None
        if um and um[1] == len(cand) and (len(cand) > 1 or cand in ("m", "g", "s", "h", "K", "t")):
            return um[0]
    return None


def _column_units(text: str) -> list[tuple[int, int, str]]:
    """Spans of table cells whose column header names a unit: "| Stage | °C | ≈ °F |" over "| Thread | 110-112 |
    230-234 |" (or the stripped "Stage; °C; ≈ °F." over "Thread; 110-112; 230-234."): the header's unit applies to
    the column's bare numbers, so a converted column is read in its own unit."""
    out: list[tuple[int, int, str]] = []
    units: list[str | None] | None = None
    pos = 0
    for line in text.split("\n"):
        cells = [m for m in _CELL.finditer(line) if m.group(0).strip()] if (";" in line or "|" in line) else []
        if units is not None and cells and len(cells) == len(units):
            out += [(pos + c.start(), pos + c.end(), u) for c, u in zip(cells, units) if u]
        elif units is not None and (not line.strip() or re.fullmatch(r"[\s|:-]+", line)):
            pass  # the rule line or the blank left of it
        else:
            units = None
            header = [_cell_unit(c.group(0)) for c in cells]
            if len(cells) >= 2 and any(header):
                units = header
        pos += len(line) + 1
    return out


_FOOTNOTE_LINE = re.compile(r"(?m)^[ \t]*(\d)(?=[ \t]+[A-Za-z\u00C0-\u024F\"'(])")


def _footnotes(text: str) -> str:
    """Blank footnote marks: a digit glued after a word or punctuation ("1919,¹", "Germany.²" after NFKC) whose note
    starts a later line with the same digit ("¹ Five years to the day ...")."""
    out = list(text)
    for ln in _FOOTNOTE_LINE.finditer(text):
        marks = list(re.finditer(rf"(?<=[A-Za-z\u00C0-\u024F.,;:!?)\]\"'])({ln.group(1)})(?=[\s.,;:)]|$)",
                                 text[:ln.start()]))
        if marks:
            for a, b in [(marks[-1].start(1), marks[-1].end(1)), (ln.start(1), ln.end(1))]:
                out[a:b] = " " * (b - a)
    return "".join(out)


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


#: a line that starts with a word and a number, then a colon or dash: "Ingredient 2 - drinks: ...", "Stage 3: ..."
_WORD_NUM_LINE = re.compile(r"(?m)^[ \t]*([A-Z][A-Za-z]+)[ \t]+#?(\d{1,2})(?=[ \t]*(?:[:.)]|-[ \t]))")


def _word_list_numbers(text: str) -> str:
    """Blank the numbers of labelled list lines: "Ingredient 1 - ...", "Ingredient 2 - ...", "Ingredient 3 - ...", the
    same word on consecutive lines counting 1, 2, 3, ... (two or more): the label numbers the card's items."""
    out = list(text)
    run: list[re.Match] = []
    for m in list(_WORD_NUM_LINE.finditer(text)) + [None]:
        if m is not None and run and m.group(1) == run[-1].group(1) and int(m.group(2)) == int(run[-1].group(2)) + 1 \
                and text.count("\n", run[-1].end(), m.start()) == 1:
            run.append(m)
            continue
        if len(run) >= 2:
            for r in run:
                out[r.start(2):r.end(2)] = " " * (r.end(2) - r.start(2))
        run = [m] if m is not None and int(m.group(2)) == 1 else []
    return "".join(out)


_INLINE_NUM = re.compile(r"(?:(?<=[:.;!?])[ \t]+|^)(\d{1,2})[.)](?=[ \t]+[A-Z\u00C0-\u024F])")


def _inline_list_numbers(text: str) -> str:
    """Blank the numbering of a list run into a paragraph: "several versions: 1. Fournier point ... 2. Didot point
    ... 3. American point", each "N." after a sentence end or colon and before a capital, counting 1, 2, 3, ..."""
    out = list(text)
    run: list[re.Match] = []
    for m in list(_INLINE_NUM.finditer(text)) + [None]:
        if m is not None and int(m.group(1)) == (int(run[-1].group(1)) + 1 if run else 1):
            run.append(m)
            continue
        if len(run) >= 3:
            for r in run:
                out[r.start(1):r.end(1)] = " " * (r.end(1) - r.start(1))
        run = [m] if m is not None and int(m.group(1)) == 1 else []
    return "".join(out)


_PAREN_NUM = re.compile(r"(?:(?<=[\s:;.!?])|^)\((\d{1,2})\)(?=[ \t]+\S)")
#: an ordinal word that labels a part at a sentence start: a quiz's "First: ... Second: ... Third:"
_ORDINAL_LABEL = re.compile(r"(?:(?<=[.!?:]\s)|(?<=[.!?:]\s\s)|(?<=\n)|^)[ \t]*([A-Z][a-z]+)(?=\s*:)")


def _enumerators(text: str) -> str:
    """Blank the enumerators of a paragraph's points: "(1) Every consistent system ... (2) No such system ...",
    and ordinal words that label a quiz's questions ("First: in which city ...? Second: who won ...?"): each counts
    1, 2, 3, ... from the first, two or more in a run."""
    out = list(text)
    for pat, value in ((_PAREN_NUM, lambda m: int(m.group(1))),
                       (_ORDINAL_LABEL, lambda m: ORDINALS.get(m.group(1).lower(), 0))):
        run: list[re.Match] = []
        for m in list(pat.finditer(text)) + [None]:
            if m is not None and value(m) and value(m) == (value(run[-1]) + 1 if run else 1):
                run.append(m)
                continue
            if len(run) >= 2:
                for r in run:
                    a, b = (r.start(), r.end()) if pat is _PAREN_NUM else (r.start(1), r.end(1))
                    out[a:b] = " " * (b - a)
            run = [m] if m is not None and value(m) == 1 else []
    return "".join(out)


_ID_RANGE = re.compile(r"([a-z]+)(\d{1,6})-\1(\d{1,6})")
_ID_RANGE_GAP = re.compile(r"^\s*(?:-|to|through|thru)\s*$", re.IGNORECASE)


def _id_ranges(ids: list[Quantity], text: str) -> list[Quantity]:
    """A run of codes with one prefix, "L2310-L2314" = "L2310 to L2314", "H1-H4" = "H1 through H4": each form also
    states the other (the range, its two ends), and the number of codes it spans ("four clocks, H1 to H4"); all
    soft, so either form may support the other and none is required."""
    out: list[Quantity] = []
    pairs = [(m.group(1), m.group(2), m.group(3), q.text, q.start, q.end)
             for q in ids if q.kind == "id" for m in [_ID_RANGE.fullmatch(str(q.value))] if m]
    for a, b in zip(ids, ids[1:]):
        ma = re.fullmatch(r"([a-z]+)(\d{1,6})", str(a.value)) if a.kind == "id" else None
        mb = re.fullmatch(r"([a-z]+)(\d{1,6})", str(b.value)) if b.kind == "id" else None
        if ma and mb and ma.group(1) == mb.group(1) and _ID_RANGE_GAP.match(text[a.end:b.start]):
            pairs.append((ma.group(1), ma.group(2), mb.group(2), text[a.start:b.end], a.start, b.end))
    for prefix, lo, hi, span, start, end in pairs:
        if int(lo) >= int(hi):
            continue
        for v in (f"{prefix}{lo}", f"{prefix}{hi}", f"{prefix}{lo}-{prefix}{hi}"):
            out.append(Quantity("id", v, text=span, start=start, end=end, soft=True))
        if int(hi) - int(lo) < 100:
            out.append(Quantity("num", float(int(hi) - int(lo) + 1), text=span, start=start, end=end, soft=True))
    return out


#: a number used as a label: "tank No. 2", "win no. 4", "patent number 139,121", "#3"
_LABEL_NO = re.compile(r"(?:\b(?:no|nos|number)\.?\s*#?|(?<![\w&])#)(?P<n>\d{1,3}(?:,\d{3})+|\d{1,7})\b"
                       r"(?![.,]\d|\s*(?:%|percent|per\s*cent))", re.IGNORECASE)


_MEDAL = re.compile(r"\b(?:took|won|claimed|taking|winning|earned|with)\s+(?:the\s+)?(?P<m>gold|silver|bronze)\b",
                    re.IGNORECASE)


def _medals(text: str) -> list[Quantity]:
    """"took bronze" (soft): it may support "third", "in third", and is never required."""
    return [Quantity("ord", float({"gold": 1, "silver": 2, "bronze": 3}[m.group("m").lower()]), text=m.group(0),
                     start=m.start("m"), end=m.end(), soft=True) for m in _MEDAL.finditer(text)]


#: a count of none in words: "nobody died", "no one was hurt", "none required treatment", "no deaths", "no new cases",
#: and zero times: "never turns riders upside down" for a table's "Inversions: 0"
_NO_COUNT = re.compile(r"\b(?:nobody|no[ \t]+one|none|never|no(?=[ \t]+(?:[a-z]+[ \t]+)?[a-z]{2,}(?<!s)s\b))\b",
                       re.IGNORECASE)


def _no_counts(text: str) -> list[Quantity]:
    """"nobody died that month" states the count 0 of a table's "Deaths: 0" (soft: it may support a bare 0 of the
    other text, and is never required)."""
    return [Quantity("num", 0.0, text=m.group(0), start=m.start(), end=m.end(), soft=True)
            for m in _NO_COUNT.finditer(text)]


def _labels(text: str) -> tuple[list[Quantity], str]:
    """A label number is soft, read both as a number and as a position ("win no. 4" for "his fourth win",
    "tank 2" for "tank No. 2"): it may support the other side, and a rewrite may drop it."""
    out = []
    for mt in _LABEL_NO.finditer(text):
        v = float(mt.group("n").replace(",", ""))
        for kind in ("num", "ord"):
            out.append(Quantity(kind, v, text=mt.group(0), start=mt.start(), end=mt.end(), soft=True))
    return out, _blank(text, out)


#: a power of ten (superscripts are "10^6" after normalize): "30 × 10^6 m³", "3 x 10^6", "3×10^6", "10^-19"
_POWER_OF_TEN = re.compile(r"(?<![\w.,])(?:(\d+(?:\.\d+)?)[ \t]*[\u00d7x\u2715*][ \t]*)?(?<![\w.,^])10\^\(?([-+]?\d{1,3})\)?"
                           r"(?![\d.]\d|\d)")


def _powers_of_ten(text: str) -> str:
    def value(m: re.Match) -> str:
        v = float(m.group(1) or 1) * 10.0 ** int(m.group(2))
        return f"{v:.15g}" if 1e-6 <= abs(v) < 1e15 or v == 0 else f"{v:.6e}"
    return _POWER_OF_TEN.sub(value, text)


#: an earthquake's magnitude: "M7.8", "a M5.1 earthquake", "Mw 9.0" (the magnitude 7.8, not 7 metres)
_MAGNITUDE = re.compile(r"\bM(?:w|W|L|s|b)?[ \t]?(?=\d\.\d\b)|\bM(?:w|W|L)[ \t]?(?=\d)")
#: the score of a drawn game, "½–½": the same fact as the word "draw" (soft)
_DRAW_SCORE = re.compile(r"(?<![\d.])1/2[ \t]*-[ \t]*1/2(?![\d/])")


_MONTH_DAYS = {1: 31, 2: 28, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
#: "the last day of August 1955" = 31 August 1955, "the first day of May" = 1 May
_EDGE_DAY = re.compile(r"\b(?P<edge>last|first|final)[ \t]+day[ \t]+of[ \t]+(?P<mon>[A-Z][a-z]+)(?P<y>[ \t,]+\d{4}\b)?")


def _edge_days(text: str) -> str:
    def day(m: re.Match) -> str:
        mon = MONTHS.get(m.group("mon"))
        if not mon:
            return m.group(0)
        if m.group("edge") == "first":
            d = 1
        elif mon == 2:
            y = int(m.group("y").strip(" \t,")) if m.group("y") else None
            if y is None:
                return m.group(0)
            d = 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
        else:
            d = _MONTH_DAYS[mon]
        head = f"{d} {m.group('mon')}"
        return head.rjust(m.end("mon") - m.start()) + (m.group("y") or "")
    return _EDGE_DAY.sub(day, text)


def extract(text: str) -> list[Quantity]:
    """All quantities in `text`, in order of appearance (after Unicode normalisation: "−5", "５" read as "-5", "5")."""
    text = _edge_days(_MAGNITUDE.sub(lambda m: " " * len(m.group(0)), _powers_of_ten(normalize(text))))
    list_counts = _list_counts(normalize(text))
    text = _enumerators(_footnotes(_inline_list_numbers(_word_list_numbers(_list_numbers(
        _NOISE_FRAME.sub(lambda m: " " * len(m.group(0)), normalize(text)))))))
    labels, text = _labels(text)
    text = _expand_ranges(_VULGAR.sub(_vulgar, _NOISE.sub(lambda m: " " * len(m.group(0)), text)))
    draws = [Quantity("num", 0.5, text=m.group(0), start=m.start(), end=m.end(), soft=True)
             for m in _DRAW_SCORE.finditer(text)]
    labels += draws
    text = _blank(text, draws)
    text = _MINUS.sub("-", _ordinal_dates(text))
    columns = _column_units(text)
    times, text = _times(text)
    dates, rest = _dates(text)
    dates += _ambiguous_year_months(dates, text)
    dates += times
    short, rest = _short_years(rest)
    dates += short
    ids, rest = _ids(rest)
    regnal, rest = _regnal(rest)
    ids += regnal
    ids += _id_ranges(ids, rest)
    fractions, rest = _fractions(rest)
    digits = fractions + _digits(rest)
    nums = sorted(digits + _number_words(_blank(rest, digits)), key=lambda q: q.start)
    for q in nums:
        if q.kind == "num" and q.unit is None:
            q.unit = next((u for a, b, u in columns if a <= q.start < b), None)
    _elided_units(nums, rest)
    _named_lists(nums, rest)
    weights = _sterling(nums, rest)  # (the weight readings join the output last: no part of a compound measure)
    nums += _one_in(nums, rest)
    nums.sort(key=lambda q: q.start)
    _spoken_short_years(nums, dates, rest)
    _short_year_ends(nums, rest)
    _ranges(nums, rest)
    nums = _compound_measures(nums, rest)
    _out_of(nums, rest)
    _bracket_twins(nums, rest)
    for q in nums:
        q.counted = (q.kind == "num" and q.unit is None and bool(_COUNT_NOUN.match(rest, q.end))
                     and not re.search(r"\b[A-Z][A-Za-z]*[ \t]+$", rest[max(0, q.start - 20):q.start]))  # "ISO 216 defines"
        q.fall = bool(_FALL.search(rest[max(0, q.start - 40):q.start]))
        q.pos = (q.kind == "num" and q.unit is None and float(q.value).is_integer() and 1 <= float(q.value) <= 99
                 and (bool(_POS_BEFORE.search(rest[max(0, q.start - 24):q.start])) or bool(
                     re.search(r"(?:^|\n)[ \t]*$", rest[max(0, q.start - 24):q.start]) and re.match(r"[ \t]*[;|]", rest[q.end:])))
                 and (not _COUNTED_NOUN.match(rest, q.end) or bool(_NUMBER_BEFORE.search(rest[max(0, q.start - 12):q.start]))))
        bm = _BOUND.search(rest[max(0, q.start - 24):q.start])
        if bm:
            q.bound = ">" if bm.group("gt") else "<"
    _day_ranges(nums, rest)
    _list_announcements(nums, rest, list_counts)
    out = sorted(dates + ids + nums + weights + labels + _medals(rest) + _no_counts(rest), key=lambda q: q.start)
    return sorted(out + _relative_years(out, rest) + _relative_days(out, rest) + _relative_months(out, rest),
                  key=lambda q: q.start)


#: a list item: "1. ...", "2) ...", "- ...", "• ..."
_LIST_ITEM = re.compile(r"[ \t]*(?:(\d{1,2})[.)]|[-*\u2022\u25aa\u00b7\u2013])[ \t]+\S")


#: money written near "pounds": a price, a cost, a payment, or a text that writes sterling ("£", "shillings")
_MONEY_TEXT = re.compile(r"\u00a3|\bGBP\b|\b(?:shillings?|pence|penny|sterling|guineas?)\b", re.IGNORECASE)
_MONEY_BEFORE = re.compile(r"\b(?:cost|costs|costing|costed|paid|pay|pays|paying|price|priced|prices|worth|fine|fined|"
                           r"prize|salary|wages?|budget|fee|fees|sold|sell|sells|spent|spend|raised|raise|funding|"
                           r"funded|donated|bought|buy|earned|earn|charged|charge|award|awarded|damages|sum|grant)\b",
                           re.IGNORECASE)


def _sterling(nums: list[Quantity], text: str) -> list[Quantity]:
    """"Four pounds ten shillings!", "a cost of roughly ten million pounds": the word "pounds" beside money is
    sterling; the weight reading stays as its soft twin (either may be matched)."""
    out = []
    money_text = bool(_MONEY_TEXT.search(text))
    for q in nums:
        if (q.kind == "num" and q.unit == "lb" and re.search(r"(?i)pounds?$", q.text)
                and (money_text or _MONEY_BEFORE.search(text[max(0, q.start - 40):q.start])
                     # "a four-hundred-and-twelve-million-pound plan": a weight is never counted in millions
                     or re.search(r"(?i)\b(?:million|billion|trillion|bn|m)\b[ -]?pounds?$", q.text))):
            lb = Quantity("num", q.value, unit="lb", text=q.text, start=q.start, end=q.end, scale=q.scale, soft=True)
            q.unit, q.twin = "gbp", lb
            out.append(lb)
    return out


#: a number compared with a measure, its noun left out: "in about nine years rather than the three he had promised"
_ELIDED_GAP = re.compile(r"^[ \t]*,?[ \t]*(?:rather[ \t]+than|instead[ \t]+of|not|compared[ \t]+(?:with|to)|versus|vs\.?|"
                         r"than)[ \t]+(?:the[ \t]+|an?[ \t]+|some[ \t]+|about[ \t]+)?$", re.IGNORECASE)


def _elided_units(nums: list[Quantity], text: str) -> None:
    """The later number of "nine years rather than the three" is three years (no noun follows it)."""
    for a, b in zip(nums, nums[1:]):
        if (a.kind == b.kind == "num" and a.unit and b.unit is None and _ELIDED_GAP.match(text[a.end:b.start])
                and not _COUNTED_NOUN.match(text, b.end)):
            b.unit = a.unit


#: a count before the names it counts: "four men - John McCarthy, Marvin Minsky, Nathaniel Rochester and Claude
#: Shannon -", "two sisters, Anne and Emily"
_NAMED_LIST_HEAD = re.compile(r"[ \t]+[a-z]+(?:[ \t]+[a-z]+)?[ \t]*(?:-|:|,|\()[ \t]*")
_NAME_ITEM = re.compile(r"[A-Z][\w.'-]*(?:[ \t]+(?:[A-Z][\w.'-]*|de|van|von|da|di|le|la|of))*")
_ITEM_SEP = re.compile(r"[ \t]*,[ \t]*(?:and[ \t]+)?|[ \t]+and[ \t]+")


def _named_lists(nums: list[Quantity], text: str) -> None:
    """A count that restates the list of names right after it is no separate fact (soft): "four men - A, B, C and
    D" (a list of another length keeps the count, so a changed count is still read)."""
    for q in nums:
        if not (q.kind == "num" and q.unit is None and float(q.value).is_integer() and 2 <= float(q.value) <= 12):
            continue
        h = _NAMED_LIST_HEAD.match(text, q.end)
        if not h:
            continue
        pos, n = h.end(), 0
        while True:
            it = _NAME_ITEM.match(text, pos)
            if not it:
                break
            n, pos = n + 1, it.end()
            sep = _ITEM_SEP.match(text, pos)
            if not sep:
                break
            pos = sep.end()
        if n == int(q.value) and n >= 2 and re.match(r"[ \t]*(?:-|\)|[.;:!?]|$)", text[pos:]):
            q.soft = True


_ONE_IN_GAP = re.compile(r"^[ \t]+in[ \t]+$", re.IGNORECASE)  # ("one in every four" is a share: _out_of)


def _one_in(nums: list[Quantity], text: str) -> list[Quantity]:
    """"1 in 70", "one in seventy": odds, a ratio, the same fact as "1/70"; "seven in ten" = 70% (the two counts
    stay, soft)."""
    out = []
    for a, b in zip(nums, nums[1:]):
        if not (a.kind == b.kind == "num" and a.unit is None and b.unit is None and _ONE_IN_GAP.match(text[a.end:b.start])):
            continue
        va, vb = float(a.value), float(b.value)
        year = vb.is_integer() and 1000 <= vb <= 2100 and not re.search(r"[,\s]", b.text)  # "3 in 1990"
        # (odds are "1 in N"; "2 in 3 games" are counts) and a share of ten, a hundred or a thousand: "seven in ten
        # guest nights - 70% - were by foreign guests", "three in 100 patients"
        if vb.is_integer() and not year and (va == 1 < vb or (va.is_integer() and 0 < va < vb and vb in (10, 100, 1000))):
            a.soft = b.soft = True
            out.append(Quantity("num", va / vb, text=text[a.start:b.end], start=a.start, end=b.end))
    return out


def _list_counts(text: str) -> dict[int, int]:
    """{index of the line that introduces a list: its number of items}, for each list of two or more items
    (numbered 1, 2, 3, ... or bulleted) that follows a non-blank line."""
    lines = text.split("\n")
    out: dict[int, int] = {}
    k = 0
    while k < len(lines):
        m = _LIST_ITEM.match(lines[k])
        if not m or (m.group(1) and int(m.group(1)) != 1):
            k += 1
            continue
        numbered, n, j = bool(m.group(1)), 0, k
        while j < len(lines):
            mj = _LIST_ITEM.match(lines[j])
            if mj and bool(mj.group(1)) == numbered and (not numbered or int(mj.group(1)) == n + 1):
                n, j = n + 1, j + 1
            elif not lines[j].strip():
                j += 1
            else:
                break
        intro = next((i for i in range(k - 1, -1, -1) if lines[i].strip()), None)
        if n >= 2 and intro is not None and not _LIST_ITEM.match(lines[intro]):
            out[intro] = n
        k = max(j, k + 1)
    return out


#: a count's noun, after at most two other words: "six steps", "5 things to know", "three key facts"
_ANNOUNCED_NOUN = re.compile(r"(?:[ \t]+[A-Za-z'-]+){0,2}?[ \t]+[A-Za-z]{3,}(?<!ss)s\b")


def _list_announcements(nums: list[Quantity], text: str, counts: dict[int, int]) -> None:
    """"Getting to know the bridge in six steps:" over a list of six items: the count of the text's own list items
    is structure, not a fact (soft)."""
    for q in nums:
        if (q.kind == "num" and q.unit is None and float(q.value).is_integer()
                and counts.get(text.count("\n", 0, q.start)) == int(q.value) and _ANNOUNCED_NOUN.match(text, q.end)):
            q.soft = True


#: "62 parts out of every 100", "18 out of 100", "one in every four", "7 parts in 100": a share, in per cent
_OUT_OF_GAP = re.compile(r"^[ \t]+(?:[A-Za-z]+[ \t]+){0,2}?(?:out[ \t]+of(?:[ \t]+(?:every|each))?|in[ \t]+(?:every|each))"
                         r"[ \t]+$|^[ \t]+parts?[ \t]+(?:in|per)[ \t]+$", re.IGNORECASE)


def _out_of(nums: list[Quantity], text: str) -> None:
    counts = []
    for a, b in zip(nums, nums[1:]):
        if (a.kind == b.kind == "num" and a.unit is None and 0 <= float(a.value) <= float(b.value)  # "of 100 litres"
                and float(b.value) > 0 and _OUT_OF_GAP.match(text[a.end:b.start])):
            if float(b.value) != 100:  # "26 out of 40 men" still states the count 26 (soft)
                counts.append(Quantity("num", a.value, text=a.text, start=a.start, end=a.end, soft=True))
            a.value, a.unit, a.soft = 100 * float(a.value) / float(b.value), "pct", False
            b.soft = True
    nums += counts
    nums.sort(key=lambda q: q.start)


#: a conversion in brackets after a measure: "0.2 m/s (40 feet per minute)", "5 km (about 3 miles)"
_BRACKET_OPEN = re.compile(r"\(\s*(?:(?:about|approx\.?|approximately|around|roughly|some|nearly|almost|c\.|ca\.|"
                           r"or|~|\u2248)\s*)*$", re.IGNORECASE)
#: the most a bracketed conversion may be off its measure and still be read as the same fact
TWIN_REL_TOL = 0.15


def _bracket_twins(nums: list[Quantity], text: str) -> None:
    rates: list[Quantity] = []
    for b in nums:
        if b.kind != "num" or not b.unit or b.soft:
            continue
        m = _BRACKET_OPEN.search(text[max(0, b.start - 30):b.start])
        if not m:
            continue
        pos = max(0, b.start - 30) + m.start()
        # (the measure's noun may come between: "a 5 km walk (about 3 miles)")
        a = next((a for a in nums if a.kind == "num" and a.unit and not a.soft and a.end <= pos
                  and re.fullmatch(r"(?:[ \t-]*[A-Za-z]+){0,2}[ \t]*", text[a.end:pos])), None)
        if a is None:
            continue
        close = re.match(r"[^()]{0,40}?\)", text[b.end:])
        per = per_unit(text, b.end + close.end()) if close else None
        if per:  # "90 feet (about 27.4 metres) per minute": a rate too, read both ways (soft: writers drop the rate)
            rates += [Quantity("num", x.value, unit=COMPOUNDS[(x.unit, per[0])], text=x.text, start=x.start,
                               end=x.end, scale=x.scale, soft=True) for x in (a, b) if (x.unit, per[0]) in COMPOUNDS]
        ua, ub = UNITS[a.unit], UNITS[b.unit]
        if ua.dim == ub.dim and a.unit != b.unit and not (ua.offset or ub.offset):
            va, vb = float(a.value) * ua.factor, float(b.value) * ub.factor
            if va and abs(va - vb) <= TWIN_REL_TOL * abs(va):
                b.twin = a
    nums += rates
    nums.sort(key=lambda q: q.start)


#: a year stated relative to the last year the text names: "from 455 the year before", "a year later"
_REL_YEAR = re.compile(r"\b(?:(?P<b>the[ \t]+(?:previous|preceding|prior)[ \t]+year|a[ \t]+year[ \t]+earlier|"
                       r"(?:the|a)[ \t]+year[ \t]+(?:before|prior)(?=\s*(?:[,.;:!?)\u2014\u2013]|\s-\s|$)))|"
                       r"(?P<a>the[ \t]+(?:following|next)[ \t]+year|a[ \t]+year[ \t]+later|"
                       r"the[ \t]+year[ \t]+after(?=\s*(?:[,.;:!?)\u2014\u2013]|\s-\s|$))))", re.IGNORECASE)


def _relative_years(qs: list[Quantity], text: str) -> list[Quantity]:
    """"Kestria in 2022 ... from 455 the year before": the year before the last one named (2021, soft: it may
    support a "2021" of the other text, and is never required)."""
    out = []
    stated = {float(q.value) for q in qs if q.kind == "num"}
    for m in _REL_YEAR.finditer(text):
        years = [q.y if q.kind == "date" else int(q.value) for q in qs if q.end <= m.start() and not q.soft and (
            (q.kind == "date" and q.y) or _plain_year(q))]
        y = years[-1] + (-1 if m.group("b") else 1) if years else None
        if y is not None and float(y) not in stated:  # (not "a year later, 1958": the year stated itself)
            out.append(Quantity("num", float(y), text=m.group(0), start=m.start(), end=m.end(), soft=True))
    return out


#: a month of the last year the text names: "in February of that same year", "that year, in February"
_REL_MONTH = re.compile(r"\b(?P<mon>[A-Z][a-z]+)[ \t]+of[ \t]+(?:that|the)[ \t]+(?:same[ \t]+)?year\b")


def _relative_months(qs: list[Quantity], text: str) -> list[Quantity]:
    """"On August 1, 1861 ... in February of that same year": February of the last year named (1861-02, soft: it
    may support the other text's "February 1861", and is never required)."""
    out = []
    for m in _REL_MONTH.finditer(text):
        mon = MONTHS.get(m.group("mon"))
        years = [q.y if q.kind == "date" else int(q.value) for q in qs if q.end <= m.start() and not q.soft and (
            (q.kind == "date" and q.y) or _plain_year(q))]
        if mon and years:
            out.append(Quantity("date", 0.0, text=m.group(0), start=m.start(), end=m.end(), y=years[-1], m=mon,
                                soft=True))
    return out


_REL_DAY = re.compile(r"\b(?:(?P<a>the[ \t]+(?:next|following)[ \t]+day|the[ \t]+day[ \t]+after"
                      r"(?=\s*(?:[,.;:!?)]|\s-\s|$))|a[ \t]+day[ \t]+later)|(?P<b>the[ \t]+(?:previous|preceding)[ \t]+day|"
                      r"the[ \t]+day[ \t]+before(?=\s*(?:[,.;:!?)]|\s-\s|$))|a[ \t]+day[ \t]+earlier))", re.IGNORECASE)


def _relative_days(qs: list[Quantity], text: str) -> list[Quantity]:
    """"On 7 September Snow presented ... the handle was removed the next day": the day after the last day-date
    named (8 September, soft: it may support the other text's date, and is never required)."""
    out = []
    for m in _REL_DAY.finditer(text):
        last = [q for q in qs if q.kind == "date" and q.d and q.m and q.end <= m.start() and not q.soft]
        if not last:
            continue
        q = last[-1]
        step = 1 if m.group("a") else -1
        days = _MONTH_DAYS[q.m] + (1 if q.m == 2 and q.y and q.y % 4 == 0 and (q.y % 100 or q.y % 400 == 0) else 0)
        y, mo, d = q.y, q.m, q.d + step
        if d > days:
            mo, d = mo % 12 + 1, 1
            y = y + 1 if y and mo == 1 else y
        elif d < 1:
            mo = (mo - 2) % 12 + 1
            y = y - 1 if y and mo == 12 else y
            d = _MONTH_DAYS[mo]
        out.append(Quantity("date", 0.0, text=m.group(0), start=m.start(), end=m.end(), y=y, m=mo, d=d, soft=True))
    return out


_IN_BEFORE = re.compile(r"\b(?:in|of|since|until|till|by)\s+$", re.IGNORECASE)
_AGE_OF = re.compile(r"\b(?:age|ages|aged)\s+of\s+$", re.IGNORECASE)
_CLAUSE_END = re.compile(r"\s*(?:[,.;:!?)]|$)")


def _spoken_short_years(nums: list[Quantity], dates: list[Quantity], text: str) -> None:
    """"Late in nineteen forty-six, or early in forty-seven,": a two-digit number in words after "in" that ends
    its clause, in a text that states years, is a year given by its last two digits (like "'47")."""
    if not any(q.kind == "date" and q.y for q in dates) and not any(
            _plain_year(q) for q in nums):
        return
    for q in nums:
        if (q.kind == "num" and q.unit is None and q.text.replace("-", "").isalpha() and float(q.value).is_integer()
                and 10 <= float(q.value) <= 99 and _IN_BEFORE.search(text[max(0, q.start - 8):q.start])
                and not _AGE_OF.search(text[max(0, q.start - 16):q.start])  # "at the age of seventy-seven"
                and _CLAUSE_END.match(text, q.end)):
            q.kind = "yy"


_YEAR_END_GAP = re.compile(r"^\s*(?:-|\u2013|to)\s*$", re.IGNORECASE)


def _short_year_ends(nums: list[Quantity], text: str) -> None:
    """"twenty twenty-three to twenty-four" (the words of "2023-24"): a later two-digit number in words after a year
    and "to" is the range's end year in the same century (2024)."""
    for a, b in zip(nums, nums[1:]):
        if (_plain_year(a) and b.kind == "num" and b.unit is None and b.text.replace("-", "").isalpha()
                and float(b.value).is_integer() and int(a.value) % 100 < float(b.value) <= 99
                and _YEAR_END_GAP.match(text[a.end:b.start])):
            b.value = float(int(a.value) // 100 * 100 + int(b.value))


def _plain_year(q: Quantity) -> bool:
    return q.kind == "num" and q.unit is None and float(q.value).is_integer() and 1000 <= float(q.value) <= 2100


_FROM_BEFORE = re.compile(r"\bfrom\s+(?:the\s+)?$", re.IGNORECASE)


def _day_ranges(nums: list[Quantity], text: str) -> None:
    """"from 8 to 12 or 13 Dhu al-Hijjah", "from 8 to 12": bare numbers of a range of days or items, not counts
    (no counted noun after), are positions, stated as well by "from the 8th to the 12th or 13th"."""
    k = 0
    while k < len(nums):
        q = nums[k]
        chain = [q]
        if _plain_int(q) and _FROM_BEFORE.search(text[max(0, q.start - 10):q.start]):
            while k + len(chain) < len(nums) and _plain_int(nums[k + len(chain)]) and _RANGE_GAP.match(
                    text[chain[-1].end:nums[k + len(chain)].start]):
                chain.append(nums[k + len(chain)])
            if len(chain) > 1 and not _COUNTED_NOUN.match(text, chain[-1].end):
                for c in chain:
                    c.pos = True
        k += len(chain)


def _plain_int(q: Quantity) -> bool:
    return q.kind == "num" and q.unit is None and q.scale == 1.0 and float(q.value).is_integer() and 1 <= float(q.value) <= 99


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
#: the noun a unit-less number counts: "11 storeys", "four lanes", "a 12-storey block" (not "11 is", "3 per")
_COUNT_NOUN = re.compile(r"[ \t]+(?!(?:is|was|has|as|us|its|this|thus|plus|does|goes|less|across|always|perhaps|"
                         r"sometimes|besides|towards|afterwards|whereas|per|percent)\b)[A-Za-z]{3,}(?<!ss)s\b|"
                         r"[ \t]+(?:people|men|women|children)\b|-[A-Za-z]{3,}\b", re.IGNORECASE)
_COUNTED_NOUN = re.compile(r"[ \t-]*(?:(?!(?:is|was|has|as|us|its|this|thus|plus|does|goes)\b)[A-Za-z]+(?<!ss)s\b|(?:people|men|women|children|times|per|of|percent)\b)", re.IGNORECASE)
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
                    and not a.soft and not b.soft  # "8 hours a day and 48 hours a week": "a day" is a rate
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


def _version_named(q: Quantity, other_text: str) -> bool:
    """A version identifier ("GPLv2", "HTTP2", "IPv6") the other text writes another way: "HTTP/2", "GPL version 2",
    or "version 2 of the GNU General Public License" (the name spelt out by the initials of its words)."""
    m = version_parts(q)
    if not m:
        return False
    name, num = re.escape(m.group(1)), re.escape(m.group(3))
    if re.search(rf"\b{name}\s*(?:/|-|v\.?\s*|\s+version\s+)?{num}(?![\d.]\d|\w)", other_text, re.IGNORECASE):
        return True
    if not re.search(rf"\b(?:version|v\.?)\s*{num}(?![\d.]\d|\w)", other_text, re.IGNORECASE):
        return False
    expansion = r"\s+".join(rf"{c.upper()}[a-z]+" for c in m.group(1))
    return bool(re.search(rf"\b{name}\b", other_text, re.IGNORECASE) or re.search(rf"\b{expansion}\b", other_text))


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
    src_all = extract(source)
    src, rw = _dedup(src_all), _dedup(extract(rewrite))
    norm_src = _powers_of_ten(normalize(source))  # (the text extract read, so that positions agree)
    # a measure and its conversion in brackets state one fact: either form in the rewrite states it
    twins = {(q.kind, x.label()) for q in src_all if q.twin is not None and (covered(q, rw) or covered(q.twin, rw))
             for x in (q, q.twin)}
    missing = [q for q in src if not q.soft and (q.kind, q.label()) not in twins and not covered(q, rw)
               and not _formula_named(q, rewrite)
               and not _spelled_id(q, rewrite) and not _name_alone(q, rewrite) and not _version_named(q, rewrite)
               and not _dropped_name(q, norm_src, rewrite)]
    extra = [q for q in rw if not q.soft and not covered(q, src) and not _formula_named(q, source)
             and not _name_alone(q, source) and not _version_named(q, source)]
    return NumberDiff(missing, extra, sum(not q.soft and not _dropped_name(q, norm_src, rewrite) for q in src),
                      sum(not q.soft for q in rw))
