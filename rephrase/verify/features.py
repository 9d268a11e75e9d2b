"""Pair features for the consistency model: each one a piece of evidence that a rewrite changed, added or
dropped a fact, oriented so that larger means more suspicious, each with a human-readable detail.

The features read the texts after scaffolding is removed (rephrase.verify.scaffold), sentence by sentence:

- numbers:   quantities (numbers, dates, units, ids, number words) of the rewrite that the source does not state,
             and of the source that the rewrite drops (rephrase.verify.numbers compares them normalised);
- entities:  spaCy named entities of one side with a significant word the other side never uses (diacritics,
             case, possessives, demonyms and common aliases folded; speaker labels ignored);
- negation:  aligned sentence groups (embedding alignment) whose negation parity differs, and negated sentences
             whose aligned counterpart has no negation at all; negation read from the dependency parse (`neg`
             arcs), negative determiners/pronouns/adverbs, "without", and un-/in-/non- adjectives ("unaware");
- neg_flip:  negated sentences whose unnegated counterpart states the very predicate negated ("isn't the
             longest" vs "is the longest"): a flip, where a reworded negation ("was short-lived") changes it; a
             counterpart negated only softly ("rather than") flips too when it states the predicate outright,
             and what follows "rather than", a question, or "refused to" is not stated;
- support/coverage: 1 - the best embedding similarity of the least supported rewrite sentence (addition) and of
             the least covered source sentence (omission);
- novelty/loss: content lemmas of one rewrite sentence that the source never uses (an added clause), and the
             share of one source sentence's content lemmas that the rewrite never uses (a dropped clause);
- cosine gap: 1 - whole-text cosine.

No feature decides alone: rephrase.verify.consistency weighs them with a model fitted on labelled data.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

import rephrase.verify.numbers as numbers
from rephrase.verify.entities import _llm_vocab, _stem_match
from rephrase.verify.negation import align_groups
from rephrase.verify.nlp import Analysis, analyse
from rephrase.verify.scaffold import is_title
from rephrase.verify.text import is_claimless, shorten
from rephrase.verify.units import match_unit


def _short(s: str) -> str:
    return shorten(s, 70)

#: the features, in model order
NAMES = ("num_extra", "num_missing", "ent_added", "ent_missing", "neg_parity", "neg_unmatched", "support_gap",
         "coverage_gap", "novel_lemmas", "lost_share", "cosine_gap", "neg_flip")
#: sentences less similar than this are not counterparts (the default of Thresholds.align_min_sim; the features
#: are fixed when the model is fitted, so they do not follow a spec's threshold)
ALIGN_MIN_SIM = 0.3
_CONTENT = frozenset({"NOUN", "PROPN", "ADJ", "VERB", "NUM"})
_NEG_LEMMAS = frozenset({"not", "never", "no", "none", "nothing", "nobody", "neither", "nor", "nowhere", "without",
                         "cannot", "n't", "lack", "fail", "unable", "absence", "absent"})
#: negation that does not negate the claim ("not only", "no longer than", "nothing but")
_NOT_NEGATION = re.compile(r"n't just\b|\b(?:not only|not just|no longer than|no doubt|nothing but|no fewer than|no less than|not least|"
                           r"without doubt|no more than|not long (?:after|before|ago)|not as far as|"
                           r"(?:no|not) (?:later|earlier|sooner) than)\b|"
                           # a bound: "do not take more than 8" = "never go over 8" = "no more than eight" = "at most"
                           r"(?:\bnot|\bnever|n't) (?:\w+ ){0,2}?(?:(?:more|fewer|less) than|exceed|go (?:over|above|beyond))\b",
                           re.IGNORECASE)
#: "tank No. 2", "patent No. 139,121": the numero abbreviation, not a negation
_NUMERO = re.compile(r"\bno\.?\s*\d", re.IGNORECASE)
ALIASES = [{"uk", "britain", "great britain", "united kingdom", "british"},
           {"us", "usa", "united states", "america", "american", "u.s", "united states of america"},
           {"ussr", "soviet union", "soviet"}, {"un", "united nations"}, {"eu", "european union"},
           {"danes", "dane", "danish", "denmark"}, {"swedes", "swede", "swedish", "sweden"},
           {"finns", "finn", "finnish", "finland"}, {"poles", "pole", "polish", "poland"},
           {"turks", "turk", "turkish", "turkey"}, {"scots", "scot", "scottish", "scotland"},
           {"dutch", "netherlands", "holland"}, {"swiss", "switzerland"}, {"welsh", "wales"},
           # currency codes and their names ("CHF 12.2 billion" = "12.2 billion Swiss francs")
           {"chf", "swiss franc", "swiss francs", "franc", "francs"},
           {"usd", "us dollar", "us dollars", "dollar", "dollars"}, {"eur", "euro", "euros"},
           {"gbp", "pound", "pounds", "sterling"}, {"jpy", "yen"}, {"cny", "rmb", "yuan", "renminbi"},
           {"inr", "rupee", "rupees"},
           # a court by its nickname
           {"scotus", "supreme court", "us supreme court", "united states supreme court"},
           # the world wars by their initialisms and ordinals ("WWII" = "the Second World War")
           {"wwii", "ww2", "world war ii", "world war two", "second world war"},
           {"wwi", "ww1", "world war i", "world war one", "first world war", "great war"},
]


@dataclass
class Feature:
    name: str
    value: float
    detail: str = ""


def fold(word: str) -> str:
    """Lower case without diacritics or a possessive: "Dvořák's" -> "dvorak"."""
    w = unicodedata.normalize("NFKD", word.lower())
    w = "".join(c for c in w if not unicodedata.combining(c))
    return re.sub(r"'s?$", "", w.replace("\u0142", "l").replace("\u00f8", "o").replace("\u00df", "ss"))


def pair_features(src_sents: list[str], rw_sents: list[str], src_text: str, rw_text: str, labels: set[str],
                  titles: set[str], src_best: np.ndarray | None, rw_best: np.ndarray | None,
                  sent_sim: np.ndarray | None, doc_cos: float) -> list[Feature]:
    """All features of one (source, rewrite) pair, in NAMES order. Texts are scaffold-stripped."""
    sa, ra = analyse(src_sents), analyse(rw_sents)
    claims = [j for j, s in enumerate(rw_sents) if s.strip() not in titles and not is_claimless(s)]
    feats = _number_features(src_text, rw_text) + _entity_features(sa, ra, labels)
    *neg, flip = _negation_features(src_sents, rw_sents, sa, ra, _without_titles(sent_sim, rw_sents, titles))
    feats += neg
    feats += _similarity_features(src_sents, rw_sents, claims, src_best, rw_best)
    feats += _lexical_features(src_sents, rw_sents, sa, ra, claims)
    feats.append(Feature("cosine_gap", 1.0 - doc_cos if np.isfinite(doc_cos) else 0.0, f"cosine {doc_cos:.2f}"))
    feats.append(flip)  # computed with the other negation features, listed last (it joined the model last)
    assert tuple(f.name for f in feats) == NAMES
    return feats


def _number_features(src_text: str, rw_text: str) -> list[Feature]:
    diff = numbers.compare(src_text, rw_text)
    extra = [q.label() for q in diff.extra]
    missing = [q.label() for q in diff.missing]
    return [Feature("num_extra", min(len(extra), 3), f"not in source: {', '.join(extra[:3])}"),
            Feature("num_missing", min(len(missing), 3), f"missing in rewrite: {', '.join(missing[:3])}")]


# ---------------------------------------------------------------- entities
#: a prefix glued to a proper adjective written in lower case: "transatlantic" is "across the Atlantic",
#: "subsaharan" "south of the Sahara" (a common remainder is no name: "transport", "subform")
_NAME_PREFIX = re.compile(r"^(?:trans|sub|pan|cis)(?P<rest>[a-z]{5,})$")


def _vocab(an: list[Analysis]) -> set[str]:
    # punctuation glued to a word is no part of it: "~DKK 11 million", "(approx.", "*Viborg*"
    words = {p for a in an for t in a.tokens for w in (t.text, t.lemma) for p in re.split(r"[-']", fold(w))
             for p in (p, p.strip("~\u2248<>()[]{}*_\"\u201c\u201d#@,;:!?/|+=")) if p}
    # an abbreviation's full stops: "Jr." is "jr", "U.S." is "us"
    words |= {w.replace(".", "") for w in words if "." in w and w.replace(".", "").isalpha()}
    glued = {m.group("rest") for w in words for m in [_NAME_PREFIX.match(w)] if m}
    return words | {r for r in glued if not _common(r)}


_ENT_STOP = frozenset("the of and a an de la le von van der da di del du al el bin ibn y st saint mr mrs ms dr "
                      "prof sir lord lady king queen emperor pope bc bce ad ce vs "
                      # compass points abbreviated ("NW Europe" for "north-western Europe"): directions, not names
                      "ne nw se sw nne ene ese sse ssw wsw wnw nnw".split())  # eras: dates' business
#: words of styled rewrites' headings and labels that spaCy tags as names ("Tōkaidō Shinkansen - FAQ", "BLUE WHALE -
#: KEY POINTS", "Caveat: ..."): structure, not entities
_HEADING_WORDS = frozenset("faq faqs caveat caveats key points summary recap overview takeaway takeaways verdict tl dr "
                           "fyi nb ps glossary timeline quiz trivia highlights snapshot spotlight reminder bottom line "
                           "basics background intro introduction conclusion update breaking "
                           # a man page's and a memo's section headings ("SYNOPSIS", "MEMORANDUM")
                           "synopsis memorandum memo addendum erratum errata preface foreword afterword "
                           # a software log's headings ("Colossus - changelog", "release notes")
                           "changelog changelogs changes changeset".split())
#: interjections ("WOW!", "Yikes") and month abbreviations ("11 APR 1970": dates are the numbers' business)
_FILLER_WORDS = frozenset("wow whoa woah yay hooray oops aha ouch yikes boom bam pow zap wham omg lol phew ooh "
                          "jan feb mar apr jun jul aug sep sept oct nov dec "
                          # internet shorthand for the writer's stance ("IANAL but ...", "IMO"): style, not names
                          "ianal imo imho iirc afaik fwiw tbh tldr btw ftw eli".split())
#: weekdays abbreviated ("delivered Mon-Sat"): a date, matched by the day's full name on the other side ("Monday to
#: Saturday"), so "Mon-Fri" for "Monday to Saturday" is still a day the source does not give
_WEEKDAY_ABBR = {"mon": "monday", "tue": "tuesday", "tues": "tuesday", "wed": "wednesday", "thu": "thursday",
                 "thur": "thursday", "thurs": "thursday", "fri": "friday", "sat": "saturday", "sun": "sunday"}


def _ent_words(text: str, labels: set[str]) -> list[str]:
    ws = [p for w in re.findall(r"[^\W\d_]+(?:['-][^\W\d_]+)*", text) for p in re.split(r"[-']", fold(w)) if p]
    return [w for w in ws if len(w) > 1 and w not in labels and w not in _ENT_STOP and w not in _HEADING_WORDS
            and w not in _FILLER_WORDS and not re.search(r"(\w)\1\1", w)]  # "noooo", "sooo": drawn-out speech


#: the Sun, Moon and Earth are named by their adjectives too ("total solar eclipse", "the Solar System")
#: and by the apsides named after them: a perihelion is the nearest point to the Sun, a perigee to the Earth
_BODY_ALIASES = [{"sun", "solar", "perihelion", "aphelion"}, {"moon", "lunar", "perilune", "apolune"},
                 {"earth", "terrestrial", "perigee", "apogee"}]
#: a register and what it registers: a World Heritage Site is a place on UNESCO's World Heritage List
_REGISTER_ALIASES = [{"world heritage site", "world heritage sites", "world heritage list"}]


def _alias_hit(words: list[str], other_text: str) -> bool:
    phrase = " ".join(words)
    return any(phrase in group and any(re.search(rf"\b{re.escape(a)}\b", other_text) for a in group - {phrase})
               for group in ALIASES + _BODY_ALIASES + _REGISTER_ALIASES)


def _plural(a: str, b: str) -> bool:
    """One word is the other's regular plural: "Macs" / "Mac", "the Kennedys" / "Kennedy", "Joneses" / "Jones"."""
    short, long_ = sorted((a, b), key=len)
    return long_ == short + "s" or (long_ == short + "es" and short.endswith(("s", "x", "z", "ch", "sh")))


