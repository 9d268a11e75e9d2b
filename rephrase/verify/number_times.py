"""Readers of dates and times for the number normaliser (rephrase.verify.numbers).

Dates ("3 March 1998", "March 3, 1998", "1998-03-03", "22/05/2013", "the sixth of July", "15.vi.1215"), clock and
race times ("9:16 pm", "half past ten", "2:01:09") and short years and decades ("December '93", "the seventies").
Each pass returns its quantities and the text with their spans blanked.
"""
from __future__ import annotations

import re

from rephrase.verify.quantity import Quantity, _blank
from rephrase.verify.units import MONTHS, ORDINALS, ROMAN_MONTHS, SMALL, TENS, match_unit


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
    # a timeline's year first: "1800, April 24th —", "1814, August —" (not before a further year: "1814, August 1815")
    (re.compile(rf"(?<![\d.,])(?P<y>1\d{{3}}|20\d\d),\s+(?P<mon>{_MON})\.?\s+(?P<d>\d{{1,2}}){_ORD_SUF}\b(?![\d,.]\d|,?\s*\d)", _I), 1, 1),
    (re.compile(rf"(?<![\d.,])(?P<y>1\d{{3}}|20\d\d),\s+(?P<mon>{_MON})\b(?!\.?,?\s*\d)", _I), 1, 0),
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
_NUMERIC_DATE = re.compile(r"(?<![\d/.])(?P<a>\d{1,2})(?P<sep>[/.])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})(?![\d/]|\.\d)")
#: a bare month name (capitalised; not "May", "March" alone: a verb as often as a month)
_BARE_MONTH = re.compile(rf"\b(?P<mon>{'|'.join(m for m in sorted(MONTHS, key=len, reverse=True) if m[0].isupper() and m not in ('May', 'March', 'Mar'))}|"
                         r"(?<=\bthat )(?:May|March))\b")  # "hatched that May": the month, not the verb
#: a day listed before a dated day: "20 or 21 March", "the 20th or 21st of March"
_DAY_BEFORE = re.compile(r"\b(?P<d>\d{1,2})(?:st|nd|rd|th)?\s*(?:,|or|and|to|-)\s*(?:the\s+)?$", re.IGNORECASE)


#: a day listed after a month-first date: "August 12-13", "July 20 or 21st" (not "July 17 to August 24", "May 3-5 km")
_DAY_AFTER = re.compile(rf"\s*(?:-|to|or|and|&)\s*(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b"
                        rf"(?!\s*(?:%|[-/.,:]?\d|(?:{_MON})\b))", re.IGNORECASE)


