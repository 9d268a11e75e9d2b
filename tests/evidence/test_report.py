"""The report's arithmetic (evidence.report): seed summaries, the ordering verdict, and the SVG fallback plot."""
import math

from evidence.report import summarize, verdict, write_svg


def _tab(**means):
    return {arm: {"qa_exact": summarize(vals)} for arm, vals in means.items()}


def test_summarize():
    s = summarize([0.1, 0.2, 0.3])
    assert math.isclose(s["mean"], 0.2) and math.isclose(s["std"], 0.1) and s["n"] == 3
    assert summarize([0.5])["std"] == 0.0
    assert summarize([])["n"] == 0


def test_verdict_ordering_and_spread():
    v = verdict(_tab(raw_x10=[0.1, 0.12, 0.11], reph_1x10=[0.2, 0.21, 0.19], reph_10x1=[0.3, 0.31, 0.29],
                     control_10x1=[0.05, 0.06, 0.07]))
    assert v["llm_ordering_holds"] and all(g["beyond_spread"] for g in v["llm_steps"])
    assert v["control_beats_raw"] is False and math.isclose(v["control"]["delta"], -0.05)
    flat = verdict(_tab(raw_x10=[0.1, 0.3], reph_1x10=[0.25, 0.05], reph_10x1=[0.3, 0.1]))
    assert not flat["llm_ordering_holds"]                      # 1 reph x10 below raw on the mean
    noisy = verdict(_tab(raw_x10=[0.1, 0.3], reph_1x10=[0.15, 0.35], reph_10x1=[0.2, 0.4]))
    assert noisy["llm_ordering_holds"] and not any(g["beyond_spread"] for g in noisy["llm_steps"])
    assert verdict(_tab(raw_x10=[0.1]))["control"] is None


def test_svg_fallback(tmp_path):
    p = write_svg(_tab(raw_x10=[0.1, 0.2], control_10x1=[0.3, 0.4]), tmp_path / "plot.svg")
    text = p.read_text()
    assert text.startswith("<svg") and text.count("<rect") == 2 and "control_10x1" in text and "35.0%" in text


def test_diagnosis_says_what_filling_the_arm_would_take():
    from evidence.report import diagnosis
    results = {"people": 16, "budget": {"variants": 10},
               "yield": {"acceptance_rate": 0.0625, "asked": 160, "seconds": 800.0},
               "arms": {"reph_10x1": {"fill": {"rephrasing": 10, "fill_raw": 140, "fill_repeat": 10}}}}
    lines = diagnosis(results, {})
    # 10 verified per passage at 6.25% acceptance: 160 samples per passage, 16x this run's 10 per passage
    assert any("~160 samples per passage" in s and "~213 min" in s for s in lines), lines
    results["yield"]["acceptance_rate"] = 0.0
    assert any("no variant passed" in s for s in diagnosis(results, {}))
    results["yield"]["acceptance_rate"] = 0.95
    assert not any("samples per passage" in s for s in diagnosis(results, {}))
