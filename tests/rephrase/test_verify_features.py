"""Scaffolding removal, the restyle-tolerant number/entity/negation features, the consistency model's fit, and
verdicts on bad input: each case here is a way real rewrites differ from their source that once caused a false
rejection, or a one-fact corruption that must still be seen."""
import numpy as np
import pytest

from rephrase.verify import VerifierSpec
from rephrase.verify import numbers
from rephrase.verify.consistency import ConsistencyModel, default_model, fit
from rephrase.verify.features import NAMES, pair_features
from rephrase.verify.scaffold import normalize, strip
from tests.rephrase.verify_pairs import pair_features as _features, verifier  # noqa: F401 (a fixture)


def test_scaffold_removes_structure_not_content():
    text = ("# THE PANAMA CANAL\nMAYA: When did it open?\nLEO: In 1914, after ten years.\nMAYA: Any locks?\n"
            "LEO: Three pairs.\n1/ a thread post\n- Card 3 (front): What is it?\nCapital: Lisbon\n"
            "Prof. Okafor: One more point.\nHi Jonas,\nBest,\nSam")
    s = strip(text)
    lines = [x for x in s.text.split("\n") if x]
    assert lines[1] == "When did it open?" and lines[2] == "In 1914, after ten years."
    assert "a thread post" in lines and "What is it?" in lines
    assert "Capital: Lisbon" in lines          # a one-off key is content, not a speaker
    assert {"maya", "leo", "okafor", "jonas", "sam"} <= s.labels
    assert "THE PANAMA CANAL" in s.titles
    # a thread's "1/" does not take the date after it; a three-digit number after "day" is content, not a list
    assert strip("1/ 1 July 1569: the Union is signed.").text == "1 July 1569: the Union is signed."
    assert strip("- day 243 Earth days > year 225 Earth days").text == "day 243 Earth days > year 225 Earth days"
    assert normalize("\uff11\uff19\uff10\uff13 \u2013 \u201cok\u201d") == '1903 - "ok"'


@pytest.mark.parametrize("source,rewrite", [
    ("temperatures of \u221230 \u00b0C", "around minus 30 degrees Celsius (-22 \u00b0F)"),
    ("about half its diameter", "roughly 50% of it"),
    ("in the 15th century", "in the 1400s"),
    ("opened in 2004; closed in 2010", "it opened in 2004 and closed six years later, in 2010"),
    ("at least 10.5% chromium", "at least ten and a half percent chromium"),
    ("2.4 metres across", "two point four metres across"),
    ("killed 100,000 people", "100k people died"),
    ("sealed on 15 June 1215", "sealed 15.vi.1215"),
    ("On 14 July 1789", "on july 14th, 1789"),
    ("On 14 July 1789", "July the fourteenth, 1789"),
    ("signed on 1 July 1569", "1 JULY 1569: signed"),
    ("absent for about 70 years", "an absence of roughly seven decades"),
    ("density 19.3 g/cm\u00b3", "19.3 grams per cubic centimetre"),
    ("483 \u00b5g of potassium", "0.483 mg of potassium"),
    ("It may rain.", "Rain may come."),
])
def test_numbers_equal_in_other_forms(source, rewrite):
    d = numbers.compare(source, rewrite)
    assert not d.missing and not d.extra, ([q.label() for q in d.missing], [q.label() for q in d.extra])


@pytest.mark.parametrize("source,rewrite", [
    ("On 14 July 1789 a crowd", "On the fifteenth of July, 1789, a crowd"),
    ("at least 10.5% chromium", "at least eleven percent chromium"),
    ("about 70 years", "roughly eight decades"),
    ("at \u221230 \u00b0C", "at 30 \u00b0C"),
])
def test_numbers_still_see_a_changed_value(source, rewrite):
    assert numbers.compare(source, rewrite).extra


SOURCE = ("Marie Curie was born in Warsaw on 7 November 1867. In 1903 she shared the Nobel Prize in Physics with "
          "Pierre Curie and Henri Becquerel. She never patented the process for isolating radium.")
DIALOGUE = ("MAYA: Where was Marie Curie born?\nLEO: In Warsaw, on November 7th, 1867.\nMAYA: And in 1903?\n"
            "LEO: She shared the physics Nobel with Pierre Curie and Henri Becquerel.\nMAYA: Did she patent her "
            "way of isolating radium?\nLEO: No, she never did.")


def test_dialogue_scaffolding_raises_no_number_entity_or_negation_evidence(verifier):
    f = _features(verifier, SOURCE, DIALOGUE)
    assert f["num_extra"].value == 0 and f["num_missing"].value == 0, (f["num_extra"], f["num_missing"])
    assert f["ent_added"].value == 0 and f["ent_missing"].value == 0, (f["ent_added"], f["ent_missing"])
    assert f["neg_parity"].value == 0, f["neg_parity"]


