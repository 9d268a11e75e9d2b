"""Executors: run a Stage over Units, in process (`local`) or on Ray (`ray`), with identical results.

A Stage is one kind of work; `process(unit)` reads `unit.inputs`, writes `unit.output` atomically and returns a
JSON-able stats dict. Units are idempotent and deterministic (same id -> same output), so an executor skips every
unit that already has a done-marker, and a unit killed halfway is simply redone. Markers live in
`{output}/.k2forge/done/{stage.name}/{unit.id}.json` (corpus.layout) and hold the unit's stats; this module
is the only one that builds their paths (`done_marker`, `forget_stale`). `Executor.run(..., on_event=)` reports
a corpus.events.Progress per finished unit (`done`/`total` units of the stage, `unit` its id) and a StageDone.
"""
from __future__ import annotations

import abc
import json
import logging
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from corpus.confine import CONFINE_ENV, install_from_env
from corpus.events import OnEvent, Progress, StageDone
from corpus.layout import done_dir
from corpus.log import progress
from corpus.shards import atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unit:
    """One idempotent piece of work: usually one input shard -> one output shard."""
    id: str
    inputs: tuple[str, ...]
    output: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


class Stage(abc.ABC):
    """Base class of every stage. Must be picklable (it travels to worker processes and Ray actors)."""
    name: str = "stage"
    #: Ray resources per worker, e.g. {"num_gpus": 1} for an actor that owns an LLM engine.
    resources: dict[str, float] = {}

    def setup(self) -> None:
        """Called once per worker before its first unit (load a model, open an engine)."""

    @abc.abstractmethod
    def process(self, unit: Unit) -> dict[str, Any]:
        """Do the unit's work, write its output atomically, return stats."""


def done_marker(output: str | os.PathLike, stage: str, unit_id: str) -> Path:
    """The done-marker of unit `unit_id` of stage `stage` whose state lives in the output folder `output`."""
    return done_dir(output, stage) / f"{unit_id}.json"


def forget_stale(output: str | os.PathLike, stage: str, units: Iterable[Unit],
                 stale: Callable[[Unit, dict[str, Any]], bool]) -> int:
    """Drop the marker of every finished unit for which `stale(unit, its marker's stats)` holds (its output was
    deleted or changed since), so that the next run redoes it; return how many units stay done."""
    kept = 0
    for u in units:
        marker = done_marker(output, stage, u.id)
        if not marker.exists():
            continue
        if stale(u, json.loads(marker.read_text())):
            marker.unlink()
        else:
            kept += 1
    return kept


class Executor(abc.ABC):
    kind: str = "base"

    def run(self, stage: Stage, units: Iterable[Unit], output: str | os.PathLike, desc: str | None = None,
            on_event: OnEvent | None = None) -> list[dict[str, Any]]:
        """Run every unit without a done-marker in the output folder `output`; return stats of all units in
        the given order.

        `on_event` (the run function's callback) gets a Progress event after every finished unit (its `unit` is
        the unit's id, `done`/`total` count the stage's units) and a StageDone event at the end.
        """
        units = list(units)
        ids = [u.id for u in units]
        if len(set(ids)) != len(ids):
            raise ValueError(f"stage {stage.name}: unit ids are not unique")
        pending = [u for u in units if not done_marker(output, stage.name, u.id).exists()]
        skipped = len(units) - len(pending)
        if skipped:
            log.info("%s: %d of %d units already done, skipping them", stage.name, skipped, len(units))
        if pending:
            bar = progress(total=len(pending), desc=desc or stage.name, unit="shard")
            done = skipped
            for unit, stats in self._execute(stage, pending):
                atomic_write_json(done_marker(output, stage.name, unit.id), stats)
                bar.update(1)
                done += 1
                if on_event:
                    on_event(Progress(done, len(units), stage=stage.name, unit=unit.id))
            bar.close()
        if on_event:
            on_event(StageDone(stage.name, {"units": len(units), "skipped": skipped}))
        return [json.loads(done_marker(output, stage.name, u.id).read_text()) for u in units]

    @abc.abstractmethod
    def _execute(self, stage: Stage, units: list[Unit]) -> Iterable[tuple[Unit, dict[str, Any]]]:
        """Yield (unit, stats) as units finish, in any order."""


