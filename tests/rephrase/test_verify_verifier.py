"""The Verifier end to end with the real offline MiniLM: verdicts, reasons, the registry, async, verify_file."""
import asyncio
import json

import pytest

from corpus.schema import table_from_docs
from rephrase.verify import (CHECKS, CheckResult, Verdict, Verifier, VerifierSpec, register_check,
                             verify_file)
from rephrase.verify.base import threshold_check

SOURCE = ("Marie Curie was born in Warsaw on 7 November 1867. In 1903 she shared the Nobel Prize in Physics with "
          "Pierre Curie and Henri Becquerel. She never patented the process for isolating radium.")
FAITHFUL = ("Q: Where was Marie Curie born? A: In Warsaw, on November 7, 1867. Q: What prize did she share in 1903? "
            "A: The physics Nobel Prize, together with Pierre Curie and Henri Becquerel. Q: Did she patent her "
            "radium isolation process? A: No, she never did.")


@pytest.fixture(scope="module")
def verifier():
    return Verifier(VerifierSpec())


def test_faithful_restyle_accepted_and_corruptions_rejected_with_reasons(verifier):
    pairs = [(SOURCE, FAITHFUL),
             (SOURCE, SOURCE),
             (SOURCE, FAITHFUL.replace("1867", "1868")),
             (SOURCE, FAITHFUL.replace("Henri Becquerel", "Ernest Rutherford")),
             (SOURCE, FAITHFUL.replace("No, she never did.", "Yes, she did.")),
             (SOURCE, "Photosynthesis turns carbon dioxide and water into glucose using the energy of light.")]
    v = verifier.verify_batch(pairs)
    assert v[0].accepted, v[0].reasons
    assert not v[1].accepted and v[1].reasons[0].startswith("near_copy:")
    # the consistency model's reason names the feature that weighed most and what it saw
    assert any(r.startswith("consistency:") and "num_extra" in r and "1868" in r for r in v[2].reasons), v[2].reasons
    assert any(r.startswith("consistency:") and "Rutherford" in r for r in v[3].reasons), v[3].reasons
    # a flipped answer moves the consistency score the right way; the default model does not always reject it
    # (negation is its weakest kind, see rephrase/data/README.md), the stricter rule check does
    assert v[4].scores["consistency"] > v[0].scores["consistency"]
    [strict] = Verifier(VerifierSpec(checks=["negation"])).verify_batch([pairs[4]])
    assert not strict.accepted and strict.reasons[0].startswith("negation:")
    assert any(r.startswith("embedding:") for r in v[5].reasons)
    assert set(v[0].scores) == set(VerifierSpec().checks)


def test_generator_failures_seen_in_the_demo_are_rejected(verifier):
    """The embedded model's two rewrites that passed a demo run: the source copied whole and padded with commentary
    about the rewriting, and a rewrite that echoes the prompt's "Text to rewrite:" label."""
    padded = SOURCE + ("\n\nEmphasis added: The original text was rewritten in the tone of a university lecturer, "
                       "with a more relaxed and conversational tone.")
    echoed = FAITHFUL + "\n\nText to rewrite:\nMarie Curie was a famous scientist who discovered many things."
    talk = FAITHFUL + " This rewritten version keeps the facts of the original text."
    v = verifier.verify_batch([(SOURCE, padded), (SOURCE, echoed), (SOURCE, talk)])
    assert not v[0].accepted and any(r.startswith("near_copy:") for r in v[0].reasons), v[0].reasons
    assert any(r.startswith("meta:") and "Emphasis added" in r for r in v[0].reasons), v[0].reasons
    assert not v[1].accepted and any(r.startswith("meta:") and "Text to rewrite" in r for r in v[1].reasons)
    assert not v[2].accepted and any(r.startswith("meta:") and "rewritten" in r for r in v[2].reasons)
    # a source about rewriting may be rewritten in those words
    about = "Scribes rewrote damaged scrolls by hand, and a rewritten scroll was checked against the original text."
    [ok] = Verifier(VerifierSpec(checks=["meta"])).verify_batch(
        [(about, "By hand, scribes rewrote scrolls that were damaged; each rewritten scroll was then compared with "
                 "the original text.")])
    assert ok.accepted, ok.reasons


def test_omission_and_addition_name_the_sentence():
    verifier = Verifier(VerifierSpec(checks=["omission", "addition"], thresholds={"min_omission_sim": 0.45,
                                                                                  "min_addition_sim": 0.4}))
    src = ("The Amazon River flows about 6,400 kilometres from Peru to the Atlantic. Its basin covers roughly 7 "
           "million square kilometres. Piranhas and river dolphins live in its waters.")
    dropped = ("Stretching about 6,400 km, the Amazon runs from Peru to the Atlantic Ocean. Its drainage basin "
               "spans some 7 million km2.")
    [v] = verifier.verify_batch([(src, dropped)])
    assert not v.accepted
    assert any(r.startswith("omission: source sentence 3") and "Piranhas" in r for r in v.reasons), v.reasons
    added = ("Stretching about 6,400 km, the Amazon runs from Peru to the Atlantic Ocean. Its drainage basin "
             "spans some 7 million km2. Piranhas and river dolphins inhabit it. Gold mining along its banks "
             "poisons fish with mercury every year.")
    [v] = verifier.verify_batch([(src, added)])
    assert any(r.startswith("addition: rewrite sentence 4") for r in v.reasons), v.reasons


