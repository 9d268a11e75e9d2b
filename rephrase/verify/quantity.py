"""The quantity record of the number normaliser (rephrase.verify.numbers): `Quantity`, its canonical label, and
`_blank`, which every scanner pass uses to blank the spans it consumed.
"""
from __future__ import annotations

from dataclasses import dataclass


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
    counted: bool = False  # a unit-less number followed by the noun it counts ("11 storeys"): a count, not a measure
    twin: "Quantity | None" = None  # the measure this one converts, in brackets after it: "0.2 m/s (40 ft/min)"

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


def _blank(text: str, qs: list[Quantity]) -> str:
    chars = list(text)
    for q in qs:
        chars[q.start:q.end] = " " * (q.end - q.start)
    return "".join(chars)
