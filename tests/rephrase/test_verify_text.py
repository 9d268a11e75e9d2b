"""Sentence splitting, entity heuristics, negation cues, n-gram overlap (no embedding model needed)."""
import numpy as np
import pytest

from rephrase.verify import entities
from rephrase.verify.negation import align_groups, find_flips, negation_count
from rephrase.verify.overlap import length_ratio, ngram_overlap
from rephrase.verify.text import is_claimless, merge_questions, split_sentences


def test_split_sentences_respects_abbreviations_decimals_and_notes():
    text = "Dr. Smith measured 3.5 km on Jan. 3. It rained, e.g. twice. Was it cold? Yes."
    assert split_sentences(text) == ["Dr. Smith measured 3.5 km on Jan. 3.", "It rained, e.g. twice.",
                                     "Was it cold?", "Yes."]
    notes = "Facts:\n- boils at 100 °C\n- freezes at 0 °C"
    assert split_sentences(notes) == ["Facts:", "boils at 100 °C", "freezes at 0 °C"]
    assert split_sentences("Q: Who? A: Curie.") == ["Who?", "Curie."]
    assert merge_questions(["Who?", "Curie.", "When?", "In 1903."]) == ["Who? Curie.", "When? In 1903."]


def ents(text):
    return [e.text for e in entities.extract(text)]


def test_entity_spans_connectors_and_sentence_starts():
    text = ("Marie Curie studied at the University of Paris. Water boils. The Eiffel Tower is tall. "
            "Leonardo da Vinci painted. Curie won twice.")
    found = ents(text)
    for name in ("Marie Curie", "University of Paris", "Eiffel Tower", "Leonardo da Vinci"):
        assert name in found
    assert "Water" not in found and "The Eiffel Tower" not in found
    # a sentence-initial word that is a name elsewhere mid-sentence counts
    assert "Curie" in ents("She met Curie. Curie won twice.")


def test_entity_swap_and_drop_detected_but_partial_names_and_demonyms_allowed():
    src = "Marie Curie was born in Warsaw and later worked in France with Henri Becquerel."
    ok = "Born in Warsaw, Curie later did French research alongside Becquerel."
    d = entities.compare(src, ok)
    assert not d.missing and not d.added, (d.missing, d.added)
    bad = entities.compare(src, "Pierre Curie was born in Krakow and later worked in France with Henri Becquerel.")
    assert [e.text for e in bad.added] == ["Pierre Curie", "Krakow"]
    assert [e.text for e in bad.missing] == ["Warsaw"]
    assert entities.compare("the European Union", "the EU").score == 1.0


def test_sentence_initial_names_use_the_vocabulary_rule():
    d = entities.compare("Denmark has an opt-out from the euro.", "Denmark: opt-out. Sweden: also outside.")
    assert [e.text for e in d.added] == ["Sweden"]
    d = entities.compare("Plants make glucose from light.", "Interestingly, plants use light. Plants grow.")
    assert not d.added


@pytest.mark.parametrize("sentence,count", [
    ("It does not conduct.", 1), ("It doesn't conduct.", 1), ("It never conducts.", 1),
    ("It conducts.", 0), ("No bridge crosses it.", 1), ("It failed to break the cipher.", 1),
    ("Is there a bridge? No, there is none.", 1), ("It was not found until 1985.", 0),
    ("made by plankton rather than by plants", 1), ("not only fast but cheap", 0),
])
def test_negation_cues(sentence, count):
    assert negation_count(sentence) == count


def test_flips_are_found_per_aligned_group():
    src = ["The sky is blue.", "Pure water does not conduct electricity."]
    rw_ok = ["Blue is the colour of the sky.", "Electricity is not conducted by pure water."]
    rw_bad = ["Blue is the colour of the sky.", "Pure water conducts electricity."]
    sim = np.array([[0.9, 0.1], [0.1, 0.8]])
    assert align_groups(sim, 0.3) == [([0], [0]), ([1], [1])]
    assert find_flips(src, rw_ok, sim, 0.3) == []
    flips = find_flips(src, rw_bad, sim, 0.3)
    assert len(flips) == 1 and "conducts" in flips[0].rewrite


def test_overlap_and_length():
    src = ("the quick brown fox jumps over the lazy dog near the quiet river bank today while "
           "the farmer sleeps under an old oak tree beside the barn")
    assert ngram_overlap(src, src) == 1.0
    assert ngram_overlap(src, "a fast fox leapt across a sleepy hound beside the calm stream this morning") == 0.0
    changed = src.replace("lazy", "sleepy")
    assert 0 < ngram_overlap(src, changed) < 1
    assert length_ratio("one two three four", "one two") == 0.5


def test_claimless_sentences():
    assert is_claimless("Let me walk you through it.")
    assert not is_claimless("Sweden is outside the euro area.")
    assert not is_claimless("It grows 4 mm a year.")


def test_length_ratio_counts_words_of_any_script():
    from rephrase.verify.overlap import length_ratio
    ru = "Найдите все решения уравнения x^2 = 4 на множестве целых чисел."
    en = "Find all solutions of the equation x^2 = 4 over the integers."
    zh = "求方程x^2=4在整数集上的所有解。"
    assert 0.6 < length_ratio(ru, en) < 1.6
    assert 0.4 < length_ratio(zh, en) < 2.5


def test_scaffold_labels_lower_case_chat_speakers_and_bracketed_names():
    from rephrase.verify.scaffold import strip
    out = strip("jess: what did it find\nomar: a uk trial\njess: and??\nomar: deaths down\n"
                "CALLER (Graham): Graham here.\nHOST (Priya Nair): Hello.")
    assert out.text.split("\n")[:2] == ["what did it find", "a uk trial"]
    assert {"jess", "omar", "graham", "priya", "nair"} <= out.labels
    # a one-off lower-case "key: value" line is content, and a name in brackets after a non-role label is kept out
    out = strip("ship: endurance\nsank: 21 nov 1915\nDUKE (CAPCOM): Roger.\nDUKE (CAPCOM): Copy.")
    assert out.text.startswith("ship: endurance") and "capcom" not in out.labels
    # author I: an upper-case glossary term's bracketed year is content; a repeated speaker's time stamp is not
    out = strip("FORTRAN (1957): designed at IBM.\nHOST (00:01): Hello.\nHOST (00:03): Bye.")
    assert out.text.split("\n") == ["(1957) designed at IBM.", "Hello.", "Bye."]


def test_scaffold_normalize_keeps_superscript_powers_of_ten():  # author R: "30 × 10⁶ m³" is no "106 m3"
    from rephrase.verify.scaffold import normalize, strip
    assert normalize("30 \u00d7 10\u2076 m\u00b3") == "30 \u00d7 10^6 m3"
    assert normalize("1.6 \u00d7 10\u207b\u00b9\u2079 C") == "1.6 \u00d7 10^-19 C"
    assert normalize("5 km\u00b2") == "5 km2"
    assert "10^6" in strip("- about 30 \u00d7 10\u2076 m\u00b3 of rock").text