def _has(word: str, vocab: set[str], abbreviated: bool = False) -> bool:
    """`word` or a form of it is in `vocab`; an abbreviation written with its full stop ("Univ.", "Inst.") matches
    any word it begins."""
    n = 3 if abbreviated else 5
    return word in vocab or any(_stem_match(word, v) or (len(word) >= n and v.startswith(word)) or _plural(word, v) or
                                (len(v) > 4 and word.startswith(v)) for v in vocab if v[:2] == word[:2])


def _abbreviated(a: Analysis, start: int, text: str) -> set[str]:
    """Folded words of an entity that the text writes with an abbreviation's full stop ("Univ. of Manchester")."""
    n = len(text.split())
    toks = a.tokens[start:start + n + 2]
    out = set()
    for k, t in enumerate(toks[:n]):
        nxt, after = (toks[k + 1] if k + 1 < len(toks) else None), (toks[k + 2] if k + 2 < len(toks) else None)
        # "Univ." is one token or "Univ" + "." with the sentence going on in lower case ("Univ. of Manchester")
        if (t.text.endswith(".") and len(t.text) > 2) or (nxt is not None and nxt.text == "." and after is not None
                                                          and after.text[:1].islower()):
            out.add(fold(t.text.rstrip(".")))
    return out


def _initials(words: list[str]) -> str:
    return "".join(w[0] for w in words)


def _common(word: str) -> bool:
    """A word English writes in lower case: the embedded SmolLM2 vocabulary has it as a lower-case word token."""
    vocab = _llm_vocab()
    if vocab is None:
        return False
    w = word.lower()  # a plural the BPE vocabulary lacks is common when its singular is ("Lifespans")
    return any(("\u0120" + f) in vocab for f in (w, w[:-1] if w.endswith("s") and len(w) > 4 else w))


def _is_common_heading_word(text: str, a: Analysis, start: int) -> bool:
    """A one-word "entity" at a sentence or line start that English uses as a common word ("Size:", "Caveat",
    "Recognition"): spaCy's small model tags capitalised heading words as names."""
    # an opening bracket starts a stage or camera direction ("[Lifts board]"), which spaCy may tag X
    if " " in text.strip() or (start > 0 and a.tokens[start - 1].pos not in ("PUNCT", "SPACE")
                               and a.tokens[start - 1].text not in ("[", "(", "{")):
        return False
    return _common(text.strip())


def _letters(word: str) -> str:
    """What a word gives an initialism: its first letter, or every letter of a dotted abbreviation ("U.S." -> "us")."""
    w = fold(word)
    return w.replace(".", "") if re.fullmatch(r"(?:[a-z]\.){2,}[a-z]?", w) else w[:1]


_INITIALISM_SKIP = frozenset("of the and for &".split())


def _acronym_of(word: str, words: list[str]) -> bool:
    """"RBC" for "red blood cells", "USGS" for "U.S. Geological Survey", "USA" for "United States of America": an
    upper-case word spelling the initials of consecutive words (a dotted abbreviation gives all its letters; "of",
    "the", "and", "for" may be passed over)."""
    w = word.lower()
    if not 2 <= len(w) <= 6:
        return False
    for seq in (words, [x for x in words if fold(x) not in _INITIALISM_SKIP]):
        lets = [_letters(x) for x in seq]
        for i in range(len(lets)):
            acc = ""
            for piece in lets[i:]:
                acc += piece
                if not w.startswith(acc):
                    break
                if acc == w:
                    return True
    return False


def _text_initials(text: str) -> str:
    """The initialism of a name as written ("U.S. Geological Survey" -> "usgs", "Japan Standard Time" -> "jst")."""
    ws = [x for x in text.split() if fold(x) not in _INITIALISM_SKIP and x[:1].isalpha()]
    return "".join(_letters(x) for x in ws)


def _initial_forms(an: list[Analysis]) -> set[tuple[str, str]]:
    """(initial, next word) of names written with an initial: "P. falciparum", "N. Bartlett" -> ("p", "falciparum")."""
    out = set()
    for a in an:
        toks = [t for t in a.tokens if t.pos != "SPACE"]
        for k, t in enumerate(toks[:-1]):
            if re.fullmatch(r"[A-Z]\.", t.text) and toks[k + 1].text[:1].isalpha():
                out.add((t.text[0].lower(), fold(toks[k + 1].text)))
            elif re.fullmatch(r"[A-Z]", t.text) and toks[k + 1].text == "." and k + 2 < len(toks):
                out.add((t.text.lower(), fold(toks[k + 2].text)))
    return out


def _written_as_initial(a: Analysis, start: int, text: str, forms: set[tuple[str, str]]) -> bool:
    """A one-word name the other side abbreviates to its initial before the word that follows it here
    ("Plasmodium falciparum" -> "P. falciparum")."""
    n = len(text.split())
    nxt = [t for t in a.tokens[start + n:start + n + 2] if t.pos != "SPACE"]
    return bool(nxt) and (fold(text)[:1], fold(nxt[0].text)) in forms


#: nouns naming a style's own frame: the publication or programme a rewrite is dressed as
_FRAME_NOUNS = frozenset("newsletter newsletters bulletin gazette digest podcast show radio magazine news corner column "
                         "programme program segment series blog "
                         # a meeting's record names its body ("MINUTES - Heritage Committee"); a programme in Spanish
                         "minutes agenda meeting programa".split())
#: words that link a record's noun to the body it records: "Minutes of the Regional Transport Council"
_FRAME_LINKS = frozenset("of the for from".split())
#: what a meeting's body does in its record ("The Committee noted ...", "The Council received the figures")
_REPORTING_VERBS = frozenset("note receive record resolve agree observe approve adopt discuss consider welcome "
                             "endorse accept decide".split())
#: a programme's host introducing it: "You're on Mind Matters", "you're listening to The Science Hour"
_FRAME_INTRO = re.compile(r"(?:you're|you are|you're all)\s+(?:on|listening to|watching|tuned (?:in )?to)\s+(?:the\s+)?$|"
                          r"(?:thanks for|thank you for) (?:listening to|tuning in to|watching|reading)\s+(?:the\s+)?$",
                          re.IGNORECASE)
#: "Welcome back to Summit Stories", "This is Summit Stories": a host opening the programme
_WELCOME = re.compile(r"\b(?:welcome\s+(?:back\s+)?to|this\s+is)\s+(?:the\s+)?$", re.IGNORECASE)


def _is_frame(a: Analysis, start: int, text: str, first: bool) -> bool:
    """A name the rewrite's style invents for its own frame: the publication or programme named in its opening
    line ("From the Music Department Newsletter - "Classic Albums" corner", "Polar Society Alumni News"), or the
    programme its host introduces ("You're on Mind Matters."), or welcomes its audience to in its opening line
    when the name is made of common words ("Welcome back to Source Code Stories!"; "Welcome to Kyoto" is content).
    Only these forms: a name elsewhere is content."""
    n = len(text.split())
    # spaces first: a folded dash leaves space tokens ("Heritage Committee  -  minutes")
    toks = [t for t in a.tokens[start:] if t.pos != "SPACE"][:n + 3]
    words = {fold(t.text) for t in toks[:n]}
    after = next((fold(t.text) for t in toks[n:] if t.text.isalpha()), "")
    if first and ((words | {after}) & _FRAME_NOUNS or (after == "item" and _meeting_heading(a))):
        return True  # "Heritage Committee - minutes, Item 7", "Road Safety Board, Item 3: ..."
    lead = [t.text for t in a.tokens[:start] if t.pos != "SPACE"]
    if first and any(fold(w) in _FRAME_NOUNS for w in lead) and all(
            fold(w) in _FRAME_NOUNS or fold(w) in _FRAME_LINKS or not w.isalnum() for w in lead):
        return True  # the heading names the document, then its body: "MINUTES - Heritage Committee", "Minutes of the"
    before = " ".join(t.text for t in a.tokens[max(0, start - 6):start]).replace(" 're", "'re")
    if words == {"english"} and re.search(r"\b(?:easy|simple|plain)\s*$", before, re.IGNORECASE):
        return True  # "(easy English)", "in plain English": the register of the style, not a fact
    if first and _WELCOME.search(before + " ") and all(_common(w) for w in words):
        return True
    return bool(_FRAME_INTRO.search(before + " "))


def _direction(a: Analysis) -> bool:
    """A sentence that is a bracketed stage or sound direction ("[INTRO MUSIC]", "(laughs)")."""
    toks = [t.text for t in a.tokens if t.pos != "SPACE"]
    return len(toks) >= 2 and toks[0] in ("[", "(") and toks[-1] in ("]", ")")


def _meeting_heading(a: Analysis) -> bool:
    """A heading (no sentence punctuation at its end) of a meeting's record: it says "minutes", "agenda" or
    "meeting", or numbers an agenda item ("Item 7: early elevator history")."""
    toks = [t for t in a.tokens if t.pos != "SPACE"]
    if not toks or toks[-1].text in (".", "!", "?"):
        return False
    return any(t.lower in ("minutes", "agenda", "meeting") or (
        t.lower == "item" and k + 1 < len(toks) and re.fullmatch(r"\d{1,3}[a-z]?|[ivx]+", toks[k + 1].lower))
        for k, t in enumerate(toks))


