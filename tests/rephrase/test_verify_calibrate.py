"""Calibration on the labelled set: the combined verifier must reject unfaithful rewrites with precision and
recall >= 0.9, while the embedding cosine alone is measured to be a poor separator (AUROC below chance)."""
import json
from collections import Counter

import pytest

from rephrase.verify import CHECKS, VerifierSpec, calibrate
from rephrase.verify.calibrate import HELDOUT, LABELLED, _replay, auroc, prf, read_jsonl
from rephrase.verify.overlap import ngram_overlap

CORRUPTIONS = {"number", "entity", "negation", "omission", "addition", "unit", "date", "near_copy"}


@pytest.fixture(scope="module")
def report():
    return calibrate(LABELLED, VerifierSpec())


def test_labelled_set_is_well_formed():
    rows = read_jsonl(LABELLED)
    assert 80 <= len(rows) <= 150
    assert len({r["id"] for r in rows}) == len(rows)
    kinds = Counter(r["corruption"] for r in rows if not r["faithful"])
    assert set(kinds) == CORRUPTIONS and min(kinds.values()) >= 5
    for r in rows:
        assert isinstance(r["faithful"], bool) and (r["corruption"] is None) == r["faithful"]
        if r["faithful"]:  # faithful rewrites are genuinely reworded, never copies
            assert ngram_overlap(r["source"], r["rewrite"]) < 0.2, r["id"]
    styles = Counter(r["style"] for r in rows if r["faithful"])
    assert len(styles) >= 5


def test_verifier_precision_recall_and_auroc(report):
    v = report.verifier
    assert v["precision"] >= 0.9 and v["recall"] >= 0.9, report.format()
    assert v["faithful_accepted"] >= 0.85, report.format()
    # the motivating failure: cosine alone ranks corrupted near-copies above faithful restylings
    assert report.auroc_cosine < 0.5
    assert report.auroc_combined >= 0.9 and report.auroc_combined > report.auroc_cosine + 0.4


def test_every_corruption_kind_is_mostly_caught(report):
    for kind, m in report.per_corruption.items():
        # additions with no new number or name ("Plants also breathe in oxygen at night.") stay close to the
        # source in embedding space; only the optional LLM judge can see them, hence the lower bar
        assert m["rejected"] / m["n"] >= (0.7 if kind == "addition" else 0.8), (kind, m)
    assert report.per_corruption["near_copy"]["caught_by"] == {"near_copy": 14}
    # each targeted check does the catching for its own kind of corruption
    assert report.per_corruption["date"]["caught_by"]["numbers"] == report.per_corruption["date"]["n"]
    assert report.per_corruption["entity"]["caught_by"]["entities"] >= 12
    assert report.per_corruption["negation"]["caught_by"]["negation"] >= 8


def test_per_check_report_and_sweeps(report):
    assert set(report.per_check) == set(VerifierSpec().checks)
    assert report.per_check["near_copy"]["precision"] == 1.0
    assert report.per_check["numbers"]["precision"] >= 0.9
    for name, rows in report.sweeps.items():
        assert [r["value"] for r in rows] == list(CHECKS[name].grid)
    # the suggested spec is valid and never worse on this set than the one it started from
    assert isinstance(report.spec, VerifierSpec)
    assert report.suggested_verifier["f1"] >= report.verifier["f1"]
    json.dumps(report.to_dict())  # JSON-able for bench/results and the CLI
    assert "AUROC cosine alone" in report.format()


def test_replay_reproduces_recorded_verdicts(report):
    """Sweeps re-decide pass/fail from scores; at the recorded thresholds they must agree with the checks."""
    from rephrase.verify import CheckResult
    thr = VerifierSpec().thresholds.model_dump()
    results = [[CheckResult(k, s, k not in {r.split(":")[0] for r in row["reasons"]}) for k, s in
                row["scores"].items()] for row in report.rows]
    for checks, passes in zip(results, _replay(results, thr)):
        assert [c.passed for c in checks] == passes


def test_pairs_form_and_bad_labels(tmp_path):
    spec = VerifierSpec(checks=["numbers", "near_copy"])
    rep = calibrate(spec, [("It has 3 legs.", "Three legs it has."), ("It has 3 legs.", "It has 4 legs.")],
                    [True, False], sweep=False)
    assert rep.verifier["precision"] == 1.0 and rep.verifier["recall"] == 1.0 and rep.n == 2
    bad = tmp_path / "l.jsonl"
    bad.write_text(json.dumps({"source": "a", "rewrite": "b", "faithful": "maybe"}) + "\n")
    with pytest.raises(ValueError, match=r"l.jsonl:1: field 'faithful'"):
        calibrate(bad, spec)


def test_metric_helpers():
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    m = prf([True, True, False, False], [True, False, True, False])
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["faithful_accepted"] == 0.5


@pytest.mark.slow
def test_heldout_set_generalises():
    """Rows written after the thresholds were fixed (see rephrase/data/labelled.md): lower bars than the tuning set."""
    rep = calibrate(HELDOUT, VerifierSpec(), sweep=False)
    assert rep.verifier["recall"] >= 0.9 and rep.verifier["precision"] >= 0.85, rep.format()
    assert rep.auroc_cosine < 0.5 < rep.auroc_combined