def test_one_fact_corruptions_raise_their_feature(verifier):
    swapped = _features(verifier, SOURCE, DIALOGUE.replace("Henri Becquerel", "Ernest Rutherford"))
    assert swapped["ent_added"].value == 1 and "Rutherford" in swapped["ent_added"].detail
    dated = _features(verifier, SOURCE, DIALOGUE.replace("1867", "1868"))
    assert dated["num_extra"].value >= 1 and "1868" in dated["num_extra"].detail
    flipped = _features(verifier, SOURCE, DIALOGUE.replace("No, she never did.", "Yes, she patented it."))
    assert flipped["neg_parity"].value >= 1


@pytest.mark.parametrize("source, rewrite", [
    # contrast and constituent negation: "X, not Y" says what "X rather than Y" says
    ("Roughly half of the oxygen on Earth is produced by marine phytoplankton rather than by land plants.",
     "About half of Earth's oxygen comes from marine phytoplankton, not land plants."),
    # exclusive negation and a superlative / an exclusive
    ("Tungsten melts at 3,422 \u00b0C, the highest melting point of all metals.",
     "Tungsten melts at 3,422 \u00b0C; no other metal melts at a higher temperature."),
    ("Monarch caterpillars feed exclusively on milkweed.", "As caterpillars, monarchs eat milkweed and nothing else."),
    # a negation worded by a lexically negative verb
    ("The Tsar refused to negotiate with Napoleon.", "The Tsar would not negotiate with Napoleon."),
    # one negation repeated over coordinated phrases, or continued by "either", is still one negation
    ("The plant has no leaves, stems or roots of its own.", "The plant has no leaves, no stems and no roots of its own."),
    ("She held neither a doctorate nor a medical degree.", "She held it without a doctorate, and without a medical degree."),
    ("Neither animals nor fungi can photosynthesise.", "animals can't photosynthesise. fungi can't either."),
    # a yes/no question states nothing; "No -" answering it (with spaced dashes) is no negation of the claim
    ("Stainless steel is not completely rust-proof.", "So it never rusts? Not quite. It isn't entirely rust-proof."),
    ("Shockley led the group they worked in.", "Was Shockley one of the two? No \u2014 William Shockley led the group they worked in."),
    # "nobody ... until", "wasn't ... until" name a first time, like "not ... until"; "not long after" = "soon after"
    ("It was not isolated until the 1930s.", "Nobody would isolate it until the 1930s."),
    ("Shortly after launch, astronomers found the fault.", "Not long after launch, astronomers found the fault."),
    ("Neither animals nor fungi can photosynthesise.",
     "And before you ask: no, animals can't photosynthesise, and fungi can't either."),
    ("Neither helium nor neon is known to form any stable compound.",
     "He & Ne: no stable compounds known for either."),
    # "without any help" is an exclusive like "on its own"
    ("If this layer is scratched, it re-forms on its own.", "If scratched, the layer re-forms without any help."),
    # a bare "No." answering a yes/no question states the negation
    ("James Watt did not invent the steam engine.", "Card 1 front: Did James Watt invent the steam engine? | Back: No."),
    # an affirmed yes/no question states its negation
    ("The treaty did not mention the opium trade.", "So the treaty never mentioned the opium trade? That's right."),
    # a negative-prefix adjective that describes a noun is not the claim's negation
    ("The mirror had been ground to the wrong shape.", "The mirror had been ground to an incorrect shape."),
    # a bound is no negation: "do not take more than 8" = "no more than eight" = "at most eight"
    ("Do not take more than 8 tablets in 24 hours.", "What is the daily limit? No more than eight tablets in 24 hours."),
    ("Do not take more than 8 tablets in 24 hours.", "Take eight tablets at most in 24 hours."),
    ("Do not take more than 8 tablets in 24 hours.", "You should never go over 8 tablets in 24 hours."),
    # "No. 2" is the numero sign
    ("About 56 hours into the flight, oxygen tank No. 2 in the service module exploded.",
     "Some 56 hours in, the service module's second oxygen tank exploded."),
])
def test_reworded_negation_is_not_a_flip(verifier, source, rewrite):
    f = _features(verifier, source, rewrite)
    assert f["neg_unmatched"].value == 0 and f["neg_parity"].value == 0, (f["neg_unmatched"], f["neg_parity"])