_WORKER_STAGE: Stage | None = None


def _init_worker(stage: Stage) -> None:
    global _WORKER_STAGE
    install_from_env()      # a confined parent (a service job's worker) confines its executor processes too
    _WORKER_STAGE = stage
    stage.setup()


def _run_in_worker(unit: Unit) -> dict[str, Any]:
    assert _WORKER_STAGE is not None
    return _WORKER_STAGE.process(unit)


class LocalExecutor(Executor):
    """In process when workers == 1; otherwise a pool of spawned processes, each with its own stage.setup()."""
    kind = "local"

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers

    def _execute(self, stage, units):
        if self.workers == 1 or len(units) == 1:
            stage.setup()
            for u in units:
                yield u, stage.process(u)
            return
        with ProcessPoolExecutor(min(self.workers, len(units)), mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker, initargs=(stage,)) as pool:
            futs = {pool.submit(_run_in_worker, u): u for u in units}
            try:
                for f in as_completed(futs):
                    yield futs[f], f.result()
            except BaseException:   # a failed unit (or the caller giving up) stops the run: drop queued units
                pool.shutdown(wait=True, cancel_futures=True)
                raise


class RayExecutor(Executor):
    """Ray actors, each owning one stage instance (setup once). Joins `address` or starts a local instance.

    Actors restart after a crash and Ray retries the unit on the restarted actor, so a killed worker's unit is
    redone; finished units have markers and are never redone.
    """
    kind = "ray"

    def __init__(self, workers: int = 1, address: str | None = None, max_retries: int = 3):
        self.workers, self.address, self.max_retries = workers, address, max_retries

    def _ensure_ray(self):
        import ray
        if not ray.is_initialized():
            kw: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False,
                                  "include_dashboard": False}
            if self.address:
                kw["address"] = self.address
            # Workers import our packages from the driver's working tree and environment (and its confinement).
            kw["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]),
                **{k: os.environ[k] for k in CONFINE_ENV if k in os.environ}}}
            ray.init(**kw)
        return ray

    def _execute(self, stage, units):
        ray = self._ensure_ray()

        @ray.remote(max_restarts=self.max_retries, max_task_retries=self.max_retries)
        class StageActor:
            def __init__(self, st: Stage):
                install_from_env()
                self.stage = st
                st.setup()

            def process(self, unit: Unit) -> dict[str, Any]:
                return self.stage.process(unit)

        opts = {"num_cpus": stage.resources.get("num_cpus", 1), "num_gpus": stage.resources.get("num_gpus", 0)}
        n = max(1, min(self.workers, len(units)))
        # The stage goes inline with each actor's creation (not as an object-store ref): a restarted actor
        # must still find its constructor argument after the driver's references are gone.
        actors = [StageActor.options(**opts).remote(stage) for _ in range(n)]
        queue = list(units)
        inflight: dict[Any, tuple[Unit, Any]] = {}
        try:
            for a in actors:
                if queue:
                    u = queue.pop(0)
                    inflight[a.process.remote(u)] = (u, a)
            while inflight:
                done, _ = ray.wait(list(inflight), num_returns=1)
                u, a = inflight.pop(done[0])
                try:
                    stats = ray.get(done[0])
                except ray.exceptions.RayTaskError as e:
                    # The unit's own error (e.g. a SchemaError naming file and line) reaches the caller as
                    # itself, so the front doors report it like a local run instead of a wrapped traceback.
                    if isinstance(getattr(e, "cause", None), Exception):
                        raise e.cause from None
                    raise
                yield u, stats
                if queue:
                    nu = queue.pop(0)
                    inflight[a.process.remote(nu)] = (nu, a)
        finally:
            for a in actors:
                ray.kill(a)


def make_executor(kind: str = "local", workers: int = 1, ray_address: str | None = None) -> Executor:
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(workers, ray_address)
    raise ValueError(f"executor: unknown kind {kind!r}, expected 'local' or 'ray'")
