"""Typed job events: every type survives to_dict -> JSON -> from_dict, bad events are refused naming the field,
and the executor reports each finished unit and the end of its stage in the one vocabulary (done/total)."""
from __future__ import annotations

import json
import logging

import pytest

from corpus.events import Event, Log, Metrics, Progress, StageDone, State
from corpus.executor import LocalExecutor, Stage, Unit, done_marker

EXAMPLES = [
    Progress(3, 5, stage="dedup-bands", unit="00002-b"),
    Progress(7, 10, stage="train", extra={"loss": 2.5}),
    Progress(0),
    Log("ingest: 2 input(s), 0 already done"),
    Log("attempt 1 lost", "warning"),
    StageDone("pack", {"units": 2, "skipped": 1}),
    Metrics(4, {"eval_loss": 3.25, "eval_tokens": 512}),
    State("failed", "ValueError: bad"),
    State("queued"),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.type)
def test_every_event_round_trips_through_json(event):
    data = json.loads(json.dumps(event.to_dict()))
    assert data["type"] == event.type
    assert Event.from_dict(data) == event
    assert type(event).from_dict(data) == event


def test_the_wire_form_is_flat_and_leaves_out_what_is_not_set():
    assert Progress(7, 10, stage="train", extra={"loss": 2.5}).to_dict() == \
        {"type": "progress", "done": 7, "total": 10, "stage": "train", "loss": 2.5}
    assert Progress(1).to_dict() == {"type": "progress", "done": 1}
    assert State("queued").to_dict() == {"type": "state", "state": "queued"}
    assert Log("hi").to_dict() == {"type": "log", "message": "hi", "level": "info"}


@pytest.mark.parametrize("data, match", [
    ({"type": "progress", "total": 3}, "progress event: field done is required"),
    ({"type": "progress", "done": True}, "done must be a whole number"),
    ({"type": "progress", "done": -1}, "done must be a whole number"),
    ({"type": "progress", "done": 1, "total": "many"}, "total must be a whole number"),
    ({"type": "log", "message": "x", "level": "WARNING"}, "level 'WARNING' is not one of"),
    ({"type": "log", "message": "x", "colour": "red"}, "log event: unknown field.*colour"),
    ({"type": "log"}, "log event: .*message"),
    ({"type": "state", "state": "done"}, "state 'done' is not one of"),
    ({"type": "units", "done": 1}, "unknown type 'units'"),
    ({"done": 1}, "unknown type None"),
])
def test_a_bad_event_is_refused_naming_what_is_wrong(data, match):
    with pytest.raises(ValueError, match=match):
        Event.from_dict(data)


def test_a_subclass_reads_only_its_own_type_and_extras_cannot_hide_fields():
    with pytest.raises(ValueError, match="expected a progress event, got a log event"):
        Progress.from_dict({"type": "log", "message": "x"})
    with pytest.raises(ValueError, match="would hide a field"):
        Progress(1, extra={"done": 2})


def test_a_log_record_becomes_a_log_event_at_its_named_level():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "%d shards", (3,), None)
    assert Log.from_record(record) == Log("3 shards", "warning")
    record.levelno = 25      # a custom level between INFO and WARNING
    assert Log.from_record(record).level == "info"


class Echo(Stage):
    name = "echo"

    def process(self, unit: Unit) -> dict:
        with open(unit.output, "w") as f:
            f.write(unit.id)
        return {"id": unit.id}


def test_the_executor_reports_each_unit_done_of_total_and_the_end_of_its_stage(tmp_path):
    units = [Unit(f"u{i}", (), str(tmp_path / f"u{i}.txt")) for i in range(3)]
    events: list[Event] = []
    LocalExecutor().run(Echo(), units[:1], tmp_path, on_event=events.append)
    assert events == [Progress(1, 1, stage="echo", unit="u0"), StageDone("echo", {"units": 1, "skipped": 0})]
    events.clear()
    stats = LocalExecutor().run(Echo(), units, tmp_path, on_event=events.append)    # u0 is done already
    assert stats == [{"id": u.id} for u in units] and done_marker(tmp_path, "echo", "u2").exists()
    assert events == [Progress(2, 3, stage="echo", unit="u1"), Progress(3, 3, stage="echo", unit="u2"),
                      StageDone("echo", {"units": 3, "skipped": 1})]