@pytest.mark.parametrize("source, rewrite", [
    ("The plant has no leaves, stems or roots of its own.", "The plant has leaves, stems and roots of its own."),
    ("Does Kevlar melt? No, it does not melt; it decomposes.", "Does Kevlar melt? Yes, it melts and decomposes."),
    ("Its builders laid granite blocks without mortar.", "Its builders laid granite blocks with mortar."),
    ("The oxygen tank No. 2 exploded.", "The oxygen tank No. 2 did not explode."),
])
def test_negation_flips_are_still_seen(verifier, source, rewrite):
    f = _features(verifier, source, rewrite)
    assert f["neg_unmatched"].value > 0 or f["neg_parity"].value > 0, (f["neg_unmatched"], f["neg_parity"])


def test_a_tldr_line_is_no_counterpart_of_a_negated_sentence(verifier):
    # the tl;dr line restates the body in short; the body words the source's negation as it is
    source = ("The Jacquard loom was patented in 1804 and controlled the pattern of a woven fabric with punched cards. "
              "Each card decided which warp threads were lifted, so a weaver no longer needed a draw boy to lift them.")
    rewrite = ("tl;dr: punched cards ran the Jacquard loom - no draw boy needed.\n\nIn full: patented in 1804, the "
               "Jacquard loom controlled the pattern of a woven fabric with punched cards. Each card set which warp "
               "threads were lifted, so a weaver no longer needed a draw boy to lift them.")
    f = _features(verifier, source, rewrite)
    assert f["neg_unmatched"].value == 0 and f["neg_parity"].value == 0, (f["neg_unmatched"], f["neg_parity"])


def test_a_title_is_no_counterpart_of_a_negated_sentence():
    # the title is the negated source sentence's closest rewrite line; the sentence that words the negation is next
    src = ["For food closer than 50 m, bees perform a round dance, which gives no information about direction."]
    rw = ["The Round Dance of Bees", "Bees do a round dance for food closer than 50 m; it carries no directional cue."]
    sim = np.array([[0.9, 0.6]])
    feats = {f.name: f for f in pair_features(src, rw, src[0], "\n".join(rw), set(), {rw[0]}, np.array([0.9]),
                                              np.array([0.9, 0.6]), sim, 0.9)}
    assert feats["neg_unmatched"].value == 0 and feats["neg_parity"].value == 0, feats["neg_unmatched"]
    feats = {f.name: f for f in pair_features(src, rw, src[0], "\n".join(rw), set(), set(), np.array([0.9]),
                                              np.array([0.9, 0.6]), sim, 0.9)}
    assert feats["neg_unmatched"].value > 0  # as a claim line, the title would be the counterpart


def test_clausal_negation_flip_is_seen_beside_a_contrast(verifier):
    f = _features(verifier, "Green tea is not oxidised, whereas black tea is fully oxidised.",
                  "Green tea is oxidised, whereas black tea is fully oxidised.")
    assert f["neg_unmatched"].value > 0.5 and "not oxidised" in f["neg_unmatched"].detail