def _numeric_dates(text: str) -> list[Quantity]:
    """Day-first or month-first by whichever part exceeds 12; when both could be months the date is read both ways,
    each reading soft (it may support the other side's date, and is not itself required)."""
    out = []
    for mt in _NUMERIC_DATE.finditer(text):
        a, b, y = int(mt.group("a")), int(mt.group("b")), int(mt.group("y"))
        # "30/8/23": a two-digit year may be of either century (each reading soft, as a day-month swap)
        years = [y] if len(mt.group("y")) == 4 else [1900 + y, 2000 + y]
        if len(years) > 1 and mt.group("sep") == "." and re.search(r"(?i)(?:\bv|version\s*)$", text[:mt.start()]):
            continue  # "v1.2.23" is a version
        readings = [(yy, m, d) for yy in years for m, d in ((b, a), (a, b)) if 1 <= m <= 12 and 1 <= d <= 31]
        for yy, m, d in dict.fromkeys(readings):
            out.append(Quantity("date", 0.0, text=mt.group(0), start=mt.start(), end=mt.end(), y=yy, m=m, d=d,
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
            month_first = has_d and g.get("mon") is not None and mt.start("mon") < mt.start("d")
            db = _DAY_BEFORE.search(text, max(0, mt.start() - 16), mt.start()) if has_d and not month_first else None
            # "20 or 21 March": the 20th is in March too (a list of days counts up: "Mark 2 - 1 June" is no range)
            if db and 1 <= int(db.group("d")) < day:
                out.append(Quantity("date", 0.0, text=db.group(0), start=db.start(), end=db.end(),
                                    y=out[-1].y, m=month, d=int(db.group("d"))))
            da = _DAY_AFTER.match(text, mt.end()) if month_first and not has_y else None
            if da and 1 <= int(da.group("d")) <= 31 and match_unit(text, da.end()) is None:
                # "August 12-13", "July 20 or 21": the later day is in the same month ("12-13 August" read the other way)
                out.append(Quantity("date", 0.0, text=da.group(0), start=da.start("d"), end=da.end(),
                                    m=month, d=int(da.group("d"))))
        text = _blank(text, out)
    # "that December, on the 11th": a bare month is soft, never blanked (it may complete a day and a year)
    out += [Quantity("date", 0.0, text=mt.group(0), start=mt.start(), end=mt.start(), m=_month(mt.group("mon")),
                     soft=True) for mt in _BARE_MONTH.finditer(text)]
    return out, text


# ---------------------------------------------------------------- clock and race times
_DAYPART = (r"(?P<dp>a\.?m\.?|p\.?m\.?|(?:in\s+the\s+)?(?:morning|afternoon|evening)|at\s+night|"
            r"o'?clock|(?:z|utc|gmt)\b)")
#: "20:17:40", "9:16 pm", "23:40 UTC", "20:17:40Z", "2:01:09" (a race time), "59:51"
_CLOCK = re.compile(r"(?<![\d:.,])(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}(?:\.\d+)?))?(?!\d|:\d)"  # (a colon after it is a label's: "6 Nov 2019, 07:42:")
                    rf"(?:\s*{_DAYPART})?", re.IGNORECASE)
_HOUR_WORDS = {w: v for w, v in SMALL.items() if 1 <= v <= 12}
_MIN_WORD = r"(?:(?:twenty|thirty|forty|fifty)-?\s*)?(?:%s)" % "|".join(sorted(SMALL, key=len, reverse=True))
#: "sixteen past nine at night", "half past ten", "a quarter to six in the morning", "nine o'clock"
_WORD_CLOCK = re.compile(
    rf"\b(?:(?P<q>(?:a\s+)?quarter|half)|(?P<n>\d{{1,2}}|{_MIN_WORD}|twenty|thirty)(?:\s+minutes?)?)\s+"
    rf"(?P<rel>past|after|to)\s+(?P<h>\d{{1,2}}|{'|'.join(_HOUR_WORDS)})\b"
    # a day part, a clause end or "local time" after it ("twenty past nine local time"); not "3 to 4 years"
    rf"(?:\s*{_DAYPART}|(?=\s*(?:[.,;:!?)\u2014\u2013]|$|\(?local\s+time\b)))", re.IGNORECASE)
_PM = ("p", "afternoon", "evening", "night")
#: a whole hour with a.m./p.m.: "9 a.m.", "11 pm", "7AM"
_HOUR_AMPM = re.compile(r"(?<![\d:.,])(?P<h>\d{1,2})\s?(?P<dp>[ap]\.m\.?|[ap]m\b)", re.IGNORECASE)
#: a clock time written with a point (British "10.00", "10.30 p.m."): only after "at"/"from"/"until" (no currency
#: before it) or with a day part after it, so that "at 2.50 m" or a price stays a number
_DOT_CLOCK = re.compile(r"(?:(?P<at>\b(?:at|from|until|till|departs?|arrives?)\s+)|(?<![\d.,$\u00a3\u20ac]))"
                        r"(?P<h>[01]?\d|2[0-3])\.(?P<m>[0-5]\d)(?![\d]|[.,]\d)"
                        r"(?:\s*(?P<dp>[ap]\.m\.?|[ap]m\b))?", re.IGNORECASE)
#: "ten o'clock", "9 o'clock in the morning", "at ten in the morning"
_OCLOCK = re.compile(rf"\b(?P<h>\d{{1,2}}|{'|'.join(_HOUR_WORDS)})\s+(?:o['\u2019]?clock\b"
                     r"(?:\s+(?P<dp>in\s+the\s+(?:morning|afternoon|evening)|at\s+night)\b)?|"
                     r"(?P<dp2>in\s+the\s+(?:morning|afternoon|evening))\b)", re.IGNORECASE)
#: a duration written glued: "6m51s", "2h30m", "1h05m30s", "2m23.5s"
_COMPACT = re.compile(r"(?<![\w.])(?=\d+[hm]\d)(?:(?P<h>\d{1,3})h)?(?:(?P<min>\d{1,3})m(?:in)?)?"
                      r"(?:(?P<s>\d{1,2}(?:\.\d+)?)s)?(?!\w|\.\d)")


def _compact_durations(text: str) -> list[Quantity]:
    """"6m51s" = "6 min 51 s" (411 s): the sum in its smallest unit, the parts soft (as a compound measure)."""
    out = []
    for mt in _COMPACT.finditer(text):
        parts = [Quantity("num", float(mt.group(g)), unit=u, text=mt.group(g), start=mt.start(g), end=mt.end(g),
                          soft=True) for g, u in (("h", "h"), ("min", "min"), ("s", "s")) if mt.group(g)]
        if len(parts) < 2:
            continue
        factor = {"h": 3600.0, "min": 60.0, "s": 1.0}
        total = sum(float(p.value) * factor[p.unit] for p in parts) / factor[parts[-1].unit]
        out += parts + [Quantity("num", round(total, 9), unit=parts[-1].unit, text=mt.group(0), start=mt.start(),
                                 end=mt.end(), parts=tuple(parts))]
    return out


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
    if any(len(q.alts) == 1 and 13 * 3600 <= q.alts[0] < 24 * 3600 and not re.search(r"[a-z]", q.text, re.I)
           for q in out):
        # a text that writes "23:00" keeps the 24-hour clock: its bare "9:00" is 09:00, not 21:00
        for q in out:
            if len(q.alts) == 2:
                q.alts = q.alts[:1]
                q.value = f"{q.value} ({q.alts[0] // 3600:.0f}h)"
    text = _blank(text, out)
    for mt in _HOUR_AMPM.finditer(text):  # "9 a.m. to 11 p.m." = "9:00 to 23:00"
        h = int(mt.group("h"))
        if 1 <= h <= 12:
            alts = _readings(h, 0, 0, mt.group("dp"), False)
            out.append(Quantity("time", f"{h}:00 ({alts[0] // 3600:.0f}h)", text=mt.group(0), start=mt.start(),
                                end=mt.end(), alts=alts))
    for mt in _DOT_CLOCK.finditer(text):  # "Departure at 10.00", "10.30 p.m.": the British clock with a point
        h, m = int(mt.group("h")), int(mt.group("m"))
        if h <= 23 and not match_unit(text, mt.end()) and (mt.group("dp") or mt.group("at")):
            alts = _readings(h, m, 0, mt.group("dp"), mt.group("h").startswith("0"))
            out.append(Quantity("time", f"{h}:{m:02d}" + ("" if len(alts) > 1 else f" ({alts[0] // 3600:.0f}h)"),
                                text=text[mt.start("h"):mt.end()], start=mt.start("h"), end=mt.end(), alts=alts))
    text = _blank(text, out)
    for mt in _OCLOCK.finditer(text):  # "ten o'clock", "9 o'clock in the evening"
        h = int(mt.group("h")) if mt.group("h").isdigit() else _HOUR_WORDS[mt.group("h").lower()]
        if 1 <= h <= 12:
            alts = _readings(h, 0, 0, mt.group("dp") or mt.group("dp2"), False)
            out.append(Quantity("time", f"{h}:00" + ("" if len(alts) > 1 else f" ({alts[0] // 3600:.0f}h)"),
                                text=mt.group(0), start=mt.start(), end=mt.end(), alts=alts))
    text = _blank(text, out)
    out += _compact_durations(text)
    # "open round the clock", "round-the-clock care": 24 hours a day (soft: it may support a "24 hours", as the
    # idiom need not be matched by a number)
    out += [Quantity("num", 24.0, unit="h", text=mt.group(0), start=mt.start(), end=mt.end(), soft=True)
            for mt in re.finditer(r"\b(?:a?round|all)[\s-]+the[\s-]+clock\b", text, re.IGNORECASE)]
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


# ---------------------------------------------------------------- short years and decades
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
