"""A seeded world of fictional people the model cannot know in advance (Physics of Language Models 3.1 style).

Each person has six attributes: birth date, birth city, university, employer, field and hobby, drawn from pools
of invented names (cities, universities, companies are syllable compounds, so no pretrained prior and no
tokenizer shortcut helps). Out of one seed come, per person:
  - the RAW passage: one fixed sentence template per attribute, the full name in every sentence, sentences in a
    seeded order (the text the rephrase stage rewrites and the raw arm repeats);
  - CONTROL paraphrases: seeded compositions of other sentence templates, sentence orders and name/pronoun
    choices (TRAIN_TEMPLATES); a control arm only, never mixed with the LLM's data;
  - a HELD-OUT paraphrase from templates no training text uses (HELDOUT_TEMPLATES): the loss probe;
  - QA pairs: training questions (QA_TRAIN) for the `qa_train` people (they teach the Q/A format, as in the
    "mixed training" of Physics of LM 3.1) and eval questions in templates never used in training (QA_EVAL),
    asked about the other people only.
Values are unique per person where it matters for exact match: full names are unique; other attributes repeat
across people (pools are smaller than N), so `chance` in the report is the most frequent value's share.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

ATTRIBUTES = ("birth_date", "birth_city", "university", "employer", "field", "hobby")

_ON = ["ka", "lo", "mi", "ra", "ven", "tor", "sel", "dra", "qui", "bel", "mor", "zan", "fen", "ost", "lyr", "pav",
       "del", "cor", "thu", "ris", "gal", "nor", "ska", "wen"]
_CITY_END = ["ford", "by", "holm", "wick", "stead", "mouth", "vale", "ton", "burg", "mere"]
_FIRST = ["Orlan", "Mira", "Teo", "Anselm", "Brisa", "Calder", "Dovra", "Elsin", "Faro", "Galen", "Hessa", "Ivor",
          "Junia", "Kestrel", "Lioba", "Maren", "Nilo", "Oriel", "Pavla", "Quill", "Rosmer", "Sabin", "Tamsin",
          "Ulric", "Veda", "Wystan", "Ysolde", "Zorin", "Adair", "Bettany", "Cosmo", "Delphine", "Emrys", "Fenna"]
_FIELDS = ["marine geology", "glass chemistry", "soil ecology", "medieval law", "optical physics", "tax policy",
           "plant genetics", "urban planning", "seismology", "linguistics", "acoustics", "game theory",
           "paleobotany", "cryptography", "hydrology", "ceramics engineering"]
_HOBBIES = ["beekeeping", "rock climbing", "chess", "birdwatching", "pottery", "fencing", "sailing", "origami",
            "archery", "gardening", "juggling", "rowing", "calligraphy", "astronomy", "kayaking", "knitting"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_COMPANY_END = ["Systems", "Labs", "Works", "Analytics", "Foundry", "Dynamics", "Partners", "Instruments"]

#: the raw passage: exactly one sentence per attribute, full name every time
RAW_TEMPLATES = {
    "birth_date": "{name} was born on {value}.",
    "birth_city": "{name} grew up in the city of {value}.",
    "university": "{name} studied at {value}.",
    "employer": "{name} works for {value}.",
    "field": "{name} specialises in {value}.",
    "hobby": "{name} spends free time on {value}.",
}
#: control paraphrases draw from these ({who}: the full name or a pronoun-like reference)
TRAIN_TEMPLATES = {
    "birth_date": ["{who} came into the world on {value}.", "The birthday of {who} is {value}.",
                   "{who} was born on the date {value}.", "On {value}, {who} was born."],
    "birth_city": ["{who} is originally from {value}.", "{value} is the hometown of {who}.",
                   "{who} spent childhood in {value}.", "The home city of {who} was {value}."],
    "university": ["{who} graduated from {value}.", "{who} earned a degree at {value}.",
                   "{value} is where {who} was educated.", "{who} is an alumnus of {value}."],
    "employer": ["{who} is employed by {value}.", "{value} employs {who}.", "{who} has a job at {value}.",
                 "The employer of {who} is {value}."],
    "field": ["{who} is an expert in {value}.", "The research area of {who} is {value}.",
              "{who} does research in {value}.", "The discipline of {who} is {value}."],
    "hobby": ["{who} enjoys {value}.", "A favourite pastime of {who} is {value}.", "{who} likes {value} a lot.",
              "In spare hours {who} turns to {value}."],
}
#: the loss probe's paraphrase: wordings no training text uses
HELDOUT_TEMPLATES = {
    "birth_date": "The date of birth of {who} was {value}.",
    "birth_city": "{who} was raised in {value}.",
    "university": "{who} attended {value}.",
    "employer": "{who} currently holds a position at {value}.",
    "field": "{who} focuses on {value}.",
    "hobby": "{who} is devoted to {value}.",
}
#: Q/A format: "Q: ...\nA: value"; the answer is the value then a newline
QA_TRAIN = {
    "birth_date": "When was {name} born?", "birth_city": "Where did {name} grow up?",
    "university": "Which university did {name} study at?", "employer": "Who does {name} work for?",
    "field": "What does {name} specialise in?", "hobby": "What does {name} do in free time?",
}
QA_EVAL = {
    "birth_date": "On which date was {name} born?", "birth_city": "In which city did {name} grow up?",
    "university": "At which university did {name} study?", "employer": "Which company does {name} work for?",
    "field": "In what does {name} specialise?", "hobby": "On what does {name} spend free time?",
}
QA_FORMAT = "Q: {question}\nA:"


@dataclass
class Person:
    id: str
    name: str
    attrs: dict[str, str]
    qa_train: bool = False
    order: list[str] = field(default_factory=list)   # sentence order of the raw passage


def _pool(rng: random.Random, make, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        v = make()
        if v not in out:
            out.append(v)
    return out


def _word(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_ON) for _ in range(parts)).capitalize()


def make_people(n: int, seed: int, qa_train_fraction: float = 0.5) -> list[Person]:
    """n people with unique full names; the first round(qa_train_fraction * n) of a seeded shuffle get QA pairs
    in training, the others are the eval people."""
    if n < 2:
        raise ValueError(f"entities={n}: need at least 2 (QA-train and eval people)")
    rng = random.Random(f"world:{seed}")
    pools = {
        "birth_city": _pool(rng, lambda: _word(rng, 2) + rng.choice(_CITY_END), max(8, n // 3)),
        "university": _pool(rng, lambda: f"{_word(rng, 2)} University", max(8, n // 3)),
        "employer": _pool(rng, lambda: f"{_word(rng, 2)} {rng.choice(_COMPANY_END)}", max(8, n // 3)),
        "field": _FIELDS, "hobby": _HOBBIES,
    }
    names = _pool(rng, lambda: f"{rng.choice(_FIRST)} {_word(rng, 2)}", n)
    people = []
    for i, name in enumerate(names):
        attrs = {"birth_date": f"{rng.randint(1, 28)} {rng.choice(_MONTHS)} {rng.randint(1940, 1999)}",
                 **{a: rng.choice(pools[a]) for a in ATTRIBUTES[1:]}}
        order = list(ATTRIBUTES)
        rng.shuffle(order)
        people.append(Person(f"person-{i:05d}", name, attrs, order=order))
    k = max(1, min(n - 1, round(qa_train_fraction * n)))
    for p in rng.sample(people, k):
        p.qa_train = True
    return people


def raw_passage(p: Person) -> str:
    return " ".join(RAW_TEMPLATES[a].format(name=p.name, value=p.attrs[a]) for a in p.order)


def _compose(p: Person, rng: random.Random, pick) -> str:
    order = list(ATTRIBUTES)
    rng.shuffle(order)
    first = p.name.split()[0]
    sents = []
    for k, a in enumerate(order):
        who = p.name if k == 0 or rng.random() < 0.5 else first   # full name first, then name or first name
        sents.append(pick(a).format(who=who, value=p.attrs[a]))   # every template starts with a capital
    return " ".join(sents)


def control_paraphrases(p: Person, seed: int, k: int) -> list[str]:
    """k seeded template paraphrases of the person's passage (the CONTROL arm; distinct texts)."""
    rng = random.Random(f"control:{seed}:{p.id}")
    out: list[str] = []
    for _ in range(50 * k):
        t = _compose(p, rng, lambda a: rng.choice(TRAIN_TEMPLATES[a]))
        if t not in out:
            out.append(t)
        if len(out) == k:
            return out
    raise ValueError(f"{p.id}: could not draw {k} distinct control paraphrases")