@pytest.mark.parametrize("source, rewrite", [
    # heading and label words of styled rewrites are structure
    ("Stainless steel is an iron alloy. It can still corrode in salty conditions.",
     "STAINLESS STEEL - KEY POINTS\n1. What it is: an iron alloy.\n2. Caveat: it can still corrode in salty conditions."),
    ("The Tokaido Shinkansen opened in 1964.", "Tokaido Shinkansen - FAQ\nQ. When did it open?\nA. In 1964."),
    # a plural common word opening a sentence, an abbreviation with its full stop, an -ism/-ist pair
    ("Octopuses live short lives, typically one to two years.", "Lifespans are short, typically one to two years."),
    ("It was first isolated in 2004 at the University of Manchester.", "* First isolated: 2004, Univ. of Manchester"),
    ("After the war he turned to Buddhism.", "After the war he became a Buddhist."),
    # an inline greeting names the addressee
    ("Spinach has 23 kcal per 100 g.", "Hey Sam \u2014 here are the numbers: spinach has 23 kcal per 100 g."),
    # a markdown table's column names are structure, on either side, and a cell border is no part of a name
    ("| Model | Launch | Top speed |\n|---|---|---|\n| Shinkansen 0 Series | 1964 | 210 km/h |",
     "The Shinkansen 0 Series entered service in 1964 with a top speed of 210 km/h."),
    ("The Shinkansen 0 Series entered service in 1964 with a top speed of 210 km/h.",
     "| Item | Detail |\n|:--|--:|\n| Train | Shinkansen 0 Series |\n| Launched | 1964 |\n| Top speed | 210 km/h |"),
    # the moderator introduces a speaker who then speaks under a label (decomposed accents included)
    ("Iceland extended its fishing limit to 200 nautical miles in 1975.",
     "MODERATOR: With us is Professor Hrafnhildur Sigu\u0301rdardo\u0301ttir.\n"
     "SIGU\u0301RDARDO\u0301TTIR: Iceland extended its fishing limit to 200 nautical miles in 1975."),
    # a currency code and its name, an era marker written both ways
    ("The bridge cost CHF 400 million.", "The bridge cost 400 million Swiss francs."),
    ("The wall was begun in 221 BCE.", "The wall was begun in 221 BC."),
    # ALL-CAPS card/log lines: their common words are no names, a month abbreviation is a date, a country its code
    ("Usain Bolt of Jamaica won the 100 metres in Berlin on 16 August 2009 in 9.58 seconds.",
     "ATHLETE CARD - USAIN BOLT (JAM)\nEvent: 100 m, Berlin, 16 August 2009\nTime: 9.58 s"),
    ("Apollo 13 launched from Kennedy Space Center on 11 April 1970 with Jim Lovell aboard.",
     "APOLLO 13 - FLIGHT SUMMARY LOG\n11 APR 1970 - LAUNCH, Kennedy Space Center. Crew: LOVELL."),
    ("The jury summons covers people aged 18 to 75.", "tom: wait can anyone be summoned\nana: noooo, only 18 to 75\n"
     "tom: ok\nana: yes"),
    ("Super Mario Bros. sold about 40 million copies.", "Super Mario Bros. sold about 40 million copies. WOW!"),
    # a name with an alias inside a misread span ("Tyson Gay (USA" for "the United States")
    ("Tyson Gay of the United States finished second in 9.71 seconds.", "Runner-up: Tyson Gay (USA), 9.71 s"),
    # the style's own frame: the publication of a newsletter's masthead, the programme a host introduces, and
    # speakers named in brackets after their role or in a lower-case chat
    ("Thriller was released by Epic Records on 30 November 1982.",
     'From the Music Department Newsletter - "Classic Albums" corner\nThriller came out on Epic Records on '
     "30 November 1982."),
    ("All 28 men of the expedition survived in 1915.", "Polar Society Alumni News\nAll 28 of the men survived in 1915."),
    ("Jacob Davis was a tailor in Reno in 1873.", "How jeans got their rivets (easy English)\nJacob Davis was a tailor. "
     "He lived in Reno. This was in 1873."),
    ("Stanley Milgram began his experiments at Yale University in 1961.",
     "HOST (Priya Nair): You're on Mind Matters. Who've we got?\nCALLER (Graham): Graham here. What happened?\n"
     "HOST: Stanley Milgram began his experiments at Yale University in 1961."),
    ("The RECOVERY trial in the UK tested dexamethasone in 2020.",
     "jess: what did recovery find\nomar: uk trial, 2020, dexamethasone\njess: and??\nomar: it was tested"),
])
def test_styled_rewrites_add_no_entity(verifier, source, rewrite):
    f = _features(verifier, source, rewrite)
    assert f["ent_added"].value == 0 and f["ent_missing"].value == 0, (f["ent_added"], f["ent_missing"])


def test_a_table_or_a_speaker_label_does_not_hide_a_swapped_name(verifier):
    f = _features(verifier, "| City | Founded |\n|---|---|\n| Kyoto | 794 |", "Osaka was founded in 794.")
    assert f["ent_added"].value == 1 and "Osaka" in f["ent_added"].detail
    f = _features(verifier, "Iceland extended its limit in 1975.",
                  "HOST: So, 1975?\nGUEST: Norway extended its limit in 1975.")
    assert f["ent_added"].value == 1 and "Norway" in f["ent_added"].detail


def test_frame_and_caps_rules_do_not_hide_a_swapped_name(verifier):
    # a name added in a newsletter's body, a caps log line's non-common name, a frame noun beyond the first line
    f = _features(verifier, "Thriller was released by Epic Records in 1982.",
                  "From the Music Department Newsletter\nThriller was released by Columbia Records in 1982.")
    assert "Columbia" in f["ent_added"].detail, f["ent_added"]
    f = _features(verifier, "The crew was recovered by USS Iwo Jima in 1970.",
                  "1970 - SPLASHDOWN. RECOVERY: USS OKINAWA.")
    assert "OKINAWA" in f["ent_added"].detail, f["ent_added"]
    f = _features(verifier, "The album was reviewed in 1982. It sold well.",
                  "The album was reviewed in 1982. It sold well, said the Rolling Stone magazine.")
    assert f["ent_added"].value > 0, f["ent_added"]


