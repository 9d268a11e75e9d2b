"""The arms' plan (evidence.arms): the gap rule, the leak filter, and the CLI's spec errors."""
import json

import pyarrow as pa
import pytest

from evidence.arms import collect_rephrasings, plan_arm
from evidence.spec import RephraseVsRepeatSpec
from evidence.world import QA_EVAL, make_people


def _row(pid: str, variant: int, text: str) -> dict:
    return {"id": f"{pid}-r{variant}", "text": text, "domain": "knowledge", "parent_id": pid, "task": "rephrase",
            "meta": json.dumps({"variant": variant})}


def test_gap_rule_cycles_raw_and_verified():
    people = make_people(4, 0)
    got = {p.id: [_row(p.id, v, f"{p.name} text {v}") for v in range(k)] for p, k in zip(people, (0, 1, 3, 10))}
    plan = plan_arm("reph_10x1", people, 10, 1.0, 0, got)
    by = {}
    for d in plan.docs:
        by.setdefault(json.loads(d["meta"]).get("person") or d["parent_id"], []).append(d)
    provs = {pid: [json.loads(d["meta"])["provenance"] for d in ds] for pid, ds in by.items()}
    p0, p1, p3, p10 = (p.id for p in people)
    assert provs[p0] == ["fill_raw"] * 10                                    # nothing verified: raw x 10
    assert provs[p1] == ["rephrasing"] + ["fill_raw", "fill_repeat"] * 4 + ["fill_raw"]
    assert provs[p3][:3] == ["rephrasing"] * 3 and provs[p3][3:7] == ["fill_raw"] + ["fill_repeat"] * 3
    assert provs[p10] == ["rephrasing"] * 10
    assert len({d["id"] for d in plan.docs}) == len(plan.docs) == 40         # copies get distinct ids
    assert plan.fill == {"fill_raw": 10 + 5 + 2, "fill_repeat": 4 + 5, "rephrasing": 14}
    one = plan_arm("reph_1x10", people, 10, 1.0, 0, got)
    assert one.fill == {"fill_raw": 1, "rephrasing": 3} and one.planned_epochs == 10
    assert plan_arm("raw_x10", people, 10, 4.0, 0, None).planned_epochs == 40


def test_rephrasings_holding_an_eval_question_are_dropped(tmp_path):
    people = make_people(4, 0)
    ev = next(p for p in people if not p.qa_train)
    leak = "Q: " + QA_EVAL["employer"].format(name=ev.name) + " A: " + ev.attrs["employer"]
    rows = [_row(ev.id, 1, "fine text"), _row(ev.id, 0, leak), _row("someone-else", 0, "x")]
    path = tmp_path / "part.parquet"
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist(rows), path)
    got, dropped = collect_rephrasings([str(path)], people)
    assert [r["text"] for r in got[ev.id]] == ["fine text"]
    assert dropped == {"leaked_eval_question": 1, "unknown_parent": 1}


def test_spec_errors_name_the_field():
    from corpus.spec import SpecError, parse_spec
    with pytest.raises(SpecError, match="arms"):
        parse_spec(RephraseVsRepeatSpec, {"output": "o", "arms": ["raw_x10", "nope"]})
    with pytest.raises(SpecError, match="lr"):
        parse_spec(RephraseVsRepeatSpec, {"output": "o", "train": {"lr": 0}})
    with pytest.raises(SpecError, match="attempts"):
        parse_spec(RephraseVsRepeatSpec, {"output": "o", "rephrase": {"attempts": 0}})
    s = parse_spec(RephraseVsRepeatSpec, {"output": "o", "size": "small", "train": {"lr": 0.5}})
    assert s.train_fields()["lr"] == 0.5 and s.people == 4 and s.n_variants == 10 and len(s.train_seeds) == 3


def test_cli_registered():
    from click.testing import CliRunner

    from api.cli import cli
    res = CliRunner().invoke(cli, ["evidence", "rephrase-vs-repeat", "--help"])
    assert res.exit_code == 0 and "--engine.kind" in res.output and "--passes" in res.output