def _body_reports(a: Analysis, start: int, text: str) -> bool:
    """"The Committee noted ...", "The Board received ...": a meeting's record refers to the body that meets by a
    capitalised common noun, the subject of a reporting verb; the body is the record's frame, not a source fact."""
    toks = a.tokens
    if " " in text.strip() or start < 1 or toks[start - 1].lower != "the" or not _common(text.strip()):
        return False
    t = toks[start]
    return (t.dep == "nsubj" and 0 <= t.head < len(toks) and toks[t.head].pos == "VERB"
            and toks[t.head].lemma.lower() in _REPORTING_VERBS)


def _title_case(a: Analysis) -> bool:
    """A heading in title case ("Hollywood Got It Wrong: Sprinklers Don't All Go Off at Once"): capitals mark
    words, not names."""
    ws = [t.text for t in a.tokens if t.text.isalpha() and len(t.text) > 3]
    return (len(ws) >= 3 and sum(w[0].isupper() for w in ws) >= 0.8 * len(ws)
            and a.tokens[-1].text not in (".", "!", "?"))


def _trim_verbs(a: Analysis, start: int, text: str) -> tuple[str, int]:
    """A name spaCy runs on into a title-case heading's verb ("Hollywood Got" of "Hollywood Got It Wrong"): a
    verb at either end of the span is no part of the name."""
    words = text.split()
    toks = a.tokens
    end = start + len(words) - 1  # a word per token when the words are plain ones (the common case)
    if len(words) < 2 or end >= len(toks) or [t.text for t in toks[start:end + 1]] != words or not _title_case(a):
        return text, start
    while len(words) > 1 and toks[end].pos in ("VERB", "AUX"):
        words, end = words[:-1], end - 1
    while len(words) > 1 and toks[start].pos in ("VERB", "AUX"):
        words, start = words[1:], start + 1
    return " ".join(words), start


#: a determiner spaCy takes into a sentence-initial name ("This United States account" -> "United States")
_LEADING_DET = re.compile(r"(?:this|that|these|those|our|your|their|its|my|every|each)\s+(?=\S)", re.IGNORECASE)


def _idiomatic_earth(a: Analysis, start: int, text: str) -> bool:
    """"on Earth" as the intensifier of a superlative or "ever" ("the biggest animal ever to have lived on Earth"):
    it says "of all", not where."""
    if fold(text.strip()) != "earth" or start == 0 or a.tokens[start - 1].lower != "on":
        return False
    return any(t.lower in ("ever", "most") or (t.pos == "ADJ" and t.lower.endswith("est") and t.lemma != t.lower)
               for t in a.tokens)


def _paren_alias(a: Analysis, start: int, text: str, vocab: set[str]) -> bool:
    """A one-word name in brackets right after a name the other side keeps: an alias or the local form ("Vienna
    (Wien)", "Cologne (Köln)"); an upper-case code in brackets ("(USA)", "(IETF)") is a fact of its own."""
    toks = a.tokens
    return (len(text.split()) == 1 and not text.isupper() and start >= 2 and toks[start - 1].text == "("
            and start + 1 < len(toks) and toks[start + 1].text == ")" and toks[start - 2].pos == "PROPN"
            and _has(fold(toks[start - 2].text), vocab))


def _derived_common(word: str) -> bool:
    """An agent noun of a common word: "Issuer" (issue), "Shipper" (ship), "Distributor" (distribute)."""
    w = fold(word)
    for suf in ("ers", "er", "ors", "or"):
        stem = w[:-len(suf)]
        if w.endswith(suf) and len(stem) >= 3 and any(
                _common(s) for s in (stem, stem + "e", stem[:-1] if stem[-1:] == stem[-2:-1] else stem)):
            return True
    return False


def _is_record(an: list[Analysis]) -> bool:
    """A key-value record: three or more lines that open with a short "Key:" label ("Issuer: ...")."""
    def keyed(a: Analysis) -> bool:
        toks = [t for t in a.tokens if t.pos != "SPACE"]
        return any(t.text == ":" for t in toks[1:4]) and all(
            t.text.isalpha() for t in toks[:next(k for k, t in enumerate(toks) if t.text == ":")])
    return sum(keyed(a) for a in an) >= 3


def _is_field_label(a: Analysis, start: int, text: str) -> bool:
    """A record's one-word key ("Issuer:") that English derives from a common word: a field name, not a name."""
    toks = [t for t in a.tokens[start:start + 3] if t.pos != "SPACE"]
    if start != 0 or " " in text.strip() or len(toks) < 2:
        return False
    if toks[1].text == ":" and _derived_common(text.strip()):
        return True
    # a key that is a noun phrase in lower case after the line's capital ("Hypocentre depth:", "Tape reading speed:")
    rest = [t for t in a.tokens[start + 1:start + 5] if t.pos != "SPACE"]
    k = next((i for i, t in enumerate(rest) if t.text == ":"), -1)
    return k >= 1 and all(t.text.isalpha() and t.text.islower() for t in rest[:k])


def _bracket_code(a: Analysis, start: int, text: str) -> str:
    """The abbreviation a name defines in brackets right after it ("World Wide Web Consortium (W3C)"), folded;
    its first letter is the name's ("Tim Peters (PSF)" defines nothing)."""
    toks = [t for t in a.tokens[start + len(text.split()):start + len(text.split()) + 4] if t.pos != "SPACE"]
    if len(toks) < 3 or toks[0].text != "(" or toks[2].text != ")":
        return ""
    code, ws = toks[1].text, _ent_words(text, set())
    if (sum(c.isupper() for c in code) >= 2 and not any(c.islower() for c in code) and ws
            and fold(code)[:1] == ws[0][:1]):
        return fold(code)
    return ""


def _container_place(a: Analysis, start: int, label: str, vocab: set[str]) -> bool:
    """The region after a place it contains ("Mainz, Germany", "County Durham, England"): the place the other side
    keeps locates it. Only a pair: a longer chain or one that goes on with "and"/"or" is a list of places
    ("Cornwall, central Europe, Iran, India"; "Mainz, Cologne and Bonn")."""
    toks = a.tokens
    if label not in ("GPE", "LOC") or start < 2 or toks[start - 1].text != "," or toks[start - 2].pos != "PROPN":
        return False
    if not _has(fold(toks[start - 2].text), vocab):
        return False
    j = start - 2
    while j > 0 and toks[j - 1].pos == "PROPN":
        j -= 1
    if j > 0 and (toks[j - 1].text in (",", "&") or toks[j - 1].lower in ("and", "or")):
        return False  # the first place is itself an item of a list
    rest = [t for t in toks[start + 1:] if t.pos != "SPACE"]
    k = next((i for i, t in enumerate(rest) if t.pos != "PROPN"), len(rest))
    if k < len(rest) and (rest[k].lower in ("and", "or", "&") or (
            rest[k].text == "," and k + 1 < len(rest) and rest[k + 1].pos == "PROPN")):
        return False  # the chain goes on: "Mainz, Cologne, Bonn", "Mainz, Cologne and Bonn" ("Mainz, Germany, in" ends)
    return True


#: "across the Atlantic" says where a place lies from the other shore: named when the other side names a place on
#: each shore ("in France ... adopted in the United States" -> "Across the Atlantic, the United States ...")
_EUROPE = ("europe european continent continental france french britain british england english uk ireland irish "
           "scotland scottish germany german spain spanish portugal italy italian netherlands dutch belgium").split()
_AMERICAS = ("america american americas united states us usa canada canadian mexico brazil newfoundland "
             "caribbean").split()
_ASIA_PACIFIC = "asia asian japan japanese china chinese korea philippines australia australian".split()
_SEA_SHORES = {"atlantic": (_EUROPE, _AMERICAS), "pacific": (_AMERICAS, _ASIA_PACIFIC)}
_ACROSS = re.compile(r"\b(?:across|over|beyond|side of)\s+the\s*$", re.IGNORECASE)


def _across_sea(a: Analysis, start: int, text: str, other_text: str) -> bool:
    shores = _SEA_SHORES.get(fold(text.strip()))
    before = " ".join(t.text for t in a.tokens[max(0, start - 4):start])
    return bool(shores and _ACROSS.search(before) and all(
        any(re.search(rf"\b{w}\b", other_text) for w in shore) for shore in shores))


_ALIAS_NOUNS = frozenset("name names word term form spelling title rendering".split())


def _bracket_alias_words(an: list[Analysis]) -> set[str]:
    """Folded words of bracketed aliases after names: "Suez Canal (Qanāt as-Suways)" -> qanat, suways."""
    out = set()
    for a in an:
        toks = a.tokens
        for k, t in enumerate(toks[:-1]):
            if t.text == "(" and k > 0 and toks[k - 1].pos == "PROPN":
                for u in toks[k + 1:k + 8]:
                    if u.text == ")":
                        break
                    out.update(p for p in re.split(r"[-']", fold(u.text)) if len(p) > 2 and p.isalpha())
    return out - {"also", "called", "known"}


def _alias_language(a: Analysis, start: int, text: str, label: str, alias_words: set[str]) -> bool:
    """The language of an alias the other side gives in brackets: "Suez Canal (Qanāt as-Suways)" -> "its Arabic
    name being Qanāt as-Suways": it labels the alias, it adds no name."""
    if label not in ("LANGUAGE", "NORP") or " " in text.strip() or not alias_words:
        return False
    toks = [t for t in a.tokens[start + 1:start + 2] if t.pos != "SPACE"]
    before = a.tokens[start - 1].lower if start > 0 else ""
    if not ((toks and toks[0].lemma.lower() in _ALIAS_NOUNS) or before == "in"):
        return False
    return bool({fold(t.text) for t in a.tokens} & alias_words)


#: a letter's closing before the writer's name, at the end of a line or paragraph ("... per bag. Kind regards,
#: Customer Care", "With apologies, Customer Service", "- Support Team")
_VALEDICTION = re.compile(r"(?:^|[.!?]\s+)(?:(?:with\s+)?(?:(?:kind|warm|warmest|best|many|sincere|our)\s+)?"
                          r"(?:regards|wishes|thanks|apologies)|yours(?:\s+(?:sincerely|faithfully|truly))?|"
                          r"sincerely|cheers|best|thank you)\s*,?\s*$|(?:^|[.!?]\s*)[-\u2013\u2014]\s*$",
                          re.IGNORECASE)


