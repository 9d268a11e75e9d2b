"""Rewriting jobs run in small units (pieces of a shard): a crash or a kill -9 mid-shard resumes inside the shard,
finished units are never regenerated, and the outputs equal an uninterrupted run's; a Ray actor killed mid-job is
replaced and the job completes.

Fakes (named so): EchoEngine answers every chunk with its own source text (deterministic, so runs compare
exactly; the real seeded engine is used by the kill -9 test), KillOnceStage kills its own process once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from corpus.events import Progress
from corpus.schema import table_from_docs
from corpus.shards import write_table
from rephrase.engines.base import Completion, Engine
from rephrase.run import plan_units, run_rephrase
from rephrase.stage import RewriteStage
from tests.rephrase.test_run import make_spec

ROOT = Path(__file__).resolve().parents[2]
SHARDS = [
    [{"id": "nile", "domain": "knowledge", "text": "The Nile is about 6,650 km long and flows north."},
     {"id": "web1", "domain": "web", "text": "Buy cheap shoes today at our store."},
     {"id": "moon", "domain": "knowledge", "text": "The Moon is 384,400 km from Earth on average."},
     {"id": "alps", "domain": "knowledge", "text": "Mont Blanc, at 4,806 m, is the highest peak of the Alps."}],
    [{"id": "ice", "domain": "knowledge", "text": "Water freezes at 0 degrees Celsius at sea level."}],
]


class EchoEngine(Engine):
    """FAKE engine: answers each chunk with the chunk's source text (whitespace tokens)."""
    name, model, max_concurrency, context_length = "echo-fake", "echo", 4, 8192

    async def generate(self, req) -> Completion:
        source = req.messages[-1]["content"].rsplit("Text to rewrite:\n", 1)[-1]
        return Completion(source, self.prompt_tokens(req.messages), self.count_tokens(source), "stop")

    def encode(self, text: str) -> list[int]:
        return list(range(len(text.split())))

    def prompt_tokens(self, messages) -> int:
        return sum(self.count_tokens(m["content"]) for m in messages)


class EchoStage(RewriteStage):
    def build_engine(self):
        return EchoEngine()


class SimulatedCrash(Exception):
    pass


class CrashAfterOneUnit(EchoStage):
    """Fault injector: one unit, then a crash as a killed worker's."""

    def process(self, unit):
        if getattr(self, "units_done", 0):
            raise SimulatedCrash(unit.id)
        self.units_done = 1
        return super().process(unit)


class CountingReal(RewriteStage):
    """The real stage, recording which units it processed."""

    def process(self, unit):
        self.processed = getattr(self, "processed", []) + [unit.id]
        return super().process(unit)


class Counting(EchoStage, CountingReal):
    pass


class KillOnceStage(EchoStage):
    """Fault injector: SIGKILLs its own process (a Ray actor) on the second unit of shard 0, once; every finished
    unit is logged, so the test can count how often each ran."""

    def process(self, unit):
        flag = Path(self.spec.output).parent / "killed-once"
        if unit.params["shard"] == "part-00000.parquet" and unit.params["start"] == 1 and not flag.exists():
            flag.write_text(unit.id)
            os.kill(os.getpid(), signal.SIGKILL)
        stats = super().process(unit)
        with open(Path(self.spec.output).parent / "finished.log", "a") as f:
            f.write(unit.id + "\n")
        return stats


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "in"
    for i, docs in enumerate(SHARDS):
        write_table(d / f"docs-{i:05d}.parquet", table_from_docs(docs))
    return d


def tables(out: Path) -> dict:
    return {p.name: (pq.read_table(p).to_pylist(), pq.read_table(out / ".k2forge" / "rejects" / p.name).to_pylist())
            for p in sorted(out.glob("part-*.parquet"))}


