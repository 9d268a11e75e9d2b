"""Matching quantities across texts for the number normaliser (rephrase.verify.numbers): `covered(q, others)` decides
whether the fact a quantity states is also stated by the other text's quantities (through unit conversions,
bounds, percentages and fractions, sums and differences, years and intervals, centuries and decades).
"""
from __future__ import annotations

import math
import re

from rephrase.verify.quantity import Quantity
from rephrase.verify.units import TOLERANCE, UNITS

#: relative tolerance when two quantities are compared through a unit conversion (5 miles ~ 8 km);
#: same-unit and unit-less numbers must be equal (1998 vs 1999 is a changed fact).
CONVERSION_REL_TOL = 0.02


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
        if _count_for_measure(o, q):
            return False
        vq, vo = float(q.value), float(o.value)
    else:
        return False
    if vq <= 0:
        return False
    return vq <= vo <= 2 * vq if q.bound == ">" else vq / 2 <= vo <= vq


#: dimensions whose measures a count of things cannot state: "11 storeys" is not "11 metres"
_MEASURED_DIMS = frozenset({"length", "area", "volume", "mass", "speed"})


def _count_for_measure(a: Quantity, b: Quantity) -> bool:
    """Is `b` a count of a named thing ("11 storeys", "four lanes") set against `a`, a measure ("11 metres")?"""
    return a.unit is not None and b.unit is None and b.counted and UNITS[a.unit].dim in _MEASURED_DIMS


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
    if _count_for_measure(a, b) or _count_for_measure(b, a):
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
    return da == db and (math.isclose(va, vb, rel_tol=tol) or _rounded_to(a, vb) or _rounded_to(b, va))


#: the most a conversion rounded to its written digits may be off, relative to its value
ROUNDING_REL_CAP = 0.08


def _rounded_to(q: Quantity, base: float) -> bool:
    """Is `q` the value `base` (in q's dimension's base unit) rounded to q's written digits? "1.1 km (roughly 0.7
    miles)" (0.68 mi), "20 km (about 12 miles)" (12.4 mi): a conversion is written to the precision it is given in,
    within half its last digit (and at most ROUNDING_REL_CAP of it)."""
    m = re.search(r"\d+(?:\.(\d+))?", q.text)
    if not m or q.scale != 1.0 or not float(q.value):
        return False
    half = 0.5 * 10 ** -len(m.group(1) or "")
    v = float(q.value)
    return half / abs(v) <= ROUNDING_REL_CAP and abs(base / UNITS[q.unit].factor - v) <= half + 1e-9


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


def _calendar_year(q: Quantity) -> bool:
    """A bare integer, or a "Year" column's cell ("| 1777 | born 30 April |" reads as 1777 with unit year)."""
    return q.kind == "num" and float(q.value).is_integer() and (
        q.unit is None or (q.unit == "year" and q.scale == 1.0 and 1000 <= float(q.value) <= 2100))


def _years(qs: list[Quantity]) -> set[int]:
    ys = {q.y for q in qs if q.kind == "date" and q.y is not None}
    ys |= {int(q.value) for q in qs if _calendar_year(q)}
    return ys


def covered(q: Quantity, others: list[Quantity]) -> bool:
    """Is the fact `q` states also stated by `others` (the other text's quantities)?"""
    if q.kind == "date":
        dates = [o for o in others if o.kind == "date"]
        if any((o.y, o.m, o.d) == (q.y, q.m, q.d) for o in dates):
            return True
        if q.d is None:  # "March 1998" is implied by "3 March 1998" (the reverse is a dropped day)
            return any((o.y, o.m) == (q.y, q.m) for o in dates) or (q.y is not None and any(
                o.kind == "yy" and o.m == q.m and int(o.value) == q.y % 100 for o in others)) or (  # "December '93"
                # "since October twenty thirteen", "in January 1999 ... hatched that May": the bare month and the
                # year apart (a month with another year is a date of its own, and is caught as such)
                q.y is not None and any(o.m == q.m and o.y is None and o.d is None for o in dates)
                and q.y in _years(others))
        # "25 May '55": the day and month, then the year by its last two digits (the same month before it)
        if q.y is not None and any(o.y is None and (o.m, o.d) == (q.m, q.d) for o in dates) and any(
                o.kind == "yy" and o.m in (None, q.m) and int(o.value) == q.y % 100 for o in others):
            return True
        # "on March 3rd in 1998" states 1998-03-03 in two pieces, and so does "in March 1998 - on the 3rd"
        if any((o.y, o.m) == (q.y, q.m) and o.d is None for o in dates) and any(
                o.kind == "ord" and float(o.value) == q.d for o in others):
            return True
        # "15 October" (no year) for "Thursday the 4th of October ... Friday the 15th": the month is named with
        # another day, the day as an ordinal
        if q.y is None and any(o.m == q.m for o in dates) and any(
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
        if q.unit is None and any(o.kind == "num" and o.unit is None and o.parts and all(p.unit is None for p in o.parts)
                                  and any(float(p.value) == float(q.value) for p in o.parts) for o in others):
            return True  # "4 of 5 stars" for "4/5": each count is a part of the fraction (and "4/5" by its parts above)
        if q.unit is None and q.scale == 1.0 and float(q.value).is_integer() and 1000 <= float(q.value) <= 2100 and any(
                o.kind == "yy" and o.m is None and int(o.value) == int(q.value) % 100 for o in others):
            return True  # "automated in 1989" = "automated in '89"
        if q.unit is None and any(v and float(v.group(3)) == float(q.value) for v in map(version_parts, others)):
            return True  # "version 2 of the GNU GPL" for "GPLv2", "HTTP/2" for "HTTP2"
        return _calendar_year(q) and int(q.value) in _years([o for o in others if o.kind == "date"])
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


def version_parts(q: Quantity) -> re.Match | None:
    """(name, "v" or "/", number) of a version identifier: "gplv2", "ipv6", "http2" (a name of three letters or more
    without the "v": "CO2", "MP3" are no versions)."""
    m = re.fullmatch(r"([a-z]{2,}?)(v|/)?(\d{1,2}(?:\.\d{1,2})?)", str(q.value)) if q.kind == "id" else None
    return m if m and (m.group(2) or len(m.group(1)) >= 3) else None


def _million_reading(q: Quantity) -> Quantity | None:
    """"21m dollars": a number glued to "m" is metres or millions; "42.195k" is thousands or kilometres (a
    runner's "5k"); the other side decides."""
    # also spaced, as a minute-taker writes it: "2022: 41 m sets sold" for "41 million sets"
    if q.kind == "num" and q.unit == "m" and re.fullmatch(r"[\d.,]+[ \u00a0]?m", q.text.strip()):
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
    # (in the dimension's base unit where the units differ by a factor: "ten pence more" than "£1.25", "£1.35")
    unit = UNITS.get(q.unit) if q.unit else None
    base = (lambda o: o.unit == q.unit or unit is not None and not unit.offset and o.unit in UNITS
            and UNITS[o.unit].dim == unit.dim and not UNITS[o.unit].offset)
    nums = [float(o.value) * (UNITS[o.unit].factor / unit.factor if unit else 1.0) for o in others
            if o.kind == "num" and base(o) and not o.soft and abs(float(o.value)) != 1][:40]
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