def _sign_off(a: Analysis, start: int, text: str) -> bool:
    """The writer's role signing a reply ("Kind regards, Customer Care", "- Customer Service Team"): a closing
    right before it, nothing but punctuation after it, and only common words in it (a role, not a person)."""
    n = len(text.split())
    before = " ".join(t.text for t in a.tokens[:start] if t.pos != "SPACE")
    after = [t for t in a.tokens[start + n:] if t.pos != "SPACE"]
    ws = _ent_words(text, set())
    return (bool(ws) and all(_common(w) for w in ws) and all(not t.text[:1].isalnum() for t in after)
            and bool(_VALEDICTION.search(before.rstrip() + " ")))


def _joined_ents(a: Analysis) -> list[tuple[str, str, int]]:
    """The sentence's entities, two that abut with no token between joined: English separates two names by a comma
    or a conjunction, so spaCy's "Stockton & Darlington" + "Railway" is the one name "Stockton & Darlington Railway"."""
    out: list[tuple[str, str, int]] = []
    for text, label, start in a.ents:
        if out and out[-1][2] + len(out[-1][0].split()) == start and a.tokens[start - 1].pos != "SPACE":
            prev = out.pop()
            text, label, start = prev[0] + " " + text, prev[1], prev[2]
        out.append((text, label, start))
    return out


def _distinct(names: list[str], labels: set[str]) -> list[str]:
    """One entry per name: a mention whose words all belong to another mention's ("Carter" beside "Howard
    Carter's") is the same name again."""
    sets = [frozenset(_ent_words(n, labels)) or frozenset([n]) for n in names]
    return [n for i, n in enumerate(names)
            if not any(j != i and (sets[i] < sets[j] or (sets[i] == sets[j] and j < i)) for j in range(len(names)))]


def _unmatched(side: list[Analysis], other: list[Analysis], labels: set[str], need_all: bool) -> list[str]:
    vocab = _vocab(other)
    initial_forms = _initial_forms(other)
    other_words = [fold(t.text) for a in other for t in a.tokens if t.text[:1].isalpha()]
    other_text = " ".join(other_words)
    other_initials = {_initials(_ent_words(e[0], set())) for a in other for e in a.ents}
    codes = {t.lower for a in other for t in a.tokens if len(t.text) == 3 and t.text.isupper() and t.text.isalpha()}
    record, alias_words = _is_record(side), _bracket_alias_words(other)
    # a meeting's record: the body named in its heading, or referred to as "The Committee noted", is its frame
    meeting = need_all and bool(side) and _meeting_heading(side[0])
    frame_words: set[str] = set()
    out, the_refs = [], set()
    # the opening line: the first sentence after any stage directions ("[INTRO MUSIC]\nWelcome back to ...")
    opening = next((k for k, a in enumerate(side) if not _direction(a)), 0)
    for n_sent, a in enumerate(side):
        alpha = [t.text for t in a.tokens if t.text.isalpha() and len(t.text) > 1]
        caps_line = len(alpha) >= 2 and sum(w.isupper() for w in alpha) >= 0.6 * len(alpha)
        title_line = is_title(" ".join(t.text for t in a.tokens))  # a heading line ("The Big Cliff Rescue")
        # all lower case ("ok nokora x7 pro specs since u asked"): case tells no name from a word
        lower_line = bool(alpha) and not any(c.isupper() for w in alpha for c in w)
        for text, _label, start in _joined_ents(a):
            lead = _LEADING_DET.match(text)
            if lead and a.tokens[start].pos in ("DET", "PRON"):
                text, start = text[lead.end():], start + 1
            text, start = _trim_verbs(a, start, text)
            if need_all and any(not _common(w) for w in set(_ent_words(text, set())) & labels):
                continue  # a speaker of the dialogue ("Dr Parisa Rahimi", who speaks as "RAHIMI:") is its frame
            if need_all and _is_frame(a, start, text, n_sent == opening):
                frame_words.update(_ent_words(text, set()))
                continue
            own = set(_ent_words(text, set()))
            if need_all and ((own and own <= frame_words) or (meeting and _body_reports(a, start, text))):
                continue  # the frame named again ("Heritage Committee - minutes" ... "The Committee noted")
            ws = _ent_words(text, labels)
            unit = match_unit(" " + " ".join(ws), 0)
            # a lower-case "name" where the text writes capitals; or, in all lower-case text, a common word after an
            # article ("the max you can put in"): no name is written so
            lower_case_tag = text.islower() and (any(t.text[:1].isupper() for t in a.tokens) or (
                len(text.split()) == 1 and start > 0 and a.tokens[start - 1].lower in ("the", "a", "an")
                and _common(text)))
            if (not ws or lower_case_tag or any(c.isdigit() for c in text) or _is_common_heading_word(text, a, start)
                    or (unit and unit[1] == len(" ".join(ws)) + 1)):
                continue  # nothing name-like left, an id/quantity (numbers' business), or a unit name
            if (need_all and _idiomatic_earth(a, start, text)) or (not need_all and _paren_alias(a, start, text, vocab)):
                continue
            if record and _is_field_label(a, start, text):
                continue
            if _bracket_code(a, start, text) in vocab or (not need_all and _container_place(a, start, _label, vocab)):
                continue  # "World Wide Web Consortium (W3C)" kept as "the W3C"; "Mainz, Germany" kept as "Mainz"
            if need_all and (_across_sea(a, start, text, other_text) or _sign_off(a, start, text) or
                             _alias_language(a, start, text, _label, alias_words)):
                continue
            if text.isupper() and len(ws) == 1 and _acronym_of(ws[0], other_words):
                continue
            if text.isupper() and (len(text) > 3 or caps_line):  # an ALL-CAPS line ("ATHLETE CARD", "FLIGHT
                ws = [w for w in ws if not _common(w)]  # SUMMARY LOG") hides case: its common words are no names
                if not ws:
                    continue
            if (title_line or lower_line) and len(ws) > 1 and all(_common(w) for w in ws):
                continue  # a title-case heading ("The Big Cliff Rescue") or all-lower-case chat ("x7 pro specs"):
                # capitals, or their lack, mark no name, and common words name nothing
            if need_all and len(ws) > 1:  # "the Louvre museum", "BLUE WHALE KEY": the name-like words decide
                ws = [w for w in ws if not _common(w)] or ws
            if (len(text.split()) > 1 and _text_initials(text) in vocab) or (
                    text.isupper() and len(ws) == 1 and _acronym_of(text.strip(), other_words)):
                continue  # "Japan Standard Time" for "JST", "U.S. Geological Survey" for "USGS" and back
            if start == 0 and len(ws) == 1 and " " not in text.strip() and len(a.tokens) > 1 and (
                    a.tokens[1].text == "," and (a.tokens[0].pos == "ADV" or _ADVERB_FORM.search(ws[0]))):
                continue  # a sentence-opening adverb ("Partway, a window shook"): spaCy's capitalised word
            if len(ws) == 1 and text.isupper() and _unit_abbreviation(a, start, ws[0], other_words):
                continue  # "500 KB" written "kilobytes": a unit's abbreviation after a number, the numbers' business
            if need_all and text.islower() and ws[0] in _GREETINGS:
                continue  # an all-lower-case salutation ("hey jo -"): the letter's frame
            if "".join(ws) in other_initials or (len(ws) > 1 and _initials(ws) in vocab) or _alias_hit(ws, other_text):
                continue  # "WHO" for "World Health Organization" and back; "Britain" for "the United Kingdom"
            if len(ws) == 1 and _written_as_initial(a, start, text, initial_forms):
                continue
            abbr = _abbreviated(a, start, text)
            # a word with an alias on the other side ("Tyson Gay (USA" for "the United States"), or a country
            # written as its three-letter sports/ISO code ("JAM" for "Jamaica")
            caps = {fold(x) for x in re.findall(r"[A-Za-z]{2,}", text) if x.isupper()}
            hits = [_has(w, vocab, w in abbr) or _alias_hit([w], other_text) or _WEEKDAY_ABBR.get(w) in vocab or
                    (w in caps and _acronym_of(w, other_words)) or  # "NYT Co." for "New York Times Co."
                    (not need_all and len(w) > 3 and w[:3] in codes) for w in ws]
            if not (all(hits) if need_all else any(hits)):
                out.append(text)
                if len(ws) == 1 and start > 0 and a.tokens[start - 1].lower == "the":
                    the_refs.add(text)
    # "the Court" after "the U.S. Supreme Court": a one-word back-reference to a name this side gives in full and
    # the other side keeps
    heads = {_ent_words(t, set())[-1] for a in side for t, _l, _s in _joined_ents(a)
             if len(_ent_words(t, set())) > 1 and t not in out}
    out = [t for t in out if not (t in the_refs and _ent_words(t, set()) and _ent_words(t, set())[0] in heads)]
    return list(dict.fromkeys(out))


def _unit_abbreviation(a: Analysis, start: int, word: str, other_words: list[str]) -> bool:
    """An upper-case abbreviation right after a number whose letters, in order, spell a word the other side writes in
    lower case from the same first letter ("500 KB" / "kilobytes", "2 GB" / "gigabytes")."""
    if start == 0 or not a.tokens[start - 1].text[:1].isdigit():
        return False
    pat = re.compile(word[0] + "".join(".*" + re.escape(c) for c in word[1:]))
    return any(len(w) > len(word) + 2 and w.isalpha() and pat.match(w) for w in other_words)


#: adverbs by their form ("partway", "likewise", "afterwards", "eventually")
_ADVERB_FORM = re.compile(r"(?:ly|way|ways|wise|wards?)$")
_GREETINGS = frozenset("hey hi hello hiya dear yo".split())
_FIRST_PERSON = frozenset({"i", "me", "my", "myself", "mine"})


def _first_person(a: Analysis) -> bool:
    """The sentence says "I", "me" or "my" outside quotation marks (a quoted "I" is someone else speaking)."""
    quoted = False
    for t in a.tokens:
        if t.text == '"':
            quoted = not quoted
        elif not quoted and t.lower in _FIRST_PERSON and t.pos == "PRON":
            return True
    return False


def _narrator(missing: list[str], sa: list[Analysis], ra: list[Analysis], labels: set[str]) -> set[str]:
    """The person a first-person rewrite speaks as (a diary or letter in Carter's voice calls Carter "I"): when the
    source has no first person of its own and exactly one missing name is a person, that person is the narrator
    if a source sentence naming them shares two content lemmas with a rewrite sentence that says "I" ("Carter
    replied ... see anything" / "Carnarvon asked whether I could see anything")."""
    if any(_first_person(a) for a in sa) or not any(_first_person(a) for a in ra):
        return set()
    persons = [m for m in missing if any(e[0] == m and e[1] == "PERSON" for a in sa for e in a.ents)]
    if len(persons) != 1:
        return set()
    words = set(_ent_words(persons[0], labels))
    mine = [a.lemmas(_CONTENT) for a in ra if _first_person(a)]
    for a in sa:
        if words & {fold(t.text) for t in a.tokens}:
            theirs = {fold(x) for x in a.lemmas(_CONTENT)} - words
            if any(len(theirs & {fold(x) for x in m}) >= 2 for m in mine):
                return {persons[0]}
    return set()