def test_a_name_written_with_its_initial_is_kept(verifier):
    src = "It is the standard treatment for malaria caused by Plasmodium falciparum."
    f = _features(verifier, src, "It is today's standard treatment for *P. falciparum* malaria.")
    assert f["ent_missing"].value == 0, f["ent_missing"]
    f = _features(verifier, src, "It is today's standard treatment for malaria.")
    assert f["ent_missing"].value == 1 and "Plasmodium" in f["ent_missing"].detail


def test_abbreviation_rule_does_not_hide_a_swapped_name(verifier):
    f = _features(verifier, "He brought the architect to Timbuktu.", "He brought the architect to Gao.")
    assert f["ent_added"].value == 1 and "Gao" in f["ent_added"].detail


def test_entity_aliases_acronyms_and_diacritics(verifier):
    f = _features(verifier, "The World Health Organization declared it in 1980, said Anton\u00edn Dvo\u0159\u00e1k.",
                  "In 1980 the WHO declared it, Antonin Dvorak said.")
    assert f["ent_added"].value == 0 and f["ent_missing"].value == 0, (f["ent_added"], f["ent_missing"])
    f = _features(verifier, "The United Kingdom left in 2020.", "Britain left in 2020.")
    assert f["ent_added"].value == 0 and f["ent_missing"].value == 0, (f["ent_added"], f["ent_missing"])


def test_fit_is_deterministic_non_negative_and_separates():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(NAMES)))
    y = x[:, 0] + 0.5 * x[:, 2] - 0.8 * x[:, 5] > 0  # feature 5 points the "wrong" way
    a, b = fit(x, y), fit(x, y)
    assert a.weights == b.weights
    assert min(a.weights) >= 0 and a.weights[5] == 0.0 and a.weights[0] > a.weights[2] > 0
    p = a.prob(x)
    assert ((p > 0.5) == y).mean() > 0.7  # the sign constraint costs what feature 5 would have added
    with pytest.raises(ValueError, match="both classes"):
        fit(x, np.zeros(200, dtype=bool))


def test_model_spec_validation_and_packaged_default():
    with pytest.raises(ValueError, match="unknown consistency feature"):
        ConsistencyModel(features=["nope"], center=[0], scale=[1], weights=[0])
    with pytest.raises(ValueError, match="weights has 1 entries"):
        ConsistencyModel(weights=[1.0])
    m = default_model()
    assert m.fitted_on.startswith("dev.jsonl") and max(m.weights) > 0 and 0 < m.threshold < 1


@pytest.mark.parametrize("rewrite,reason", [
    ("Marie Curie est n\u00e9e \u00e0 Varsovie le 7 novembre 1867. En 1903, elle partagea le prix Nobel de "
     "physique avec Pierre Curie et Henri Becquerel. Elle ne fit jamais breveter le proc\u00e9d\u00e9.", None),
    (" ".join([DIALOGUE] * 20), "length"),
    ("\u739b\u4e3d\u00b7\u5c45\u91cc1867\u5e74\u51fa\u751f\u4e8e\u534e\u6c99\u3002", None),
    ("marie curie born warsaw 7 november 1867 shared nobel physics 1903 pierre curie henri becquerel never "
     "patented radium process", None),
])
def test_bad_input_gets_a_verdict_with_a_reason(verifier, rewrite, reason):
    [v] = verifier.verify_batch([(SOURCE, rewrite)])
    if reason:
        assert not v.accepted and any(r.startswith(reason) for r in v.reasons), v.reasons
    if not v.accepted:
        assert v.reasons and all(r.split(":")[0] in VerifierSpec().checks for r in v.reasons)


def test_one_sentence_source_and_unsplittable_text(verifier):
    vs = verifier.verify_batch([("Venus has no moons.", "Venus: zero moons - none at all"),
                                ("no punctuation at all just words about venus and its moons",
                                 "words about venus without punctuation and its moons too")])
    assert len(vs) == 2 and all(isinstance(v.accepted, bool) for v in vs)


