"""Unit and number-word tables for the quantity normaliser (rephrase.verify.numbers).

Each unit row: canonical name, dimension, factor and offset to the dimension's base unit
(base = (value + offset) * factor), case-sensitive symbols, case-insensitive long names. Long names get their
plural forms generated, so a table row is all a new unit needs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    name: str
    dim: str
    factor: float = 1.0
    offset: float = 0.0


_UNITS: list[tuple[str, str, float, float, tuple[str, ...], tuple[str, ...]]] = [
    # name, dimension, factor, offset, symbols (case-sensitive), long names (case-insensitive)
    ("km", "length", 1e3, 0, ("km",), ("kilometre", "kilometer")),
    ("m", "length", 1.0, 0, ("m",), ("metre", "meter")),
    ("cm", "length", 1e-2, 0, ("cm",), ("centimetre", "centimeter")),
    ("mm", "length", 1e-3, 0, ("mm",), ("millimetre", "millimeter")),
    ("um", "length", 1e-6, 0, ("µm", "μm"), ("micrometre", "micrometer", "micron")),
    ("nm", "length", 1e-9, 0, ("nm",), ("nanometre", "nanometer")),
    ("mi", "length", 1609.344, 0, ("mi",), ("mile",)),
    ("ft", "length", 0.3048, 0, ("ft",), ("foot", "feet")),
    ("inch", "length", 0.0254, 0, (), ("inch", "inches")),
    ("yd", "length", 0.9144, 0, ("yd",), ("yard",)),
    ("nmi", "length", 1852.0, 0, ("nmi",), ("nautical mile",)),
    ("au", "length", 1.495978707e11, 0, ("AU",), ("astronomical unit",)),
    ("pc", "length", 3.0857e16, 0, (), ("parsec",)),
    ("ly", "length", 9.4607e15, 0, ("ly",), ("light-year", "light year")),
    ("km2", "area", 1e6, 0, ("km2", "km²", "sq km"), ("square kilometre", "square kilometer")),
    ("m2", "area", 1.0, 0, ("m2", "m²"), ("square metre", "square meter")),
    ("mi2", "area", 2.589988e6, 0, ("sq mi", "mi²"), ("square mile",)),
    ("ft2", "area", 0.09290304, 0, ("sq ft", "ft²", "ft2"), ("square foot", "square feet")),
    ("ha", "area", 1e4, 0, ("ha",), ("hectare",)),
    ("acre", "area", 4046.856, 0, (), ("acre",)),
    ("t", "mass", 1e3, 0, ("t",), ("tonne", "metric ton")),
    # a "ton" may be metric (1000 kg), short (907 kg) or long (1016 kg): compared within TOLERANCE below
    ("ton", "mass", 1e3, 0, (), ("ton",)),
    ("kg", "mass", 1.0, 0, ("kg",), ("kilogram", "kilogramme", "kilo")),
    ("g", "mass", 1e-3, 0, ("g",), ("gram", "gramme")),
    ("mg", "mass", 1e-6, 0, ("mg",), ("milligram",)),
    ("ug", "mass", 1e-9, 0, ("µg", "μg", "mcg"), ("microgram",)),
    ("lb", "mass", 0.45359237, 0, ("lb", "lbs"), ("pound",)),
    ("oz", "mass", 0.028349523, 0, ("oz",), ("ounce",)),
    ("g/cm3", "density", 1e3, 0, ("g/cm3", "g/cm³", "g cm-3"), ("gram per cubic centimetre",
                                                                 "gram per cubic centimeter")),
    ("kg/m3", "density", 1.0, 0, ("kg/m3", "kg/m³"), ("kilogram per cubic metre", "kilogram per cubic meter")),
    ("cm3", "volume", 1e-6, 0, ("cm3", "cm³", "cc"), ("cubic centimetre", "cubic centimeter")),
    ("m3", "volume", 1.0, 0, ("m3", "m³"), ("cubic metre", "cubic meter")),
    ("km3", "volume", 1e9, 0, ("km3", "km³"), ("cubic kilometre", "cubic kilometer")),
    # radiation dose (equivalent/effective): "0.005 mSv (5 µSv)" states one dose twice; without these rows the
    # symbols were unread and the converted "5" stood as a bare number the source lacks
    ("Sv", "radiation dose", 1.0, 0, ("Sv",), ("sievert",)),
    ("mSv", "radiation dose", 1e-3, 0, ("mSv",), ("millisievert",)),
    ("uSv", "radiation dose", 1e-6, 0, ("µSv", "μSv", "uSv"), ("microsievert",)),
    ("l", "volume", 1e-3, 0, ("L", "l"), ("litre", "liter")),
    ("ml", "volume", 1e-6, 0, ("mL", "ml"), ("millilitre", "milliliter")),
    # US and imperial measures differ by ~20%: the factor lies between them, compared within TOLERANCE below
    ("pint", "volume", 5.18e-4, 0, (), ("pint",)),
    ("quart", "volume", 1.036e-3, 0, ("qt",), ("quart",)),
    ("gal", "volume", 4.15e-3, 0, ("gal",), ("gallon",)),
    ("floz", "volume", 2.9e-5, 0, ("fl oz",), ("fluid ounce",)),
    ("s", "time", 1.0, 0, ("s", "sec", "secs"), ("second",)),
    ("min", "time", 60.0, 0, ("min", "mins"), ("minute",)),
    ("h", "time", 3600.0, 0, ("h", "hr", "hrs"), ("hour",)),
    ("day", "time", 86400.0, 0, (), ("day",)),
    ("week", "time", 604800.0, 0, (), ("week",)),
    ("month", "time", 2629800.0, 0, (), ("month",)),
    ("year", "time", 31557600.0, 0, ("yr", "yrs"), ("year",)),
    ("decade", "time", 315576000.0, 0, (), ("decade",)),
    ("century", "time", 3155760000.0, 0, (), ("century", "centuries")),
    ("millennium", "time", 31557600000.0, 0, (), ("millennium", "millennia")),
    ("km/h", "speed", 1 / 3.6, 0, ("km/h", "kph"), ("kilometres per hour", "kilometers per hour")),
    ("mph", "speed", 0.44704, 0, ("mph",), ("miles per hour",)),
    ("ft/min", "speed", 0.00508, 0, ("ft/min", "fpm"), ("feet per minute", "foot per minute")),
    ("m/min", "speed", 1 / 60, 0, ("m/min",), ("metres per minute", "meters per minute")),
    ("m/s", "speed", 1.0, 0, ("m/s", "m s-1", "m s^-1", "ms-1"), ("metres per second", "meters per second")),
    ("km/s", "speed", 1e3, 0, ("km/s", "km s-1", "km s^-1"), ("kilometres per second", "kilometers per second")),
    ("kn", "speed", 0.514444, 0, (), ("knot",)),
    ("Pa", "pressure", 1.0, 0, ("Pa",), ()),  # not "pascal": Blaise Pascal is a name
    ("kPa", "pressure", 1e3, 0, ("kPa",), ("kilopascal",)),
    ("hPa", "pressure", 1e2, 0, ("hPa",), ("hectopascal",)),
    ("MPa", "pressure", 1e6, 0, ("MPa",), ("megapascal",)),
    ("atm", "pressure", 101325.0, 0, ("atm",), ("atmosphere",)),
    ("psi", "pressure", 6894.757, 0, ("psi",), ()),
    ("eV", "energy", 1.602176634e-19, 0, ("eV",), ("electronvolt", "electron volt")),
    ("MeV", "energy", 1.602176634e-13, 0, ("MeV",), ()),
    ("degC", "temperature", 1.0, 273.15, ("°C", "℃", "° C"), ("degrees Celsius", "degree Celsius", "Celsius",
                                                            "degrees centigrade", "centigrade")),
    ("degF", "temperature", 5 / 9, 459.67, ("°F", "° F"), ("degrees Fahrenheit", "degree Fahrenheit", "Fahrenheit")),
    ("K", "temperature", 1.0, 0, ("K",), ("kelvin",)),
    ("deg", "angle", 1.0, 0, ("°",), ("degree",)),
    ("pct", "ratio", 1.0, 0, ("%",), ("percent", "per cent", "percentage point")),
    ("bp", "ratio", 0.01, 0, ("bp", "bps"), ("basis point",)),
    ("bit", "data", 1.0, 0, (), ("bit",)),
    ("byte", "data", 8.0, 0, (), ("byte",)),
    ("bit/s", "data_rate", 1.0, 0, ("bit/s", "b/s"), ("bit per second", "bits per second")),
    ("kbit/s", "data_rate", 1e3, 0, ("kbit/s", "kb/s", "kbps", "Kbps"), ("kilobit per second", "kilobits per second")),
    ("Mbit/s", "data_rate", 1e6, 0, ("Mbit/s", "Mb/s", "Mbps"), ("megabit per second", "megabits per second")),
    ("Gbit/s", "data_rate", 1e9, 0, ("Gbit/s", "Gb/s", "Gbps"), ("gigabit per second", "gigabits per second")),
    ("Tbit/s", "data_rate", 1e12, 0, ("Tbit/s", "Tb/s", "Tbps"), ("terabit per second", "terabits per second")),
    ("mg/kg", "dose", 1.0, 0, ("mg/kg",), ()),
    # storage and battery charge of a spec sheet: "256 GB", "5,000 mAh" (decimal prefixes)
    ("kB", "data", 8e3, 0, ("kB", "KB"), ("kilobyte",)),
    ("MB", "data", 8e6, 0, ("MB",), ("megabyte",)),
    ("GB", "data", 8e9, 0, ("GB",), ("gigabyte",)),
    ("TB", "data", 8e12, 0, ("TB",), ("terabyte",)),
    ("mAh", "charge", 3.6, 0, ("mAh",), ("milliampere-hour", "milliamp-hour", "milliamp hour")),
    ("W", "power", 1.0, 0, ("W",), ("watt",)),
    ("kW", "power", 1e3, 0, ("kW",), ("kilowatt",)),
    ("MW", "power", 1e6, 0, ("MW",), ("megawatt",)),
    ("GW", "power", 1e9, 0, ("GW",), ("gigawatt",)),
    ("kWh", "energy", 3.6e6, 0, ("kWh",), ("kilowatt-hour", "kilowatt hour")),
    ("kJ", "energy", 1e3, 0, ("kJ",), ("kilojoule",)),
    ("J", "energy", 1.0, 0, ("J",), ("joule",)),
    ("kcal", "energy", 4184.0, 0, ("kcal",), ("kilocalorie",)),
    ("V", "voltage", 1.0, 0, ("V",), ("volt",)),
    ("Hz", "frequency", 1.0, 0, ("Hz",), ("hertz",)),
    ("kHz", "frequency", 1e3, 0, ("kHz",), ("kilohertz",)),
    ("MHz", "frequency", 1e6, 0, ("MHz",), ("megahertz",)),
    ("GHz", "frequency", 1e9, 0, ("GHz",), ("gigahertz",)),
    ("bc", "era_bc", 1.0, 0, ("BC", "BCE", "B.C."), ()),
    ("usd", "usd", 1.0, 0, ("USD",), ("dollar", "US dollar")),
    ("usd_cent", "usd", 0.01, 0, ("\u00a2",), ("cent", "US cent")),  # "15 cents" = "$0.15", "15¢"
    ("eur", "eur", 1.0, 0, ("EUR",), ("euro",)),
    ("gbp", "gbp", 1.0, 0, ("GBP",), ("pounds sterling",)),
    ("shilling", "gbp", 0.05, 0, (), ("shilling",)),  # pre-decimal: 20 shillings to the pound ("10s.")
    ("guinea", "gbp", 1.05, 0, (), ("guinea",)),  # 21 shillings: "1,500 guineas" is no "£1,500"
    # the old penny (240 to the pound): no alias, read only in a pre-decimal amount ("7s 6d", "sixpence"), as a
    # modern "50 pence" is £0.50
    ("old_penny", "gbp", 1 / 240, 0, (), ()),
    # the decimal penny (since 1971): "58 pence" = "£0.58" (a pre-decimal "6 pence" is read before, with its shillings)
    ("penny", "gbp", 0.01, 0, (), ("pence",)),  # (not "penny": "adding one penny" counts a coin)
]

#: currency symbols written before the number
CURRENCY_PREFIX = {"US$": "usd", "$": "usd", "€": "eur", "£": "gbp"}

UNITS: dict[str, Unit] = {r[0]: Unit(r[0], r[1], r[2], r[3]) for r in _UNITS}
#: relative tolerance of a conversion involving these units (US vs imperial measures), instead of the default
TOLERANCE = {"pint": 0.12, "quart": 0.12, "gal": 0.12, "floz": 0.05, "ton": 0.1}


def _plurals(name: str) -> set[str]:
    """'kilometre' -> {kilometre, kilometres}; 'mile per hour' style: pluralise the first word too."""
    out = {name}
    first, _, rest = name.partition(" ")
    for w, tail in ((name, ""), (first, (" " + rest) if rest else "")):
        plural = w + ("es" if w.endswith(("s", "x", "ch")) else "s")
        if w.endswith("y") and w[-2:-1] not in ("a", "e", "i", "o", "u"):
            plural = w[:-1] + "ies"
        out.add(plural + tail)
    return out


def _alias_regex(aliases: dict[str, str], flags: int) -> re.Pattern:
    alt = "|".join(re.escape(a) for a in sorted(aliases, key=len, reverse=True))
    # a unit follows its number after at most one space or a hyphen ("3.5 km", "3.5-km", "45%"), and must not run
    # into further letters ("5 kms" is fine via the plural table, "5 kmx" is not a unit)
    return re.compile(rf"[ \u00a0\u202f-]?(?:{alt})(?![A-Za-z0-9²])", flags)


_SYMBOLS = {s: r[0] for r in _UNITS for s in r[4]}
_NAMES = {p.lower(): r[0] for r in _UNITS for n in r[5] for p in _plurals(n)}
#: a name of two words hyphenated in a compound adjective: "its 34-square-kilometre reservoir"
_NAMES.update({a.replace(" ", "-"): u for a, u in list(_NAMES.items()) if " " in a})
SYMBOL_RE = _alias_regex(_SYMBOLS, 0)
NAME_RE = _alias_regex(_NAMES, re.IGNORECASE)


#: units written as "A per B" or "A/B" with A and B in any of their forms ("g per cubic centimetre", "km per hour",
#: "metres/second"): the table's own aliases cover only the all-symbol and all-long-name spellings
COMPOUNDS = {("g", "cm3"): "g/cm3", ("kg", "m3"): "kg/m3", ("km", "h"): "km/h", ("mi", "h"): "mph",
             ("m", "s"): "m/s", ("km", "s"): "km/s", ("mg", "kg"): "mg/kg", ("ft", "min"): "ft/min",
             ("m", "min"): "m/min"}
_PER = re.compile(r"\s*/\s*|\s+per\s+|\s+an?\s+(?=hour|minute|second)|\s+(?:for\s+)?(?:every|each)\s+(?=kilo|hour|minute|second)", re.IGNORECASE)


#: symbols a spec sheet writes lower-case and glued to the number: "120hz", "65w", "5000mah", "256gb" (only glued
#: and only where the lower-case form names no other unit: "5m" stays metres, "2mb" is no millibar here)
_GLUED_LOWER = {"hz": "Hz", "khz": "kHz", "mhz": "MHz", "ghz": "GHz", "w": "W", "kw": "kW", "kwh": "kWh",
                "mah": "mAh", "gb": "GB", "tb": "TB", "mb": "MB", "kb": "kB", "v": "V"}
GLUED_RE = re.compile(rf"(?:{'|'.join(sorted(_GLUED_LOWER, key=len, reverse=True))})(?![A-Za-z0-9²])")


def _match_one(text: str, pos: int) -> tuple[str, int] | None:
    for rx, table, fold in ((NAME_RE, _NAMES, True), (SYMBOL_RE, _SYMBOLS, False)):
        m = rx.match(text, pos)
        if m:
            alias = m.group(0).lstrip(" \u00a0\u202f-")
            return table[alias.lower() if fold else alias], m.end()
    m = GLUED_RE.match(text, pos) if pos == 0 or text[pos - 1].isdigit() else None
    return (_GLUED_LOWER[m.group(0)], m.end()) if m else None


def per_unit(text: str, pos: int) -> tuple[str, int] | None:
    """(unit, end) of a rate's "per minute", "a minute", "/min" written at `text[pos:]`, or None."""
    per = _PER.match(text, pos)
    den = _match_one(" " + text[per.end():], 0) if per else None
    return (den[0], per.end() + den[1] - 1) if den else None


