"""The fictional-people generator (evidence.world): seeded, and its eval questions never leak into training text."""
import pytest

from evidence.world import (ATTRIBUTES, HELDOUT_TEMPLATES, QA_EVAL, QA_TRAIN, RAW_TEMPLATES, TRAIN_TEMPLATES, chance,
                            control_paraphrases, eval_questions, heldout_paraphrase, make_people, qa_train_docs,
                            raw_passage)


def _skeleton(template: str) -> str:
    return template.replace("{name}", "").replace("{who}", "").replace("{value}", "").strip(" .?").lower()


def test_seeded_and_unique():
    a, b, c = make_people(40, 3), make_people(40, 3), make_people(40, 4)
    assert [(p.name, p.attrs, p.order, p.qa_train) for p in a] == [(p.name, p.attrs, p.order, p.qa_train) for p in b]
    assert [p.name for p in a] != [p.name for p in c]
    assert len({p.name for p in a}) == 40
    assert sum(p.qa_train for p in a) == 20
    assert len({tuple(p.order) for p in a}) > 10          # varied sentence order


def test_passages_hold_every_fact():
    for p in make_people(12, 0):
        texts = [raw_passage(p), heldout_paraphrase(p, 0), *control_paraphrases(p, 0, 10)]
        assert len(set(texts)) == len(texts)
        for t in texts:
            assert all(v in t for v in p.attrs.values()), t
        assert raw_passage(p).count(p.name) == len(ATTRIBUTES)   # the full name in every raw sentence


def test_eval_wordings_are_never_training_wordings():
    train = set(map(_skeleton, RAW_TEMPLATES.values())) | {_skeleton(t) for ts in TRAIN_TEMPLATES.values()
                                                           for t in ts}
    assert not train & set(map(_skeleton, HELDOUT_TEMPLATES.values()))
    assert not set(map(_skeleton, QA_EVAL.values())) & set(map(_skeleton, QA_TRAIN.values()))
    people = make_people(16, 1)
    corpus = " ".join([raw_passage(p) for p in people] + [d["text"] for d in qa_train_docs(people)]
                      + [t for p in people for t in control_paraphrases(p, 1, 10)])
    qs = eval_questions(people)
    assert len(qs) == 2 * 8 * len(ATTRIBUTES)
    assert {q["wording"] for q in qs} == {"heldout", "seen"}
    for q in qs:
        assert q["prompt"].split("\n")[0][3:] not in corpus        # no eval question appears in training text
    assert {q["person"] for q in qs}.isdisjoint({p.id for p in people if p.qa_train})


def test_chance_and_bad_size():
    people = make_people(8, 0)
    assert all(0 < v <= 1 for v in chance(people).values())
    with pytest.raises(ValueError, match="entities=1"):
        make_people(1, 0)