def test_fidelity_dict_fits_the_document_schema(verifier):
    [v] = verifier.verify_batch([(SOURCE, SOURCE)])
    fid = v.to_fidelity()
    assert fid["accepted"] is False and fid["reasons"] and set(fid["scores"]) >= {"near_copy", "embedding"}
    table = table_from_docs([{"id": "x", "text": "t", "domain": "knowledge", "fidelity": fid}], synthetic=True)
    assert table.column("fidelity")[0].as_py()["accepted"] is False


def test_registered_check_is_used_and_replayable():
    def no_exclamations(source, rewrite, ctx):
        n = rewrite.count("!")
        return threshold_check("test_exclaim", float(n), ctx, f"{n} exclamation marks")

    register_check("test_exclaim", no_exclamations, threshold="max_negation_flips", direction="max")
    try:
        spec = VerifierSpec(checks=["numbers", "test_exclaim"])
        v = Verifier(spec).verify_batch([("It has 3 legs.", "Wow! It has three legs!")])[0]
        assert [c.name for c in v.checks] == ["numbers", "test_exclaim"]
        assert not v.accepted and v.reasons == ["test_exclaim: 2 exclamation marks"]
        with pytest.raises(ValueError, match="already registered"):
            register_check("test_exclaim", no_exclamations)
    finally:
        CHECKS.pop("test_exclaim", None)


def test_averify_batch_matches_sync(verifier):
    pairs = [(SOURCE, FAITHFUL), (SOURCE, SOURCE)]
    sync = verifier.verify_batch(pairs)
    asyn = asyncio.run(verifier.averify_batch(pairs))
    assert [v.to_fidelity() for v in asyn] == [v.to_fidelity() for v in sync]


def test_bad_pairs_are_named():
    with pytest.raises(ValueError, match=r"pair 1: rewrite is empty"):
        Verifier(VerifierSpec(checks=["numbers"])).verify_batch([("a", "b"), ("a", "  ")])


def test_verify_file_writes_atomically_and_names_bad_lines(tmp_path):
    good = tmp_path / "pairs.jsonl"
    good.write_text(json.dumps({"id": "a", "source": SOURCE, "rewrite": SOURCE}) + "\n"
                    + json.dumps({"source": "It has 3 legs.", "rewrite": "It has four legs."}) + "\n")
    out = tmp_path / "verdicts.jsonl"
    summary = verify_file(good, out, VerifierSpec(checks=["numbers", "near_copy"]))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert summary["rows"] == 2 and summary["accepted"] == 0
    assert [r["id"] for r in rows] == ["a", 2]
    assert rows[1]["reasons"] == ["numbers: missing in rewrite '3'; not in source '4'"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"source": "x", "rewrite": "y"}) + "\n" + json.dumps({"source": "x"}) + "\n")
    out2 = tmp_path / "v2.jsonl"
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'rewrite'"):
        verify_file(bad, out2)
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not valid JSON"):
        verify_file(bad, out2)
    assert not out2.exists() and not list(tmp_path.glob(".v2.jsonl*"))


def test_verdict_helpers():
    v = Verdict.of([CheckResult("a", 1.0, True), CheckResult("b", 0.2, False, "too low")])
    assert not v.accepted and v.reasons == ["b: too low"] and v.scores == {"a": 1.0, "b": 0.2}


def test_embeddings_are_cached_across_calls(monkeypatch):
    """A source sentence verified again (another variant, a retry) is not encoded again, and its vector is the
    one the first call computed."""
    from rephrase.verify import embed
    first = embed.encode(["The Nile flows north.", "It passes eleven countries."])
    seen = []
    model = embed.load_model(None)
    real = model.encode
    monkeypatch.setattr(model, "encode", lambda texts, **kw: seen.append(list(texts)) or real(texts, **kw))
    again = embed.encode(["It passes eleven countries.", "Aswan was finished in 1970.", "The Nile flows north."])
    assert seen == [["Aswan was finished in 1970."]]
    assert (again[0] == first[1]).all() and (again[2] == first[0]).all()
    fresh = real(["Aswan was finished in 1970."], normalize_embeddings=True, convert_to_numpy=True)
    assert abs(float(again[1] @ fresh[0]) - 1.0) < 1e-5