def _entity_features(sa: list[Analysis], ra: list[Analysis], labels: set[str]) -> list[Feature]:
    # a rewrite name is supported only when ALL its words occur in the source ("Pierre Curie" for "Marie Curie");
    # a source name is kept when ANY word survives ("Marie Curie" -> "Curie")
    labels = {fold(w) for w in labels}  # "JÓNSDÓTTIR:" labels the name "Jónsdóttir"
    added = _distinct(_unmatched(ra, sa, labels, need_all=True), labels)
    missing = _distinct(_unmatched(sa, ra, labels, need_all=False), labels)
    missing = [m for m in missing if m not in _narrator(missing, sa, ra, labels)]
    return [Feature("ent_added", min(len(added), 3), f"not in source: {', '.join(added[:3])}"),
            Feature("ent_missing", min(len(missing), 3), f"missing in rewrite: {', '.join(missing[:3])}")]


# ---------------------------------------------------------------- negation
def _negative_prefix(t) -> bool:
    """"unaware", "unshared", "invisible", "insoluble", "non-toxic": an adjective (un-/non- also an adverb or
    participle) whose prefixed stem is itself an English word, which a rewrite may write as "not aware"."""
    m = re.match(r"(un|non-?|in|im|il|ir)(.+)", t.lower)
    if not m or len(m.group(2)) < 4 or len(t.lower) < 6:
        return False
    if m.group(1) in ("in", "im", "il", "ir") and t.pos != "ADJ":
        return False
    if t.pos == "VERB" and not t.lower.endswith(("ed", "en", "wn")):
        return False  # a reversative verb ("unboxing", "unlocks", "unveil"), not a participle ("unnoticed")
    return t.pos in ("ADJ", "ADV", "VERB") and _common(m.group(2))


#: "not until 1985" (= first in 1985), "not inspected since 2011" (= last in 2011), "cannot be deferred for more
#: than a year" (= a year at most), "not one but two": focus constructions that do not negate the claim (a flipped
#: bound is _direction_flips' to catch)
_FOCUS = re.compile(r"(?:\bnot\b|\bcannot\b|n't\b|\bnever\b|\bnobody\b|\bno one\b|\bun[a-z]{4,}ed\b)(?=[^.;]{0,40}(?:\buntil\b|"
                    r"\bsince\s+(?:the\s+)?(?:(?:early|late|mid)[\s-]*)?\d{4}s?\b|"
                    r"\b(?:more|longer|later|further|less|fewer|earlier)\s+than\b))|"
                    r"\bnot (?:one|just|merely|simply)\b[^.;]{0,60}\bbut\b", re.IGNORECASE)
#: one negation repeated over coordinated phrases states it once: "no leaves, no stems and no roots", "without a
#: doctorate, and without a medical degree", "Nobody knows - and nobody knows the date either" (each repeat here)
_REPEATED = re.compile(r"\b(no|not|never|without|nobody|none|nothing)\b(?=[^.;:?!]{1,40}?(?:,|\band\b|\bor\b|\s-\s)"
                       r"\s*(?:and\s+|or\s+|but\s+)?\1\b)", re.IGNORECASE)
#: "... can't either": the negation of the sentence before, continued ("animals can't. fungi can't either.")
_EITHER = re.compile(r"(?:\b(?:not|never|no|nor)\b|n't\b)[^.;?!]*(?<!of )(?<!for )(?<!to )(?<!with )\beither\s*[.!]?\s*$",
                     re.IGNORECASE)
#: a bare "No." answering a yes/no question denies the question's claim ("Did Watt invent it? | Back: No.")
_BARE_NO = re.compile(r"^(?:[\W_]|\b[A-Za-z]+:)*\s*(?:no|nope|no way)\s*[.!]*\s*$", re.IGNORECASE)
#: an answer that affirms the question, negation included ("So it never rusts? That's right.")
_AFFIRM = re.compile(r"^\W*(?:yes|yeah|yep|right|that's right|correct|exactly|indeed|true|sure)\b", re.IGNORECASE)
#: a yes/no question states no claim; its answer carries the polarity ("So it never rusts? Not quite. ...")
_YES_NO = re.compile(r"^(?P<q>(?!\W*(?:why|how|what|who|whom|whose|when|where|which)\b)[^?]*\?)\s*(?=\S)",
                     re.IGNORECASE)
#: contrast that rewrites use for "X, not Y" and back
_CONTRAST = re.compile(r"\b(?:rather than|instead of|as opposed to|unlike|in place of|contrary to|far from)\b",
                       re.IGNORECASE)
#: verbs, adjectives and adverbs whose meaning holds a negation ("refused" = "would not", "absent" = "not present")
_IMPLICIT = frozenset({"refuse", "reject", "deny", "decline", "lack", "avoid", "prevent", "poorly", "beyond", "myth", "false",
                       "zero", "against", "optional",
                       "miss", "cease", "forbid", "ban", "prohibit", "exclude", "except", "skip", "impossible",
                       "neglect", "omit", "barely", "hardly", "rarely", "seldom", "barred", "delay", "overdue"})
#: "ran late", "was late" (= not on time); not "the late 1990s" (a modifier)
_LATE = frozenset({"late", "later", "behind"})
#: privative words: "toothless" = "has no teeth", "nail-free" = "no nails", "free of lead"
_PRIVATIVE = re.compile(r"\b(?!(?:unless|nevertheless|nonetheless|regardless|countless|doubtless|bless)\b)"
                        r"[a-z]{3,}less\b|\b[^\W\d_]+-free\b|\bfree (?:of|from)\b", re.IGNORECASE)
#: exclusive negation ("no other metal", "nothing else") and the exclusives that say the same ("only", "alone")
_EXCL_NEG = re.compile(r"\b(?:no other|no second|nothing else|nobody else|no one else|none other|no[- ]one but|not [^.;]{0,30}"
                       r"\b(?:anyone|anything|any other) else|without (?:any )?(?:outside )?(?:help|assistance|aid)|"
                       # "nobody had advanced it since Euclid" = "the first advance since Euclid"
                       r"(?:nobody|no one|nothing|never|none)\b[^.;:]{0,50}\b(?:since|before (?:him|her|them|that|then)))\b",
                       re.IGNORECASE)
_EXCLUSIVE = re.compile(r"\b(?:only|exclusively|solely|alone|sole|on (?:its|his|her|their) own|unshared|single)\b",
                        re.IGNORECASE)


@dataclass(frozen=True)
class Polarity:
    """Negation of one sentence: `clausal` negations of its claim (what a flip adds or removes), and the softer
    signals a faithful rewording may carry instead of one: contrast ("rather than"), a negation scoped to one
    constituent ("marine plankton, not land plants"), a lexically negative word ("refused", "poorly"), an
    exclusive ("only", or a superlative, for "no other")."""
    clausal: int
    soft: bool
    exclusive_neg: bool
    exclusive: bool

    def matches(self, other: "Polarity") -> bool:
        """Whether `other` can state the negation this sentence states."""
        if self.clausal and (other.clausal or other.soft or other.exclusive_neg):
            return True
        return self.exclusive_neg and (other.exclusive or other.exclusive_neg or other.clausal > 0)

    @property
    def negated(self) -> bool:
        return bool(self.clausal or self.exclusive_neg)


def _neg_arc(t) -> bool:
    """spaCy's `neg` arc on a word that can negate: its parser also puts it on stray tokens ("cost ≈ £10 m")."""
    return t.dep == "neg" and t.pos not in ("NUM", "SYM", "PUNCT", "NOUN", "PROPN", "X")


def _constituent(a: Analysis, k: int) -> bool:
    """A "not"/"never" scoped to a noun phrase or an adverbial ("X, not Y"; "not everyone"), not to the verb."""
    t = a.tokens[k]
    if t.lower not in ("not", "never") or not 0 <= t.head < len(a.tokens):
        return False
    return a.tokens[t.head].pos in ("NOUN", "PROPN", "PRON", "NUM", "ADP", "DET")


def _question_sents(a: Analysis, text: str) -> set[int]:
    """Sentence indices (spaCy's, within `a`) of a leading yes/no question answered in the same unit
    (text.merge_questions joins them): "Did it work perfectly? No. ..." -> {0}."""
    m = _YES_NO.match(text)
    if not m or _AFFIRM.match(text[m.end():]):
        return set()
    out = set()
    for t in a.tokens:
        if t.pos != "SPACE":
            out.add(t.sent)
        if t.text == "?":
            return out
    return set()


def _polarity(a: Analysis, text: str) -> Polarity:
    """Negation markers of one sentence. "neither ... nor" is one negation, and a question's short answer
    ("No, ...", "Not quite") is not counted: the claim after it carries the polarity."""
    question = _question_sents(a, text)
    bare_no = False
    if question:  # the regex cues below read the answer only
        text = text[_YES_NO.match(text).end():]
        bare_no = bool(_BARE_NO.match(text))
    count = -len(_NOT_NEGATION.findall(text)) - len(_FOCUS.findall(text))
    repeated = len(_REPEATED.findall(text))
    count -= repeated or (1 if _EITHER.search(text) else 0)
    excl_neg = bool(_EXCL_NEG.search(text))
    count -= len(_EXCL_NEG.findall(text))
    soft = bool(_CONTRAST.search(text) or _PRIVATIVE.search(text))
    lowers = [t.lower for t in a.tokens]
    words = [k for k, t in enumerate(a.tokens) if t.pos != "SPACE"]  # "No  -  it is" has space tokens
    prev_of = {k: (lowers[words[n - 1]] if n else "") for n, k in enumerate(words)}
    next_of = {k: (lowers[words[n + 1]] if n + 1 < len(words) else "") for n, k in enumerate(words)}
    for k, t in enumerate(a.tokens):
        if t.pos == "SPACE" or t.sent in question:
            continue
        if t.lower == "nor" and "neither" in lowers:
            continue
        if t.lower in ("no", "no.") and (t.text.endswith(".") or next_of[k] == ".") and \
                _NUMERO.match(" ".join(lowers[k:k + 3]).replace(" .", ".")):
            continue  # "oxygen tank No. 2": the numero sign
        if t.lower == "no" and (t.pos == "INTJ" or t.dep == "intj"):
            continue  # "No.", "before you ask: no, ...": an answer; the claim after it carries the polarity
        if t.lower in ("no", "not") and prev_of[k] in ("", "?", '"', "'") \
                and next_of[k] in (",", ".", "!", ";", ":", "-", "quite", "really", "exactly"):
            continue
        if t.lemma in _IMPLICIT or t.lower in _IMPLICIT or \
                (t.lower in _LATE and t.dep in ("acomp", "advmod") and t.head != k and
                 0 <= t.head < len(a.tokens) and a.tokens[t.head].pos in ("VERB", "AUX")):
            soft = True
            continue
        prefixed = _negative_prefix(t) and not (t.pos == "VERB" and any(
            x.head == k and x.dep == "dobj" for x in a.tokens))  # "soldiers uncovered it": a reversative verb
        if prefixed and _EXCLUSIVE.fullmatch(t.lower):
            continue  # "unshared" = "on her own": an exclusive (read below), not a negation of the claim
        if _neg_arc(t) or t.lemma in _NEG_LEMMAS or t.lower in ("never", "no", "none", "without") or prefixed:
            if _constituent(a, k) or (prefixed and t.dep in ("amod", "compound")):
                soft = True  # "a thin, invisible layer", "an incorrect shape": a noun's attribute, not the claim
            else:
                count += 1
    exclusive = bool(_EXCLUSIVE.search(text)) or any(  # a superlative: "the highest of all" = "no other ... higher"
        t.lower in ("most", "least", "first", "last", "best", "worst") or
        (t.pos in ("ADJ", "ADV") and t.lower.endswith("est") and len(t.lower) > 4 and _common(t.lower[:-3]))
        for t in a.tokens)
    if bare_no:
        count = max(count, 0) + 1  # the answer alone states the negation
    return Polarity(max(count, 0), soft, excl_neg, exclusive)