@pytest.mark.parametrize("source, rewrite, flipped", [
    # a flip keeps the predicate it negates
    ("The canal is the longest in the country. It opened in 1820.",
     "Opened in 1820, the canal isn't the longest in the country.", True),
    ("The council sent three envoys to Lisbon.", "The council never sent envoys to Lisbon.", True),
    ("Every village has a well.", "The villages never had wells.", True),
    # a reworded negation does not: the same fact, stated another way
    ("The ceasefire did not last.", "The ceasefire was short-lived.", False),
    ("She did not give up.", "She kept going.", False),
    ("The scale ignores rainfall.", "Rainfall is not part of the scale.", False),
    # a predicate negated of one named subject and stated of another is no flip; of the same name it is
    ("In September 1928, Alexander Fleming noticed that a mould on a culture plate at St Mary's Hospital in London "
     "had killed the surrounding Staphylococcus bacteria. He identified the mould as Penicillium and named its active "
     "substance penicillin, but he could not purify it in useful amounts. At the University of Oxford, Howard Florey "
     "and Ernst Chain developed a way to produce and purify the drug, and in 1940 they showed that it protected mice "
     "from streptococcal infection. Fleming, Florey and Chain shared the 1945 Nobel Prize in Physiology or Medicine.",
     "A mould on a culture plate at London's St Mary's Hospital in September 1928, which had killed the "
     "Staphylococcus bacteria around it, set Alexander Fleming on the trail of penicillin - the name he gave to the "
     "active substance of the mould, which he identified as Penicillium. Fleming could not purify useful quantities; "
     "that was achieved at the University of Oxford by Howard Florey and Ernst Chain, who devised a way to produce and "
     "purify the drug and showed in 1940 that it protected mice against streptococcal infection. The three men shared "
     "the 1945 Nobel Prize in Physiology or Medicine.", False),
    ("Fleming purified the mould juice in 1929.", "Fleming could not purify the mould juice in 1929.", True),
])
def test_neg_flip_sees_a_negated_predicate_the_other_side_states(verifier, source, rewrite, flipped):
    f = _features(verifier, source, rewrite)
    assert (f["neg_flip"].value > 0) == flipped, f["neg_flip"]


@pytest.mark.parametrize("source, rewrite, flipped", [
    # the predicate must be affirmed as a predicate of the same class, as a fact, of a compatible subject
    ("The real skull is not mounted on the skeleton.", "The real skull is kept off the mounted skeleton.", False),
    ("The stone has never been returned to Egypt, despite requests.",
     "Requests for its return have been made; the stone has stayed outside Egypt.", False),
    ("Unlike lions and tigers, cheetahs cannot roar.", "Lions and tigers roar; cheetahs purr instead.", False),
    ("Contrary to popular belief, a little dish soap does not strip the seasoning.",
     "Lots of people think a bit of dish soap strips the seasoning, but a little does no harm.", False),
    ("Cheetahs cannot roar.", "Cheetahs roar loudly.", True),
    ("The stone has never been returned to Egypt.", "The stone was returned to Egypt.", True),
    # a yes/no question asks, it does not state: its answer carries the polarity
    ("The meteorite has never been moved from where it fell.",
     "Has the meteorite ever been moved? No - it remains where it fell.", False),
    ("The meteorite has never been moved from where it fell.",
     "Where is the meteorite? It has been moved from where it fell.", True),
])
def test_neg_flip_needs_a_stated_predicate_of_the_same_subject(verifier, source, rewrite, flipped):
    f = _features(verifier, source, rewrite)
    assert (f["neg_flip"].value > 0) == flipped, f["neg_flip"]


@pytest.mark.parametrize("source, rewrite", [
    ("The blue whale has no teeth.", "The blue whale is toothless."),        # privative -less
    ("The halls are built with no nails.", "The halls are built nail-free."),  # privative -free
    ("A negative leap second has never been used.", "The tally of negative leap seconds stands at zero."),
    ("Its absence was not noticed until the next day.", "Its absence went unnoticed until the next day."),
    ("Never mix bleach with ammonia.", "The leaflet warns against mixing bleach with ammonia."),
    ("The specification does not require encryption.", "Encryption is optional in the specification."),
    ("It is not just governments that run the body.", "Governments run the body, and so do employers and workers."),
    ("Cyclists are not permitted on the main deck.", "Cyclists are barred from the main deck."),
    ("In 1796 he gave the first advance in the construction since Euclid.",
     "In 1796 he made progress on a construction nobody had advanced since Euclid."),
    ("French soldiers found the stone in July 1799.", "In July 1799 French soldiers uncovered the stone."),
    # a prefixed word that modifies a noun, and a parser's stray `neg` arc, negate nothing
    ("Theorem: Gödel's incompleteness theorems", "The incompleteness theorems of Gödel"),
    ("The expedition cost roughly £10 million.", "Organiser: Falklands Maritime Heritage Trust; cost ≈ £10 m"),
    ("Construction did not finish on schedule.", "Construction ran late."),
])
def test_reworded_negations_are_matched(verifier, source, rewrite):
    f = _features(verifier, source, rewrite)
    assert f["neg_unmatched"].value == 0 and f["neg_parity"].value == 0, (f["neg_unmatched"], f["neg_parity"])


