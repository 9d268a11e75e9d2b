"""Executor equivalence on the ingest stage: in process, a local process pool and a REAL local Ray instance write
byte-identical outputs; a Ray worker killed mid-unit has its unit redone."""
import json
import os
import sys
import time
from pathlib import Path

import pytest

from corpus.executor import LocalExecutor, RayExecutor
from corpus.ingest import IngestSpec, IngestStage, plan_units, run_ingest
from corpus.schema import SchemaError

TIMINGS: dict[str, float] = {}


def _inputs(root: Path) -> Path:
    root.mkdir()
    for k, dom in enumerate(["web", "code", "math", "knowledge"]):
        rows = [{"text": f"{dom} document {i}: " + f"token{i * 7 % 13} " * (20 + i % 50), "domain": dom}
                for i in range(300)]
        rows[17] = {"text": "   ", "domain": dom}  # one skip per file, so the stats are compared too
        (root / f"{dom}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def _outputs(out: Path) -> dict[str, bytes]:
    """Every file under the output except the saved spec (it records which executor ran)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "spec.yaml"}


def _spec(src: Path, out: Path, kind: str, workers: int) -> IngestSpec:
    return IngestSpec(inputs=[str(src / "*.jsonl")], output=str(out), on_error="skip", shard_bytes=50_000,
                      executor={"kind": kind, "workers": workers})


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    TIMINGS["ray_init_s"] = time.perf_counter() - t0
    # The fault-injecting stage below lives in this test module, which Ray workers cannot import by name.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def test_local_pool_and_ray_write_identical_bytes(tmp_path, ray_local):
    src = _inputs(tmp_path / "in")
    results = {}
    for kind, workers in [("local", 1), ("local", 2), ("ray", 2)]:
        out = tmp_path / f"out-{kind}-{workers}"
        t0 = time.perf_counter()
        res = run_ingest(_spec(src, out, kind, workers))
        TIMINGS[f"{kind}_workers{workers}_s"] = time.perf_counter() - t0
        assert res["rows_out"] == 4 * 299 and res["skipped"] == {"empty_text": 4} and res["shards"] > 4
        results[(kind, workers)] = _outputs(out)
    ref = results[("local", 1)]
    assert results[("local", 2)] == ref
    assert results[("ray", 2)] == ref
    print("executor timings (s):", json.dumps({k: round(v, 2) for k, v in TIMINGS.items()}))


class CrashOnceIngestStage(IngestStage):
    """Fault injection: the first attempt at the unit for `crash_rel` writes part of its output and then kills
    its worker process (os._exit, no cleanup), as an OOM kill or a lost node would."""
    name = "ingest"

    def __init__(self, opts, shard_bytes, flag: str, crash_rel: str):
        super().__init__(opts, shard_bytes)
        self.flag, self.crash_rel = flag, crash_rel

    def process(self, unit):
        if unit.params["rel"] == self.crash_rel and not os.path.exists(self.flag):
            Path(self.flag).write_text(str(os.getpid()))
            staging = Path(unit.output) / f".staging-{unit.id}"
            staging.mkdir(parents=True, exist_ok=True)
            (staging / f"{unit.params['stem']}-00000.parquet").write_bytes(b"PAR1 half a shard")
            os._exit(1)
        return super().process(unit)


def test_ray_worker_killed_mid_unit_is_redone(tmp_path, ray_local):
    src = _inputs(tmp_path / "in")
    ref_out, out = tmp_path / "ref", tmp_path / "ray"
    run_ingest(_spec(src, ref_out, "local", 1))
    spec = _spec(src, out, "ray", 2)
    flag = tmp_path / "crashed.pid"
    stage = CrashOnceIngestStage(spec.read_options(), spec.shard_bytes, str(flag), "math.jsonl")
    units = plan_units(spec)
    stats = RayExecutor(workers=2).run(stage, units, out)
    assert flag.exists() and int(flag.read_text()) != os.getpid()  # a worker really died
    assert [s["input"] for s in stats] == [u.params["rel"] for u in units]
    assert not list(out.glob(".staging-*"))
    # every shard equals the uninterrupted run's, including the one whose first attempt was killed
    shards = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    assert shards == {p.name: p.read_bytes() for p in ref_out.glob("*.parquet")} and shards


def test_local_pool_surfaces_a_worker_error(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "good.jsonl").write_text('{"text": "fine", "domain": "web"}\n')
    (src / "zbad.jsonl").write_text('{"text": "x", "domain": "web"}\n{"text": 1, "domain": "web"}\n')
    spec = _spec(src, tmp_path / "o", "local", 2).model_copy(update={"on_error": "error"})
    stage = IngestStage(spec.read_options(), spec.shard_bytes)
    with pytest.raises(SchemaError, match=r"zbad\.jsonl:2: field 'text' must be a string"):
        LocalExecutor(workers=2).run(stage, plan_units(spec), tmp_path / "o")


def test_ray_unit_error_reaches_the_caller_unwrapped(tmp_path, ray_local):
    src = tmp_path / "in"
    src.mkdir()
    (src / "good.jsonl").write_text('{"text": "fine", "domain": "web"}\n')
    (src / "zbad.jsonl").write_text('{"text": "x", "domain": "web"}\n{"text": "y", "domain": "poetry"}\n')
    with pytest.raises(SchemaError, match=r"^\S*zbad\.jsonl:2: field 'domain' is 'poetry'") as e:
        run_ingest(_spec(src, tmp_path / "o", "ray", 2).model_copy(update={"on_error": "error"}))
    assert "Traceback" not in str(e.value) and not list((tmp_path / "o").glob("zbad-*.parquet"))