#: a "tl;dr" line restates in short what the body of the rewrite states in full ("tl;dr: the landing never
#: happened" over "The crew abandoned the planned landing"): the body is the counterpart of the source
_TLDR = re.compile(r"^\W*tl\s*;?\s*dr\b", re.IGNORECASE)


def _without_titles(sim: np.ndarray | None, rw_sents: list[str], titles: set[str]) -> np.ndarray | None:
    """The sentence similarities with the rewrite's title lines ("The Honeybee Waggle Dance", "DID YOU KNOW? The
    noble gases") and "tl;dr" summary lines made no counterpart of anything: a title states no claim, so it cannot
    drop a source negation, and a tl;dr line's claims are stated again in the body (see _TLDR)."""
    if sim is None or not sim.size or not (titles or any(_TLDR.match(x) for x in rw_sents)):
        return sim
    cols = [j for j, x in enumerate(rw_sents) if x.strip() in titles or re.sub(r"^[^?]*\?\s*", "", x.strip()) in titles
            or _TLDR.match(x)]
    if not cols or len(cols) == len(rw_sents):
        return sim
    sim = sim.copy()
    sim[:, cols] = -1.0
    return sim


#: "not for navigation but for geomancy": a negation that contrasts an adjunct, the predicate stays affirmed
_NOT_BUT = re.compile(r"(?:\bnot\b|n't\b)[^.;:]{0,60}\bbut\b", re.IGNORECASE)


def _contrastive(a: Analysis, text: str) -> bool:
    """Whether the sentence's clausal negations only contrast: "not for navigation but for geomancy", or each
    after a comma ("took nine years to finish, not the three he had promised")."""
    negs = [k for k, t in enumerate(a.tokens) if _neg_arc(t) or t.lower == "never"]
    return bool(_NOT_BUT.search(text)) or bool(negs) and all(
        k > 0 and a.tokens[k - 1].text in (",", "-", "\u2013", "\u2014") for k in negs)


def _negation_features(src_sents, rw_sents, sa, ra, sim) -> list[Feature]:
    """neg_parity: aligned groups whose clausal negation parity differs, where neither side words it softly.
    neg_unmatched: negated sentences whose best-aligned counterpart on the other side (that sentence and
    close-scoring neighbours) states no negation in any form — presence, not parity, so "No, she never did."
    answering a question does not cancel out; its value is the similarity of the closest such pair (a flipped
    claim keeps the rest of its sentence, a reworded negation seldom does).
    neg_flip: such negated sentences whose counterpart states the very predicate negated ("isn't the world's
    longest tunnel" against "is the world's longest tunnel"); a reworded negation seldom keeps the predicate
    ("did not last" ~ "was short-lived"), so this separates flips from rewordings better than polarity alone."""
    parity, where_p = 0, ""
    unmatched, where_u = 0.0, ""
    flips, where_f = 0, ""
    if sim is not None and sim.size:
        sp = [_polarity(a, s) for a, s in zip(sa, src_sents)]
        rp = [_polarity(a, s) for a, s in zip(ra, rw_sents)]
        for s_idx, r_idx in align_groups(sim, ALIGN_MIN_SIM):
            group = [sp[i] for i in s_idx] + [rp[j] for j in r_idx]
            if any(p.soft or p.exclusive_neg for p in group):
                continue
            if sum(sp[i].clausal for i in s_idx) % 2 != sum(rp[j].clausal for j in r_idx) % 2:
                parity += 1
                where_p = where_p or f"source {_short(src_sents[s_idx[0]])!r} vs rewrite {_short(rw_sents[r_idx[0]])!r}"
        for score, side, i, j, window, soft in _unmatched_negations(sim, sp, rp):
            mine, theirs, texts = (sa, ra, (src_sents[i], rw_sents[j])) if side == "source sentence" else \
                (ra, sa, (rw_sents[i], src_sents[j]))
            # the closest pair counts: a flip leaves the rest of the sentence as it was
            if score > unmatched and not soft:
                unmatched = score
                where_u = f"{side} {_short(texts[0])!r} is negated, its counterpart {_short(texts[1])!r} is not"
            if soft and _contrastive(mine[i], texts[0]):
                continue  # "weren't killed by the eruption but by tsunamis": the negation is the adjunct's
            preds = _negated_predicates(mine[i])
            their_texts = rw_sents if side == "source sentence" else src_sents
            if preds and any(_affirms(theirs[k], preds, mine[i], their_texts[k]) for k in window):
                flips += 1
                where_f = where_f or f"{_short(texts[0])!r} negates what {_short(texts[1])!r} states"
            elif not soft and (nominal := _nominal_predicates(mine[i])) and \
                    any(_affirms_existence(theirs[k], nominal, their_texts[k]) for k in window):
                flips += 1
                where_f = where_f or f"{_short(texts[0])!r} denies what {_short(texts[1])!r} states"
    src_text, rw_text = " ".join(src_sents), " ".join(rw_sents)
    for what in _direction_flips(src_text, rw_text) + _contrast_swaps(src_text, rw_text):
        flips += 1
        where_f = where_f or what
    return [Feature("neg_parity", min(parity, 3), f"negation differs: {where_p}"),
            Feature("neg_unmatched", unmatched, where_u), Feature("neg_flip", min(flips, 3), where_f)]


#: the direction of a bound or a share: "more than 150,000" against "fewer than 150,000", "under a minute"
#: against "more than a minute", "most of the islanders" against "few of the islanders"
_BOUND = re.compile(r"(?<![\w-])(?:(?P<down>no more than|not more than|fewer than|less than|under|below|at most|"
                    r"up to|shorter than|few|a minority of)|(?P<up>more than|over|above|at least|exceeding|upwards of|"
                    r"greater than|longer than|most|many|the majority of))\s+(?:of\s+)?(?:the\s+|its\s+|their\s+)?"
                    r"(?:a\s+|an\s+|one\s+)?(?P<what>[^\W_][\w,.]*)", re.IGNORECASE)
#: "X rather than Y": the contrasted pair, which a flip swaps ("mechanical rather than electronic")
_RATHER = re.compile(r"\b(?:rather than|instead of|as opposed to)\b", re.IGNORECASE)