def test_privative_words_do_not_hide_a_flip(verifier):
    f = _features(verifier, "The blue whale has no teeth.", "The blue whale has teeth.")
    assert f["neg_unmatched"].value > 0, f["neg_unmatched"]
    f = _features(verifier, "The halls are built with no nails.", "The halls are built with nails.")
    assert f["neg_unmatched"].value > 0, f["neg_unmatched"]


@pytest.mark.parametrize("source, rewrite", [
    ("Name: Raspberry Pi 4 Model B. Memory: 4 GB.", "Today we're unboxing the Raspberry Pi 4 Model B, with 4 GB of memory."),
    ("Its structure is tripartite: governments, employers and workers each have a vote.",
     "And it isn't just governments running the show: employers and workers each have a vote too."),
])
def test_reversative_verbs_and_not_just_are_no_negation(verifier, source, rewrite):
    f = _features(verifier, source, rewrite)
    assert f["neg_parity"].value == 0 and f["neg_unmatched"].value == 0 and f["neg_flip"].value == 0, \
        (f["neg_parity"], f["neg_unmatched"], f["neg_flip"])


@pytest.mark.parametrize("source, rewrite", [
    ("Completed: by 1455.", "The Bible was completed no later than 1455."),           # a bound, not a negation
    ("No second error sheet has ever been found.", "Only a single error sheet has ever come to light."),
])
def test_bounds_and_exclusives_state_the_same_fact(verifier, source, rewrite):
    f = _features(verifier, source, rewrite)
    assert f["neg_parity"].value == 0 and f["neg_unmatched"].value == 0, (f["neg_parity"], f["neg_unmatched"])


@pytest.mark.parametrize("source, rewrite, flipped", [
    ("The camera was mechanical rather than electronic.", "The camera was electronic rather than mechanical.", True),
    ("It was funded by a licence fee rather than by advertising.",
     "Advertising rather than a licence fee paid for it.", True),
    ("The archive holds more than 150,000 reels.", "The archive holds fewer than 150,000 reels.", True),
    ("Each shot lasted under a minute.", "Each shot ran for more than a minute.", True),
    ("Most of the islanders were killed.", "Few of the islanders were killed.", True),
    # the same contrast and bound in other words
    ("The camera was mechanical rather than electronic.", "Rather than electronic, the camera was mechanical.", False),
    ("The archive holds more than 150,000 reels.", "Over 150,000 reels are held in the archive.", False),
    ("Most of the islanders were killed.", "A few islanders survived; most of the islanders were killed.", False),
    ("At least 140 people died.", "No fewer than 140 people died.", False),
    ("EU rules require a standard rate of at least 15%.", "The standard rate may not drop below 15%.", False),
])
def test_swapped_contrasts_and_reversed_bounds_are_flips(verifier, source, rewrite, flipped):
    f = _features(verifier, source, rewrite)
    assert (f["neg_flip"].value > 0) == flipped, f["neg_flip"]


@pytest.mark.parametrize("source, rewrite, flipped", [
    # a clause told as fiction states no fact: it cannot flip the source's negation
    ("A fire does not set off every sprinkler head in the building, despite what films suggest.",
     "In the movies, one fire sets off every sprinkler head in the building. In reality, only the hot heads open.",
     False),
    ("The monks did not build the bridge in one night.",
     "According to legend, the monks built the bridge in one night; in fact they took years.", False),
    ("A fire does not set off every sprinkler head in the building.",
     "In an office, one fire sets off every sprinkler head in the building.", True),
])
def test_a_clause_told_as_fiction_is_no_flip(verifier, source, rewrite, flipped):
    f = _features(verifier, source, rewrite)
    assert (f["neg_flip"].value > 0) == flipped, f["neg_flip"]


@pytest.mark.parametrize("source, rewrite, flipped", [
    # the negation denies an adjunct the other side does not state ("not from Cornell; from MIT"), not the act
    ("Morris, a student at Cornell University, launched the worm from a computer at MIT to disguise its origin.",
     "Notice he didn't launch it from Cornell; he used a computer at MIT to disguise where it came from.", False),
    ("Morris launched the worm from a computer at MIT.", "Morris did not launch the worm from MIT.", True),
])
def test_neg_flip_needs_the_negated_predicates_names(verifier, source, rewrite, flipped):
    f = _features(verifier, source, rewrite)
    assert (f["neg_flip"].value > 0) == flipped, f["neg_flip"]