def match_unit(text: str, pos: int) -> tuple[str, int] | None:
    """(canonical unit, end position) of a unit written at `text[pos:]`, or None. Long names win over symbols."""
    um = _match_one(text, pos)
    if um and any(k[0] == um[0] for k in COMPOUNDS):
        per = _PER.match(text, um[1])
        den = _match_one(" " + text[per.end():], 0) if per else None
        if den and (um[0], den[0]) in COMPOUNDS:
            return COMPOUNDS[(um[0], den[0])], per.end() + den[1] - 1
    return um


SMALL = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000,
          "trillion": 1_000_000_000_000}
SCALE_ABBREV = {"bn": 1_000_000_000, "tn": 1_000_000_000_000, "k": 1_000}
ORDINALS = {w: i + 1 for i, w in enumerate(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
    "fifteenth sixteenth seventeenth eighteenth nineteenth".split())}
ORDINALS.update({"twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50, "sixtieth": 60,
                 "seventieth": 70, "eightieth": 80, "ninetieth": 90, "hundredth": 100, "thousandth": 1000})
#: fractions written as plural ordinals ("two thirds") or with an article ("a quarter")
FRACTIONS = {"half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4, "fifth": 5,
             "fifths": 5, "tenth": 10, "tenths": 10, "hundredths": 100, "thousandths": 1000}
MONTHS = {m: i + 1 for i, m in enumerate(
    "January February March April May June July August September October November December".split())}
MONTHS.update({m[:3]: i for m, i in list(MONTHS.items()) if m != "May"})
MONTHS["Sept"] = 9
MONTHS.update({m.lower(): i for m, i in list(MONTHS.items()) if m not in ("May", "Mar")})  # "may" is a verb
ROMAN_MONTHS = {r: i + 1 for i, r in enumerate("i ii iii iv v vi vii viii ix x xi xii".split())}
