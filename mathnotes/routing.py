"""Routing: which documents a mathnotes run rewrites, in which language, with which plan; every decision recorded.

decision: "domain" (its domain is one of `domains`), "detected" / "not_math" (the math detector ran on a document
of `detect_domains`), "skipped_domain" (neither). A routed document's language comes from langid on its prose
(the declared `lang` field is kept beside it and used only when there is too little prose to detect).
plan: "note" (English), "translate+note" / "translate" (non-English with translation on), "skipped_language"
(non-English with translation off), "none" (not routed).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from mathnotes.detect import detect_language, math_score

ROUTING_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("domain", pa.string()),
    pa.field("decision", pa.string()),
    pa.field("math_score", pa.float64()),          # null when the detector did not run
    pa.field("lang", pa.string()),
    pa.field("lang_prob", pa.float64()),
    pa.field("declared_lang", pa.string()),
    pa.field("plan", pa.string()),
    pa.field("detector", pa.string()),             # the detector's signals as JSON (null when it did not run)
])


@dataclass
class Route:
    id: str
    domain: str
    decision: str
    plan: str
    lang: str = ""
    lang_prob: float = 0.0
    declared_lang: str = ""
    math_score: float | None = None
    detector: str | None = None

    @property
    def routed(self) -> bool:
        return self.decision in ("domain", "detected")

    def row(self) -> dict[str, Any]:
        return asdict(self)


def route(doc: dict[str, Any], spec: Any) -> Route:
    """The routing decision for one document under a MathNotesSpec."""
    declared = doc.get("lang") or ""
    r = Route(doc["id"], doc["domain"], "skipped_domain", "none", declared_lang=declared)
    if doc["domain"] in spec.domains:
        r.decision = "domain"
    elif spec.detect_math and doc["domain"] in spec.detect_domains:
        m = math_score(doc["text"], spec.math_threshold)
        r.math_score, r.detector = m.score, json.dumps(m.to_dict(), sort_keys=True)
        r.decision = "detected" if m.is_math else "not_math"
    if not r.routed:
        return r
    lang, prob = detect_language(doc["text"])
    if lang == "und":
        lang, prob = (declared or "en"), 0.0
    r.lang, r.lang_prob = lang, prob
    if lang == "en":
        r.plan = "note"
    elif not spec.translate:
        r.plan = "skipped_language"
    else:
        r.plan = "translate+note" if spec.note_after_translate else "translate"
    return r


def routing_stats(routes: list[Route]) -> dict[str, int]:
    """Flat counters (they add up across units): route_<decision>, plan_<plan>, lang_<code> of routed docs."""
    out: dict[str, int] = {}
    for r in routes:
        for key in (f"route_{r.decision}", f"plan_{r.plan.replace('+', '_')}") + ((f"lang_{r.lang}",) if r.routed
                                                                                 else ()):
            out[key] = out.get(key, 0) + 1
    return out