@pytest.mark.parametrize("source, rewrite, flipped", [
    # a nominal negation ("no N", "without N") denies existence: a counted or indefinite N stated back flips it
    ("Mercury has no moons.", "Mercury has one moon.", True),
    ("No road reaches the village in winter.", "A road reaches the village in winter.", True),
    ("The wall was built without cement.", "The wall was built with cement.", True),
    # rewordings of the same denial: a privative verb, a universal, a superlative, the negation kept
    ("Mercury has no moons.", "Mercury lacks moons.", False),
    ("No two snowflakes have the same shape.", "Every snowflake has a shape of its own.", False),
    ("No mammal on land is faster than the cheetah.", "The cheetah is the fastest land mammal.", False),
    ("The wall was built without cement.", "No cement was used in the wall.", False),
    # "using N" has what "without N" lacks; a counted subject does what "none"/"nobody" did not
    ("The pair climbed without supplementary oxygen.", "They reached the top, using supplementary oxygen.", True),
    ("The pair climbed without supplementary oxygen.", "It was the first ascent, made with supplementary oxygen.", True),
    ("None of the rescuers was seriously injured.", "Several rescuers were seriously injured.", True),
    ("Nobody was hurt in the blast.", "Two people were hurt in the blast.", True),
    ("The pair climbed without supplementary oxygen.", "They used no supplementary oxygen.", False),
    ("None of the rescuers was seriously injured.", "The rescuers all escaped serious injury.", False),
])
def test_neg_flip_reads_nominal_negations(verifier, source, rewrite, flipped):
    f = _features(verifier, source, rewrite)
    assert (f["neg_flip"].value > 0) == flipped, f["neg_flip"]


@pytest.mark.parametrize("source, rewrite, flipped", [
    # a verb and its synonym state one predicate: "not permitted" is flipped by "allowed" as by "permitted"
    ("Cyclists are not permitted on the bridge.", "Cyclists are allowed on the bridge.", True),
    ("The tower did not require scaffolding.", "The tower needed scaffolding.", True),
    # a reworded negation swaps the predicate for its opposite, which is no flip
    ("Cyclists are not permitted on the bridge.", "Cyclists are forbidden on the bridge.", False),
    ("The tower did not require scaffolding.", "No scaffolding was needed for the tower.", False),
    ("Non-members are not permitted to vote.", "Only members are allowed to vote.", False),
    # a negation that scopes a time or a bound, not the act: "not since 2011" = "last in 2011"
    ("The culvert had not been inspected since 2011.", "2011 - the culvert is inspected for the last time.", False),
    ("Offers cannot be deferred for more than one year.", "Can I defer my offer? Yes, for one year at most.", False),
    # a noun predicate is stated as a predicate, not by naming the noun as a subject
    ("She died in 2003 and never had any chicks.", "In 2012 chicks hatched in the wild.", False),
    ("She never had any chicks.", "She had two chicks.", True),
    ("The painting had never been exhibited publicly.", "The painting had been shown publicly once before.", True),
])
def test_neg_flip_reads_a_verbs_synonym(verifier, source, rewrite, flipped):
    f = _features(verifier, source, rewrite)
    assert (f["neg_flip"].value > 0) == flipped, f["neg_flip"]


@pytest.mark.parametrize("source, rewrite, flipped", [
    # a counterpart with only a soft negation ("rather than") still flips when it states the predicate outright
    ("The bridge was not a toll road: it charged lorries, not cars.",
     "Was it a toll road? Yes, it was a toll road, though it charged lorries rather than cars.", True),
    ("The mill was never rebuilt after the fire.", "After the fire the mill was rebuilt, rather than left as a ruin.",
     True),
    # ... but what follows "rather than", a wh-question, or a word holding the negation is not stated
    ("The guild is not a bank but a club in which members pool savings.",
     "Rather than being a bank, the guild is a club where members pool savings.", False),
    ("Retired staff are not counted as members.",
     "Who is counted as a member? Only staff in work, after six months rather than retired staff.", False),
    ("The council did not admit her to the chamber.", "The council refused to admit her to the chamber.", False),
    ("She took four years to finish it, not the two she had planned.",
     "She finished in four years rather than the two she had planned.", False),
    # obligation and permission: what is not required is the complement's act
    ("Drivers are not required to carry a paper licence.", "All drivers must carry a paper licence.", True),
    ("Drivers are not required to carry a paper licence.", "Carrying a paper licence is optional for drivers.", False),
    # the passive makes the object the subject: "did not allow seeds to leave" = "seeds were not permitted to leave"
    ("The port authorities did not allow live cattle to leave the island.",
     "Live cattle were permitted to leave the island.", True),
    # a plural subject and its singular modifier name the same people
    ("The Vikings never reached the inland lakes.", "Viking traders eventually reached the inland lakes.", True),
])
def test_neg_flip_reads_soft_counterparts_obligation_and_the_passive(verifier, source, rewrite, flipped):
    f = _features(verifier, source, rewrite)
    assert (f["neg_flip"].value > 0) == flipped, f["neg_flip"]
