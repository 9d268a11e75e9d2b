"""The rephrase-vs-repeat probe end to end (evidence.probe): a miniature run in the default stage with a scripted
engine (the real rephrase stage and verifier, training and eval), and the small size with the embedded model in
the slow stage. Both check that the artifacts agree with each other: equal budgets as planned, no eval question
in any training shard, the gap rule's counts, and report numbers equal to the eval files."""
import json
import re
import statistics
from pathlib import Path

import pytest

from evidence.probe import run_rephrase_vs_repeat
from evidence.spec import RephraseVsRepeatSpec
from evidence.world import make_people

from .paraphrase_engine import ParaphraseEngine, ParaphraseStage


def _verified_count(person_id: str, variants: int) -> int:
    """The scripted yield: person i gets i % (V + 1) faithful variants (0, 1, 2, ... of V)."""
    return int(person_id.split("-")[1]) % (variants + 1)


def check_consistent(res: dict, out: Path) -> None:
    runs, arms = res["runs"], res["arms"]
    # equal budgets as planned: same allotment, same samples, same steps and tokens seen in every run
    assert len({(a["allotted_tokens"], a["samples"]) for a in arms.values()}) == 1
    assert {a["allotted_tokens"] for a in arms.values()} == {res["budget"]["bio_tokens"] + res["budget"]["qa_tokens"]}
    seen = {(r["steps"], r["tokens_seen"]) for rs in runs.values() for r in rs}
    assert seen == {(res["budget"]["steps"], res["budget"]["train_tokens"])}
    for name, a in arms.items():
        manifest = json.loads(Path(a["manifest"]).read_text())
        bio = next(s for s in manifest["sources"] if s["name"] == "bio")
        assert bio["allotted_tokens"] == res["budget"]["bio_tokens"]
        assert a["docs"] == res["people"] * a["docs_per_person"] == sum(a["fill"].values())
    # no eval question in any packed training shard, decoded independently of the probe's own check
    from corpus.indexed import IndexedDataset
    from corpus.tokenizer import load_tokenizer
    tok = load_tokenizer(res["tokenizer"])
    questions = [json.loads(line) for line in Path(res["world"]["questions"]).read_text().splitlines()]
    assert len(questions) == res["questions"] > 0
    packed = [Path(a["packed"]) for a in arms.values()] + [Path(res["budget"]["qa_packed"])]
    for d in packed:
        bins = sorted(d.glob("*.bin"))
        assert bins, d
        text = "".join(tok.tok.decode(IndexedDataset(str(b.with_suffix(""))).tokens.tolist()) for b in bins)
        assert "Q: When was" in text or "qa" not in d.parts[-2]          # the Q/A source is really there
        for q in questions:
            assert q["prompt"] not in text, (d, q["prompt"])
    assert set(res["leak_check"].values()) == {0}
    # the report's numbers equal the eval files
    table = json.loads((out / "results.json").read_text())["table"]
    report = (out / "report.md").read_text()
    for name, rs in runs.items():
        evals = [json.loads(Path(r["eval"]).read_text()) for r in rs]
        for m in ("qa_exact", "qa_ranked", "heldout_value_loss"):
            vals = [e[m] for e in evals]
            assert table[name][m]["mean"] == pytest.approx(statistics.fmean(vals))
            assert table[name][m]["std"] == pytest.approx(statistics.stdev(vals) if len(vals) > 1 else 0.0)
        for e in evals:   # each eval's score is its answers' mean
            held = [a for a in e["answers"] if a["wording"] == "heldout"]
            assert e["qa_exact"] == pytest.approx(statistics.fmean(a["exact"] for a in held))
        mean = 100 * table[name]["qa_exact"]["mean"]
        assert re.search(rf"\| {mean:.1f} ± ", report), (name, mean)
    assert Path(res["plot"]).exists() and Path(res["plot"]).stat().st_size > 0


def test_miniature_end_to_end_with_scripted_engine(tmp_path):
    spec = RephraseVsRepeatSpec(output=str(tmp_path / "probe"), size="tiny",
                                arms=["raw_x10", "reph_1x10", "reph_10x1", "control_10x1"])
    people = make_people(spec.people, spec.seed, spec.qa_train_fraction)
    V = spec.n_variants
    engine = ParaphraseEngine(people, lambda doc, v: v < _verified_count(doc, V), V)
    res = run_rephrase_vs_repeat(spec, make_stage=lambda rspec: ParaphraseStage(rspec, engine))
    check_consistent(res, Path(spec.output))
    y = res["yield"]
    assert y["asked"] == y["variants"] == spec.people * V
    want = {p.id: _verified_count(p.id, V) for p in people}
    # the real verifier decides; the scripted faithful paraphrases should all pass, the off-topic text never
    assert y["accepted"] == y["kept"] == sum(want.values())
    assert y["facts_verbatim"]["kept_with_all"] == y["kept"]          # template paraphrases keep every value
    # the gap rule: reph_10x1 slots = verified rephrasings, then cycle over [raw, v_1..v_n]
    fill = res["arms"]["reph_10x1"]["fill"]
    assert fill.get("rephrasing", 0) == sum(want.values())
    assert fill.get("fill_raw", 0) == sum(_fill_raw(n, V) for n in want.values())
    assert res["arms"]["reph_1x10"]["fill"].get("fill_raw", 0) == sum(1 for n in want.values() if n == 0)
    assert res["arms"]["control_10x1"]["fill"] == {"control": spec.people * V}


def _fill_raw(n: int, slots: int) -> int:
    """Raw copies among the slots n..slots-1, which cycle over [raw, v_1..v_n]."""
    return sum(1 for k in range(n, slots) if (k - n) % (n + 1) == 0)


@pytest.mark.slow
def test_small_size_with_embedded_model(tmp_path):
    spec = RephraseVsRepeatSpec(output=str(tmp_path / "probe"), size="small")
    res = run_rephrase_vs_repeat(spec)
    check_consistent(res, Path(spec.output))
    assert res["yield"]["asked"] == spec.people * spec.n_variants
    assert len(res["runs"]["raw_x10"]) == len(spec.train_seeds) >= 3
