"""Weak supervision for the consistency model (FactCC-style, Kryscinski et al. 2020): one-fact corruptions of
faithful rewrites, made by rule, added to the labelled dev rows when the model is fitted.

Each corruption changes ONE fact of a faithful rewrite: a number, a year, a named entity (swapped for a name of
the same kind from another row), a negation (added to or removed from a verb), an added sentence (taken from a
faithful rewrite of another source) or an omitted sentence. Rows that a rule cannot corrupt are skipped. The
generator is seeded, so a calibration run is reproducible. These rows only train the model; thresholds are chosen,
and results reported, on hand-labelled rows.
"""
from __future__ import annotations

import random
import re
from typing import Any, Callable

from rephrase.verify.nlp import analyse
from rephrase.verify.text import split_sentences

_NUM = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w,]*\d)")
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-2][0-9])\b")
_AUX_NEG = re.compile(r"\b(is|are|was|were|can|could|did|does|do|has|have|had|will|would|should)( not|n't)\b")
_AUX = re.compile(r"\b(is|are|was|were|can|could|will|would|should)\b(?! not)")


def _number(text: str, rng: random.Random, _pool) -> str | None:
    ms = [m for m in _NUM.finditer(text) if not _YEAR.fullmatch(m.group(0))]
    if not ms:
        return None
    m = rng.choice(ms)
    v = int(m.group(1).replace(",", ""))
    new = v + rng.choice([1, 2, 3, 5, 10]) * max(1, v // 10) * rng.choice([1, -1]) if v > 3 else v + rng.randint(1, 4)
    new = abs(new) or v + 1
    s = f"{new:,}" if "," in m.group(1) else str(new)
    return text[:m.start(1)] + s + text[m.end(1):]


def _date(text: str, rng: random.Random, _pool) -> str | None:
    ms = list(_YEAR.finditer(text))
    if not ms:
        return None
    m = rng.choice(ms)
    new = int(m.group(0)) + rng.choice([-11, -3, -2, -1, 1, 2, 3, 10])
    return re.sub(rf"\b{m.group(0)}\b", str(new), text)


def _entity(text: str, rng: random.Random, pool: list[str]) -> str | None:
    own = [e for e in analyse([text])[0].ents if e[1] in ("PERSON", "GPE", "ORG", "LOC", "NORP")]
    if not own:
        return None
    name, label, _ = rng.choice(own)
    others = [e for t in rng.sample(pool, min(8, len(pool))) for e in analyse([t])[0].ents
              if e[1] == label and e[0] != name and e[0] not in text]
    if not others:
        return None
    return text.replace(name, rng.choice(others)[0])


def _negation(text: str, rng: random.Random, _pool) -> str | None:
    neg = list(_AUX_NEG.finditer(text))
    if neg and rng.random() < 0.5:
        m = rng.choice(neg)
        return text[:m.start()] + m.group(1) + text[m.end():]
    pos = list(_AUX.finditer(text))
    if pos:
        m = rng.choice(pos)
        return text[:m.end()] + " not" + text[m.end():]
    if neg:
        m = rng.choice(neg)
        return text[:m.start()] + m.group(1) + text[m.end():]
    return None


def _addition(text: str, rng: random.Random, pool: list[str]) -> str | None:
    sents = [s for t in rng.sample(pool, min(6, len(pool))) for s in split_sentences(t)
             if len(s.split()) >= 6 and s not in text]
    if not sents:
        return None
    mine = split_sentences(text)
    k = rng.randint(1, len(mine)) if mine else 0
    cut = text.find(mine[k - 1]) + len(mine[k - 1]) if k else len(text)
    return text[:cut] + " " + rng.choice(sents) + text[cut:]


def _omission(text: str, rng: random.Random, _pool) -> str | None:
    sents = [s for s in split_sentences(text) if len(s.split()) >= 5]
    if len(sents) < 2:
        return None
    s = rng.choice(sents)
    return text.replace(s, "", 1)


RULES: dict[str, Callable[[str, random.Random, list[str]], str | None]] = {
    "number": _number, "date": _date, "entity": _entity, "negation": _negation, "addition": _addition,
    "omission": _omission}


def corruptions(rows: list[dict[str, Any]], per_row: int = 2, seed: int = 0) -> list[dict[str, Any]]:
    """Synthetic unfaithful rows: up to `per_row` one-fact corruptions of each faithful row's rewrite."""
    rng = random.Random(seed)
    faithful = [r for r in rows if r["faithful"]]
    out = []
    for r in faithful:
        pool = [o["rewrite"] for o in faithful if o["source"] != r["source"]]
        kinds = rng.sample(sorted(RULES), len(RULES))
        made = 0
        for kind in kinds:
            if made >= per_row:
                break
            new = RULES[kind](r["rewrite"], rng, pool)
            if new and new.strip() and new != r["rewrite"]:
                out.append({"id": f"{r.get('id', r.get('_line'))}~{kind}", "source": r["source"], "rewrite": new,
                            "faithful": False, "corruption": kind, "style": r.get("style"), "synthetic": True,
                            "author": r.get("author"),
                            "_line": r.get("_line", 0)})
                made += 1
    return out