def test_units_are_pieces_of_shards_and_a_crash_mid_shard_resumes_there(inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("K2FORGE_UNIT_DOCS", "2")
    ref = tmp_path / "ref"
    run_rephrase(make_spec(inputs, ref), stage=EchoStage(make_spec(inputs, ref)))
    units = plan_units(make_spec(inputs, ref))
    assert [(u.params["shard"], u.params["start"], u.params["stop"]) for u in units] == \
        [("part-00000.parquet", 0, 2), ("part-00000.parquet", 2, 4), ("part-00001.parquet", 0, 1)]
    assert not (ref / ".k2forge" / "units").exists() or not any((ref / ".k2forge" / "units").iterdir())

    out = tmp_path / "out"
    spec = make_spec(inputs, out)
    events: list = []
    with pytest.raises(SimulatedCrash):
        run_rephrase(spec, events.append, stage=CrashAfterOneUnit(spec))
    assert not (out / "part-00000.parquet").exists(), "a shard is assembled only when all its units are done"
    key = units[0].id.split("-")[2]
    assert (out / ".k2forge" / "units" / "part-00000" / f"{key}-00000.parquet").exists()
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].extra == {"docs_done": 2, "docs_total": 5}, progress
    resumed = Counting(spec)
    run_rephrase(spec, stage=resumed)
    assert resumed.processed == [units[1].id, units[2].id], "a finished unit of the shard was redone"
    assert tables(out) == tables(ref), "interrupted + resumed run differs from the uninterrupted run"
    assert not any((out / ".k2forge" / "units").iterdir()), "pieces are dropped once their shard is assembled"
    index = json.loads((out / ".k2forge" / "index.json").read_text())
    assert [s["path"] for s in index["shards"]] == ["part-00000.parquet", "part-00001.parquet"]


def test_shards_an_earlier_version_finished_as_one_unit_are_not_redone(inputs, tmp_path):
    out = tmp_path / "old"
    spec = make_spec(inputs, out)
    run_rephrase(spec, stage=EchoStage(spec))
    before, stats = tables(out), json.loads((out / ".k2forge" / "stats.json").read_text())
    markers = out / ".k2forge" / "done" / "rephrase"
    units = plan_units(spec)                 # one unit per shard here: what an earlier version ran, by its id
    for u in units:
        (markers / f"{u.id}.json").rename(markers / f"{u.params['whole']}.json")
    again = Counting(spec)
    run_rephrase(spec, stage=again)
    assert getattr(again, "processed", []) == [], "a finished shard was regenerated"
    assert tables(out) == before and json.loads((out / ".k2forge" / "stats.json").read_text()) == stats
    (markers / f"{units[1].params['whole']}.json").unlink()     # a part file nothing vouches for is rebuilt
    rebuilt = Counting(spec)
    run_rephrase(spec, stage=rebuilt)
    assert rebuilt.processed == [units[1].id] and tables(out) == before


@pytest.mark.slow
def test_kill9_of_a_real_run_mid_shard_resumes_inside_it(inputs, tmp_path, monkeypatch):
    """The real seeded engine; the run is a separate process killed with SIGKILL after its first unit."""
    monkeypatch.setenv("K2FORGE_UNIT_DOCS", "1")
    ref = tmp_path / "ref"
    run_rephrase(make_spec(inputs, ref))
    out = tmp_path / "out"
    spec = make_spec(inputs, out)
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(yaml.safe_dump(json.loads(spec.model_dump_json())))
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "--quiet", "rephrase", "run", "--spec", str(spec_file)],
                            cwd=ROOT, env={**os.environ, "K2FORGE_UNIT_DOCS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    markers = out / ".k2forge" / "done" / "rephrase"
    deadline = time.monotonic() + 300
    while not (markers.is_dir() and any(markers.glob("*.json"))):
        assert proc.poll() is None, f"the run exited before its first unit: {proc.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "no unit finished in 300 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.stem for p in markers.glob("*.json")}
    units = plan_units(spec)
    assert 0 < len(finished) < len(units), "the kill must land mid-run"
    assert not (out / "part-00000.parquet").exists(), "the kill must land inside shard 0"
    resumed = CountingReal(spec)
    run_rephrase(spec, stage=resumed)
    assert set(resumed.processed) == {u.id for u in units} - finished, "finished units were regenerated"
    assert tables(out) == tables(ref), "killed + resumed run differs from the uninterrupted run"


@pytest.mark.slow
def test_a_ray_actor_killed_mid_job_is_replaced_and_the_job_completes(inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("K2FORGE_UNIT_DOCS", "1")
    ref = tmp_path / "ref"
    run_rephrase(make_spec(inputs, ref), stage=EchoStage(make_spec(inputs, ref)))
    work = tmp_path / "ray"
    work.mkdir()
    spec = make_spec(inputs, work / "out", executor={"kind": "ray", "workers": 1})
    run_rephrase(spec, stage=KillOnceStage(spec))
    assert (work / "killed-once").exists(), "the fault was never injected"
    finished = (work / "finished.log").read_text().split()
    assert sorted(finished) == sorted(u.id for u in plan_units(spec)), "each unit finished exactly once"
    assert tables(work / "out") == tables(ref)