def heldout_paraphrase(p: Person, seed: int) -> str:
    """The person's facts in templates no training text uses (the held-out loss probe)."""
    return _compose(p, random.Random(f"heldout:{seed}:{p.id}"), lambda a: HELDOUT_TEMPLATES[a])


def qa_text(question: str, answer: str) -> str:
    return f"{QA_FORMAT.format(question=question)} {answer}\n"


def qa_train_docs(people: list[Person]) -> list[dict[str, Any]]:
    """One training document per QA-train person: its six Q/A pairs in QA_TRAIN wording."""
    return [{"id": f"{p.id}-qa", "text": "".join(qa_text(QA_TRAIN[a].format(name=p.name), p.attrs[a])
                                                for a in p.order), "domain": "knowledge", "source": "evidence-qa"}
            for p in people if p.qa_train]


def eval_questions(people: list[Person]) -> list[dict[str, Any]]:
    """The QA probe, about the eval people only (their Q/A pairs are never training data), in two wordings:
    "heldout" (QA_EVAL, a wording no training text uses: the K2 row) and "seen" (QA_TRAIN, the wording the
    QA-train people's pairs use: people held out, wording not, as in Physics of LM 3.1)."""
    return [{"person": p.id, "attribute": a, "wording": w,
             "prompt": QA_FORMAT.format(question=templates[a].format(name=p.name)), "answer": p.attrs[a]}
            for w, templates in (("heldout", QA_EVAL), ("seen", QA_TRAIN))
            for p in people if not p.qa_train for a in ATTRIBUTES]


def chance(people: list[Person]) -> dict[str, float]:
    """Per attribute: the share of eval people holding the most frequent value (a constant guess's accuracy)."""
    from collections import Counter
    ev = [p for p in people if not p.qa_train]
    return {a: Counter(p.attrs[a] for p in ev).most_common(1)[0][1] / len(ev) for a in ATTRIBUTES}