def _bounds(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m in _BOUND.finditer(text):
        if m.group("down") and m.group("down").lower() == "few" and re.search(r"\ba\s+$", text[:m.start()], re.I):
            continue  # "a few" is some, not few
        what = fold(m.group("what").rstrip(".,")).replace(",", "")
        down = bool(m.group("down"))
        reach = "{0,3}" if m.group(0).lower().split()[1:2] == ["than"] else "?"  # (not "did not chime for most of")
        if re.search(r"(?:\b(?:not|never|no|cannot)|n't)(?:\s+\w+)" + reach + r"\s*$", text[max(0, m.start() - 40):m.start()],
                     re.I):
            down = not down  # "no fewer than 140", "may not drop below 15%", "cannot be deferred for more than": negated
        out.setdefault(what, set()).add("down" if down else "up")
    return out


def _direction_flips(src_text: str, rw_text: str) -> list[str]:
    """The bounded things each side states in one direction only, and the other side in the opposite one."""
    src, rw = _bounds(src_text), _bounds(rw_text)
    return [f"source bounds {w!r} {next(iter(src[w]))}, the rewrite {next(iter(rw[w]))}" for w in sorted(src.keys() & rw.keys())
            if len(src[w]) == 1 and len(rw[w]) == 1 and src[w] != rw[w]]


def _contrast_words(text: str) -> list[tuple[set[str], set[str]]]:
    """(content words just before, just after) each "rather than" of the text."""
    out = []
    for m in _RATHER.finditer(text):
        before = re.findall(r"[^\W\d_]{3,}", text[max(0, m.start() - 60):m.start()])[-4:]
        after = re.findall(r"[^\W\d_]{3,}", text[m.end():m.end() + 60])[:4]
        out.append(({fold(w) for w in before} - _CONTRAST_STOP, {fold(w) for w in after} - _CONTRAST_STOP))
    return out


_CONTRAST_STOP = frozenset("the and but than that this with from for are was were been being its their his her "
                           "by".split())


def _contrast_swaps(src_text: str, rw_text: str) -> list[str]:
    """Contrasted pairs the rewrite swaps: what the source puts after "rather than" the rewrite puts before it,
    and not after ("mechanical rather than electronic" against "electronic rather than mechanical")."""
    rw = _contrast_words(rw_text)
    out = []
    for before, after in _contrast_words(src_text):
        for r_before, r_after in rw:
            swapped = (after & r_before) - r_after
            if swapped and (before & r_after) - r_before:
                out.append(f"the rewrite swaps the contrast: {sorted(swapped)[0]!r} now comes first")
    return out


_LIGHT = frozenset({"be", "have", "do", "get", "make", "there"})
#: a predicate's class: a verb is affirmed by a verb ("never sent" / "sent"), not by a noun ("never returned" /
#: "requests for its return") or a modifier ("is not mounted" / "the mounted skeleton")
_CLASS = {"VERB": "v", "AUX": "v", "ADJ": "a", "NOUN": "n", "PROPN": "n"}
_MODIFIER = frozenset({"amod", "compound", "acl", "nmod", "poss", "npadvmod", "nn"})
#: a clause under one of these states a belief or a question, not a fact ("many think soap strips it")
_BELIEF = frozenset({"think", "believe", "assume", "suppose", "imagine", "claim", "fear", "wonder", "ask", "myth",
                     "misconception", "belief", "expect", "rumour", "rumor"})
#: where a clause's claim is told as a story, not stated as a fact ("in the movies", "according to legend")
_FICTION = frozenset({"movie", "film", "fiction", "legend", "myth", "folklore", "cartoon", "story", "tale", "novel",
                      "hollywood", "imagination", "lore"})
#: prepositions that set another subject against the sentence's own ("Unlike lions, cheetahs cannot roar")
_AGAINST = frozenset({"unlike", "contrary", "opposed", "rather", "instead"})


#: verbs a rewrite swaps for each other, so that "is not permitted" is flipped by "is allowed" as by "is permitted"
#: (a reworded negation swaps the predicate for its opposite instead: "is forbidden", "was short-lived")
_SAME_VERB = [frozenset(g.split()) for g in ("allow permit let authorise authorize", "need require",
                                            "begin start commence", "build construct erect", "show exhibit display", "buy purchase",
                                            "finish complete conclude", "show reveal demonstrate", "use employ",
                                            "receive obtain", "attend visit", "survive outlive")]


def _with_synonyms(preds: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return preds | {(w, c) for p, c in preds if c == "v" for g in _SAME_VERB if p in g for w in g}


#: verbs of obligation and permission: what they do not require or allow is their complement's act
_DEONTIC = frozenset({"require", "need", "oblige", "force", "compel", "allow", "permit"})


def _negated_predicates(a: Analysis) -> set[tuple[str, str]]:
    """(folded lemma, class) of what a clausal negation negates: the head of a `neg` arc or "never" ("sent" in
    "Britain never sent frigates"), or, for a copula or light verb, its complement ("longest", "tunnel" in "it
    isn't the longest tunnel")."""
    out = set()
    for t in a.tokens:
        if not (_neg_arc(t) or t.lower == "never") or not 0 <= t.head < len(a.tokens):
            continue
        h = a.tokens[t.head]
        if h.lemma not in _LIGHT and h.pos in ("VERB", "ADJ", "NOUN", "PROPN"):
            out.add((fold(h.lemma), _CLASS[h.pos]))
            if h.lemma in _DEONTIC:  # "are not required to hold a degree" against "must hold a degree"
                out.update((fold(x.lemma), "v") for x in a.tokens if x.head == t.head and x.dep == "xcomp" and
                           x.pos == "VERB")
        else:
            out.update((fold(x.lemma), _CLASS[x.pos]) for x in a.tokens if x.head == t.head and x is not h and
                       x.dep in ("attr", "acomp", "xcomp", "dobj", "oprd") and x.pos in ("VERB", "ADJ", "NOUN", "PROPN"))
    return _with_synonyms({(w, c) for w, c in out if w.isalpha() and w not in _LIGHT})


#: a sentence that quantifies over everything or ranks ("every British ship came through", "the fastest land
#: animal") rewords "no N ..." without a negation; it is no positive counterpart of one
_UNIVERSAL = re.compile(r"\b(?:every|each|all|any|only|just|minimum|first)\b", re.IGNORECASE)


#: a subject that counts some ("Several were injured" against "none ... was injured")
_SOME = frozenset({"several", "some", "many", "most", "dozens", "hundreds", "thousands"})
#: verbs whose object is had "with": "using supplementary oxygen" against "without supplementary oxygen"
_WITH_VERBS = frozenset({"use", "employ", "include", "carry", "need", "require", "add"})


def _nominal_negations(a: Analysis) -> list[tuple[int, int]]:
    """(negator, negated noun) token pairs of a nominal negation: "no" as a noun's determiner ("has no moons",
    "No bridge crosses"), "without" with its object ("without mortar"), and a negative pronoun as a subject, its
    own noun ("none of the rescuers was injured", "nobody was hurt")."""
    out = []
    for k, t in enumerate(a.tokens):
        if t.lower in ("none", "nobody", "nothing") and t.dep in ("nsubj", "nsubjpass"):
            out.append((k, k))
        elif t.lower == "no" and t.dep == "det" and 0 <= t.head < len(a.tokens) and a.tokens[t.head].pos == "NOUN":
            out.append((k, t.head))
        elif t.lower == "without" and t.dep == "prep":
            out += [(k, c) for c, x in enumerate(a.tokens) if x.head == k and c != k and x.dep == "pobj" and
                    x.pos == "NOUN"]
    return out


def _nominal_predicates(a: Analysis) -> set[tuple[str, str]]:
    """What a nominal negation denies, as (kind, folded lemma): ("exist", "moon") for "Venus has no moons" or
    "there was no leap day" (the object of have/be), ("with", "mortar") for "laid without mortar", ("verb",
    "cross") for "No bridge crosses the Amazon" (the verb of a "no N" subject)."""
    out = set()
    for k, n in _nominal_negations(a):
        noun = a.tokens[n]
        head = a.tokens[noun.head] if 0 <= noun.head < len(a.tokens) else None
        if a.tokens[k].lower == "without":
            out.add(("with", fold(noun.lemma)))
        elif head is not None and noun.dep in ("dobj", "attr") and head.lemma in ("have", "be"):
            out.add(("exist", fold(noun.lemma)))
        elif head is not None and noun.dep in ("nsubj", "nsubjpass") and head.pos == "VERB" and \
                head.lemma not in _LIGHT:
            out.add(("verb", fold(head.lemma)))
    return out


def _affirms_existence(a: Analysis, preds: set[tuple[str, str]], text: str) -> bool:
    """Whether the sentence states, positively and with a count or an indefinite article, what `preds`
    (_nominal_predicates) deny: "Venus has two moons", "It has a solid surface", "levies a VAT" (an object),
    "with mortar", "A bridge crosses the Amazon" (the verb, of a counted or indefinite subject). A universal or
    ranking sentence rewords the denial instead ("No animal on land is faster" = "the fastest land animal"); "using
    oxygen" states what "without oxygen" denies, "Several were injured" what "none ... was injured" does."""
    universal = _UNIVERSAL.search(text) or any(t.pos in ("ADJ", "ADV") and t.lower.endswith("est") and
                                               len(t.lower) > 4 and _common(t.lower[:-3]) for t in a.tokens)
    negated = {n for _, n in _nominal_negations(a)} | {t.head for t in a.tokens if _neg_arc(t) or t.lower == "never"}
    counted = {x.head for x in a.tokens if x.dep == "nummod" or (x.dep in ("det", "amod") and x.lower in _SOME) or
               (x.dep == "det" and x.lower in ("a", "an"))}
    counted |= {i for i, x in enumerate(a.tokens) if x.pos == "NUM" or x.lower in _SOME}
    for k, t in enumerate(a.tokens):
        if k in negated or t.head in negated or not 0 <= t.head < len(a.tokens) or _denied(a, k):
            continue
        lemma = fold(t.lemma)
        if t.pos == "NOUN" and ("with", lemma) in preds and not re.search(r"\bonly\b", text, re.I) and (
                (t.dep == "pobj" and a.tokens[t.head].lower == "with") or
                (t.dep == "dobj" and a.tokens[t.head].lemma in _WITH_VERBS)) and \
                not any(x.head == k and x.dep == "acl" for x in a.tokens):  # ("with the draw boy dispensed with")
            return True
        if universal:
            continue
        if t.pos == "NOUN" and t.dep in ("dobj", "attr") and ("exist", lemma) in preds and k in counted:
            return True
        if t.pos == "VERB" and ("verb", lemma) in preds and t.dep not in _MODIFIER and any(
                x.head == k and x.dep in ("nsubj", "nsubjpass") and i in counted for i, x in enumerate(a.tokens)):
            return True
    return False


def _subject_names(a: Analysis, k: int, nouns: bool = False) -> set[str]:
    """Folded proper names of the subject of token k's clause (walking up the heads to the first clause with a
    subject): {"florey", "chain"} for "purify" in "Florey and Chain developed a way to produce and purify it".
    With `nouns`, the subject's common nouns too ({"cheetah"} in "cheetahs cannot roar")."""
    seen = set()
    while 0 <= k < len(a.tokens) and k not in seen:
        seen.add(k)
        subj = [i for i, t in enumerate(a.tokens) if t.head == k and i != k and t.dep in ("nsubj", "nsubjpass")]
        if subj:
            todo, names = list(subj), set()
            while todo:  # the subject, its conjuncts and compounds ("Howard Florey and Ernst Chain")
                i = todo.pop()
                t = a.tokens[i]  # spaCy may tag a sentence-initial name a NOUN ("Fleming could not ...")
                if t.pos == "PROPN" or (t.text[:1].isupper() and t.text[1:].islower() and not _common(t.text)):
                    names.add(fold(t.text))
                elif nouns and t.pos == "NOUN":
                    names.add(fold(t.lemma))
                todo += [c for c, t in enumerate(a.tokens) if t.head == i and c != i and (
                    t.dep in ("conj", "compound") or (t.dep == "amod" and t.text[:1].isupper()))]  # "Viking traders"
            return names
        k = a.tokens[k].head
    return set()


def _negated_subjects(a: Analysis, nouns: bool = False, objects: bool = False) -> set[str]:
    """Proper-name subjects of the sentence's negated predicates ("Fleming" in "Fleming could not purify it");
    with `nouns`, common-noun subjects too. With `objects`, their objects and the subjects of the clauses they
    govern instead, which the passive makes the subject of the same claim ("did not allow seeds to leave" =
    "seeds were not permitted to leave"). Plurals are folded to the singular ("Ottomans", "Ottoman miners")."""
    out = set()
    for t in a.tokens:
        if not (_neg_arc(t) or t.lower == "never"):
            continue
        if not objects:
            out |= _subject_names(a, t.head, nouns)
            continue
        for c, x in enumerate(a.tokens):
            if x.head != t.head or c == t.head:
                continue
            if x.dep == "dobj" and (x.pos == "PROPN" or (nouns and x.pos == "NOUN")):
                out.add(fold(x.text if x.pos == "PROPN" else x.lemma))
            elif x.dep in ("xcomp", "ccomp") and any(y.head == c and i != c and y.dep == "nsubj"
                                                     for i, y in enumerate(a.tokens)):
                out |= _subject_names(a, c, nouns)
    return {_singular(n) for n in out}


def _singular(name: str) -> str:
    return name[:-1] if len(name) > 4 and name.endswith("s") and not name.endswith("ss") else name


def _subtree(a: Analysis, k: int) -> set[int]:
    """Token k and every token below it."""
    out, todo = {k}, [k]
    while todo:
        h = todo.pop()
        for c, t in enumerate(a.tokens):
            if t.head == h and c not in out:
                out.add(c)
                todo.append(c)
    return out


def _negated_arg_names(a: Analysis) -> set[str]:
    """Folded proper names among the objects and adjuncts of the sentence's negated predicates (their subjects
    left out): {"cornell"} for "he didn't launch it from Cornell"."""
    out = set()
    for t in a.tokens:
        if not (_neg_arc(t) or t.lower == "never") or not 0 <= t.head < len(a.tokens):
            continue
        out |= {fold(a.tokens[i].text) for i in _below_subject(a, t.head) if a.tokens[i].pos == "PROPN"}
    return out


def _below_subject(a: Analysis, h: int) -> set[int]:
    """The subtree of predicate h without its subject's."""
    subj = {i for c, x in enumerate(a.tokens) if x.head == h and c != h and x.dep in ("nsubj", "nsubjpass")
            for i in _subtree(a, c)}
    return _subtree(a, h) - subj


def _contrasted(a: Analysis) -> set[str]:
    """Folded nouns set against the sentence's subject: {"lion", "tiger"} in "Unlike lions and tigers, cheetahs
    cannot roar"."""
    heads = {k for k, t in enumerate(a.tokens) if t.lower in _AGAINST}
    out, todo = set(), [k for k, t in enumerate(a.tokens) if t.head in heads and t.dep in ("pobj", "prep", "pcomp")]
    while todo:
        k = todo.pop()
        t = a.tokens[k]
        if t.pos in ("NOUN", "PROPN"):
            out.add(fold(t.lemma))
        todo += [c for c, x in enumerate(a.tokens) if x.head == k and c != k and x.dep in ("pobj", "conj")]
    return out


def _in_belief(a: Analysis, k: int) -> bool:
    """Whether token k sits in a clause under a belief or question verb ("people think it strips ...") or one set
    in fiction ("In the movies, one fire sets off every sprinkler", "according to legend, ...")."""
    for _ in range(4):
        if _in_fiction(a, k):
            return True
        h = a.tokens[k].head
        if not 0 <= h < len(a.tokens) or h == k:
            return False
        if a.tokens[h].lemma in _BELIEF:
            return True
        k = h
    return False


def _in_fiction(a: Analysis, k: int) -> bool:
    """Token k heads a clause with an "in the movies" / "according to legend" adjunct."""
    for c, t in enumerate(a.tokens):
        if t.head != k or c == k or t.dep != "prep" or t.lower not in ("in", "according"):
            continue
        below = [x for x in a.tokens if x.head == c] + \
            [y for i, x in enumerate(a.tokens) if x.head == c and i != c for y in a.tokens if y.head == i]
        if any(x.dep == "pobj" and x.lemma in _FICTION for x in below):
            return True
    return False


#: "rather than being an insurance company", "instead of fading": the phrase after it is what the claim is not
_DENIED_AFTER = (("rather", "than"), ("instead", "of"), ("opposed", "to"), ("place", "of"))


def _denied(a: Analysis, k: int) -> bool:
    """Whether token k is stated as not the case although no `neg` arc says so: it follows "rather than" (within
    its phrase), sits in a question before its "?" ("Who is counted as unemployed? Only ...") that no "Yes" answers,
    or depends on a word whose meaning holds the negation ("refused to admit", "warns against mixing", "regenerates
    poorly")."""
    sent = a.tokens[k].sent
    for i in range(k - 1, max(-1, k - 6), -1):
        t = a.tokens[i]
        if t.sent != sent or t.pos == "PUNCT":
            break
        if i > 0 and (a.tokens[i - 1].lower, t.lower) in _DENIED_AFTER:
            return True
    q = next((i for i in range(k + 1, len(a.tokens)) if a.tokens[i].text == "?" and a.tokens[i].sent == sent), None)
    if q is not None:
        answer = next((t.lower for t in a.tokens[q + 1:] if t.pos not in ("PUNCT", "SPACE")), "")
        if not _AFFIRM.match(answer):  # "Was it the first? Yes - ..." affirms what it asks
            return True
    h = a.tokens[k].head
    if any(x.head == k and x.lower in _IMPLICIT for x in a.tokens) or (  # "carrying it is optional"
            a.tokens[k].dep in ("csubj", "csubjpass") and any(x.head == h and x.dep in ("acomp", "attr") and
                                                               x.lower in _IMPLICIT for x in a.tokens)):
        return True
    h = k
    for _ in range(2):
        h = a.tokens[h].head
        if not 0 <= h < len(a.tokens) or a.tokens[h].sent != sent:
            break
        if a.tokens[h].lemma in _IMPLICIT or a.tokens[h].lower in _IMPLICIT:
            return True
    return False


def _affirms(a: Analysis, preds: set[tuple[str, str]], negated: Analysis, text: str = "") -> bool:
    """Whether the sentence states one of `preds` (lemma and class) as a fact, without a negation on it, of a
    compatible subject: when both subjects are proper names they share one ("Fleming could not purify it" is no
    flip of "Florey and Chain purified it"), and so do common-noun subjects ("cheetahs cannot roar" against "lions
    roar"); a subject the negated sentence sets against its own ("Unlike lions, ...") is never compatible. A
    leading yes/no question (`text` is the sentence) states nothing: "Has it ever been moved? No - ..." asks."""
    question = _question_sents(a, text) if text else set()
    negated_heads = {t.head for t in a.tokens if _neg_arc(t) or t.lower == "never"}
    names, nouns, against = _negated_subjects(negated), _negated_subjects(negated, True), _contrasted(negated)
    passive = _negated_subjects(negated, True, objects=True)
    named_args = _negated_arg_names(negated)
    for k, t in enumerate(a.tokens):
        if (fold(t.lemma), _CLASS.get(t.pos)) not in preds or k in negated_heads or t.head in negated_heads \
                or t.sent in question:
            continue
        if t.dep in _MODIFIER or _in_belief(a, k) or _denied(a, k):
            continue
        if any(x.lower == "only" and 0 <= x.head < len(a.tokens) and a.tokens[x.head].head in (k, t.head) and
               a.tokens[x.head].dep in ("nsubj", "nsubjpass") for x in a.tokens):
            continue  # "Only members are allowed" restates "Non-members are not permitted", an exclusion
        if _CLASS.get(t.pos) == "n" and t.dep in ("nsubj", "nsubjpass", "pobj"):
            continue  # "(in 2012) chicks hatched in the wild" names chicks, it does not state "she had chicks"
        if _CLASS.get(t.pos) == "n" and t.dep == "dobj" and a.tokens[t.head].lemma not in _LIGHT:
            continue  # "are not free sugars" (a class) against "free sugars include sugars added to foods"
        if named_args and not named_args <= {fold(a.tokens[i].text) for i in _below_subject(a, k)}:
            continue  # "didn't launch it from Cornell" against "launched it from MIT": the adjunct, not the act
        theirs = {_singular(n) for n in _subject_names(a, k, True)}
        if theirs & {_singular(n) for n in against}:
            continue
        if names and (named := {_singular(n) for n in _subject_names(a, k)}) and not named & (names | passive):
            continue
        if nouns and theirs and not theirs & (nouns | passive):
            continue
        return True
    return False


def _unmatched_negations(sim, sp, rp):
    """(similarity, side, i, j, window, soft) for each negated sentence i of `side` whose aligned window on the
    other side states no negation (Polarity.matches); j is its best match, the window that and its neighbours
    scoring at least 80% of it. With `soft`, the window states one only in a soft form ("rather than", "refused"):
    no unmatched negation, but a flip still if it states the negated predicate outright ("It was not a democratic
    document" against "Yes, it was a democratic document, ... rather than for ordinary people")."""
    for side, pols, other, mat in (("source sentence", sp, rp, sim), ("rewrite sentence", rp, sp, sim.T)):
        for i, pol in enumerate(pols):
            if not pol.negated:
                continue
            j = int(mat[i].argmax())
            if mat[i, j] < ALIGN_MIN_SIM:
                continue  # no counterpart at all: the omission/addition features speak for it
            window = [k for k in (j - 1, j, j + 1) if 0 <= k < len(other) and mat[i, k] >= 0.8 * mat[i, j]]
            if not any(pol.matches(other[k]) for k in window):
                yield float(mat[i, j]), side, i, j, window, False
            elif pol.clausal and not any(other[k].clausal or other[k].exclusive_neg for k in window):
                yield float(mat[i, j]), side, i, j, window, True  # matched by a soft word only ("rather than")


# ---------------------------------------------------------------- similarity and lexical coverage
def _similarity_features(src_sents, rw_sents, claims, src_best, rw_best) -> list[Feature]:
    sup, cov = 0.0, 0.0
    sup_d = cov_d = ""
    if rw_best is not None and claims:
        j = min(claims, key=lambda k: rw_best[k])
        sup, sup_d = 1.0 - float(rw_best[j]), f"rewrite sentence {j + 1} unsupported: {_short(rw_sents[j])!r}"
    if src_best is not None and len(src_best):
        i = int(np.argmin(src_best))
        cov, cov_d = 1.0 - float(src_best[i]), f"source sentence {i + 1} not covered: {_short(src_sents[i])!r}"
    return [Feature("support_gap", sup, sup_d), Feature("coverage_gap", cov, cov_d)]


def _lexical_features(src_sents, rw_sents, sa, ra, claims) -> list[Feature]:
    src_lem = {fold(x) for a in sa for x in a.lemmas()} | {fold(t.text) for a in sa for t in a.tokens}
    rw_lem = {fold(x) for a in ra for x in a.lemmas()} | {fold(t.text) for a in ra for t in a.tokens}
    novel, novel_d = 0, ""
    for j in claims:
        new = sorted({fold(x) for x in ra[j].lemmas(_CONTENT)} - src_lem)
        if len(new) > novel:
            novel, novel_d = len(new), f"rewrite sentence {j + 1} adds {', '.join(new[:5])}"
    lost, lost_d = 0.0, ""
    for i, a in enumerate(sa):
        content = {fold(x) for x in a.lemmas(_CONTENT)}
        if len(content) >= 3:
            gone = sorted(content - rw_lem)
            share = len(gone) / len(content)
            if share > lost:
                lost, lost_d = share, f"source sentence {i + 1} loses {', '.join(gone[:5])}"
    return [Feature("novel_lemmas", min(novel, 8), novel_d), Feature("lost_share", lost, lost_d)]
