"""Run a pipeline: every step validated first, then run in order, resumable, one failure stopping its dependents.

State lives in OUTPUT/.k2forge/pipeline.json, written atomically whenever a step starts, finishes or fails:

    {"pipeline": NAME, "params": {...}, "steps": {NAME: {"kind", "digest", "status", "summary", "seconds",
                                                      "started_at", "finished_at", "error"}}}

status is running | done | failed | stale. A step is reused when its record is `done` with the same digest and
no step it depends on ran in this run; the digest covers its kind, its resolved spec and the digests of the steps
it depends on, so a changed spec reruns that step and everything downstream. A step whose digest changed starts
from an empty output (what an older spec wrote there must not mix with the new); one that reruns with the same
digest (interrupted, failed, or below a step that ran again) keeps its output, and the jobs skip their finished
units. When a step finishes, the records of the steps below it become `stale` (an interrupted run cannot leave
them looking current). A step marked `clean` (one that resumes from what its output holds, such as train)
starts from an empty output whenever it reruns over a finished or stale record. Only outputs inside the
pipeline's folder are ever deleted.

A failing step is recorded as failed (its error, its traceback in a log event); the steps that depend on it do
not run, the others do; then `StepFailed` is raised (the traceback goes to the `k2forge.pipeline` logger).
Events (corpus.events) of a step are forwarded to `on_event`: its Progress with `step` added to `extra`, its
Log lines prefixed with `[step]`, the rest as they are. The runner adds Log lines as steps start, are reused,
fail or cannot run, and Progress(done=i, total=n, stage="pipeline", unit=step) after each step.

A pipeline writes only into a new or empty folder or one holding a run of the same pipeline; `fresh=True`
deletes such a folder first (never one without .k2forge/pipeline.json).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from corpus.events import Event, Log, OnEvent, Progress
from corpus.shards import atomic_write_json
from pipeline.definition import Definition, Step, link, load_definition, merge_params, resolve
from pipeline.registry import StepContext, run_step

STATE_DIR, STATE_NAME = ".k2forge", "pipeline.json"
log = logging.getLogger("k2forge.pipeline")


class PipelineError(RuntimeError):
    """The pipeline cannot run in this folder (another pipeline's, not a pipeline's); the message says why."""


class StepFailed(RuntimeError):
    """One or more steps failed; `failed` maps step -> error, `skipped` lists the steps that could not run."""

    def __init__(self, failed: dict[str, str], skipped: list[str]):
        self.failed, self.skipped = failed, skipped
        msg = "; ".join(f"step {n!r} failed: {e}" for n, e in failed.items())
        super().__init__(msg + (f" (not run: {', '.join(skipped)})" if skipped else ""))


def state_path(out: Path) -> Path:
    return Path(out) / STATE_DIR / STATE_NAME


def read_state(out: Path) -> dict[str, Any] | None:
    p = state_path(out)
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise PipelineError(f"{p}: corrupt pipeline state ({e}); rerun with --fresh") from None


def prepare_output(out: Path, name: str, fresh: bool) -> dict[str, Any]:
    """The state to continue from: a new one for a new/empty folder or `fresh`, else the saved one."""
    if fresh and out.exists():
        if any(out.iterdir()) and not state_path(out).exists():
            raise PipelineError(f"{out}: not a pipeline output folder (no {STATE_DIR}/{STATE_NAME}); refusing to "
                                f"delete it with --fresh")
        shutil.rmtree(out)
    state = read_state(out) if out.exists() else None
    if state is None:
        if out.exists() and any(out.iterdir()):
            raise PipelineError(f"{out}: exists and is not a pipeline output folder (no {STATE_DIR}/{STATE_NAME}); "
                                f"choose another output folder")
        return {"pipeline": name, "steps": {}}
    if state.get("pipeline") != name:
        raise PipelineError(f"{out}: holds a run of pipeline {state.get('pipeline')!r}, not {name!r}; choose "
                            f"another output folder, or start over with --fresh")
    return state


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _announce(i: int, n: int, step: Step, tag: str) -> None:
    from corpus.log import is_quiet
    if not is_quiet():
        print(f"pipeline [{i}/{n}] {step.name:<10} {tag}" + (f": {step.about}" if step.about else ""),
              file=sys.stderr, flush=True)


def run_pipeline(definition: str | Path | dict[str, Any] | Definition, output: str | Path,
                 params: dict[str, Any] | None = None, fresh: bool = False,
                 on_event: OnEvent | None = None) -> dict[str, Any]:
    """Run (or resume) a pipeline into `output`: {pipeline, output, steps: {name: record}, ran, reused,
    wall_seconds}. Raises SpecError before anything runs when any step is invalid, StepFailed after a failure."""
    if isinstance(definition, Definition):
        defn, here = definition, None
    else:
        defn, here = load_definition(definition)
    steps = resolve(defn, output, params, here)          # every spec validated before anything runs
    return run_steps(steps, output, defn.name, merge_params(defn.params, params), fresh, on_event)


def run_steps(steps: list[Step], output: str | Path, name: str, params: dict[str, Any], fresh: bool = False,
              on_event: OnEvent | None = None) -> dict[str, Any]:
    """Run resolved, validated steps (in run order) of pipeline `name` into `output`; see run_pipeline."""
    out = Path(output).resolve()
    link(steps)
    state = prepare_output(out, name, fresh)
    state["params"] = params
    save = lambda: atomic_write_json(state_path(out), state)   # noqa: E731
    save()                                            # marks the folder as a pipeline's before any step writes
    emit = on_event or (lambda ev: None)
    t_start, n = time.perf_counter(), len(steps)
    ran: list[str] = []
    reused: list[str] = []
    failed: dict[str, BaseException] = {}
    skipped: list[str] = []
    for i, step in enumerate(steps, 1):
        rec = state["steps"].get(step.name)
        blocked = sorted(step.upstream & (set(failed) | set(skipped)))
        if blocked:
            skipped.append(step.name)
            _announce(i, n, step, f"not run (depends on failed {', '.join(blocked)})")
            emit(Log(f"pipeline: {step.name} not run: it depends on {', '.join(blocked)}", "warning"))
        elif _reusable(rec, step, ran):
            reused.append(step.name)
            _announce(i, n, step, "reused")
            emit(Log(f"pipeline: {step.name} reused (finished {rec['finished_at']}, same spec and inputs)"))
        else:
            _announce(i, n, step, "running")
            error = _run_one(step, rec, state, out, emit, save)
            if error is None:
                ran.append(step.name)
            else:
                failed[step.name] = error
        emit(Progress(done=i, total=n, stage="pipeline", unit=step.name))
    if failed:
        raise StepFailed({k: f"{type(e).__name__}: {e}" for k, e in failed.items()}, skipped) \
            from next(iter(failed.values()))
    return {"pipeline": name, "output": str(out), "steps": state["steps"], "ran": ran, "reused": reused,
            "wall_seconds": round(time.perf_counter() - t_start, 2)}


def _reusable(rec: dict[str, Any] | None, step: Step, ran: list[str]) -> bool:
    """Finished with this digest, and nothing it depends on ran in this run."""
    return bool(rec and rec.get("status") == "done" and rec.get("digest") == step.digest
                and not step.upstream & set(ran))


def _forward(emit: OnEvent, step: str) -> OnEvent:
    """A step's on_event: its events go on to `emit`, marked with the step."""
    def on_event(ev: Event) -> None:
        if isinstance(ev, Progress):
            ev = dataclasses.replace(ev, extra={**ev.extra, "step": step})
        elif isinstance(ev, Log):
            ev = dataclasses.replace(ev, message=f"[{step}] {ev.message}")
        emit(ev)
    return on_event


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _run_one(step: Step, rec: dict[str, Any] | None, state: dict[str, Any], out: Path,
             emit: OnEvent, save: Callable[[], None]) -> Exception | None:
    """Run one step and record the outcome; the exception when it failed."""
    changed = rec is not None and rec.get("digest") != step.digest
    rebuilt = rec is not None and step.clean and rec.get("status") in ("done", "stale")
    target = Path(step.output).resolve() if step.output else None
    if (changed or rebuilt) and target is not None and target.is_relative_to(out) and target != out:
        why = "its spec or inputs changed" if changed else "its inputs were rebuilt"
        emit(Log(f"pipeline: {step.name}: {why}; clearing {step.output} before it runs again"))
        _remove(target)
    state["steps"][step.name] = {"kind": step.kind, "digest": step.digest, "status": "running",
                                 "started_at": _now()}
    save()
    emit(Log(f"pipeline: {step.name} ({step.kind}) running"))
    ctx = StepContext(output=out, name=step.name, params=state["params"], emit=_forward(emit, step.name),
                      records={k: v for k, v in state["steps"].items() if v.get("status") == "done"})
    t0 = time.perf_counter()
    try:
        summary = json.loads(json.dumps(run_step(step.kind, step.spec, ctx), default=str))
    except Exception as e:   # recorded; its dependents do not run, the others do
        log.error("pipeline: step %s failed", step.name, exc_info=True)
        emit(Log(f"pipeline: {step.name} failed: {type(e).__name__}: {e}", "error"))
        state["steps"][step.name].update(status="failed", error=f"{type(e).__name__}: {e}",
                                         seconds=round(time.perf_counter() - t0, 2), finished_at=_now())
        save()
        return e
    state["steps"][step.name].update(status="done", summary=summary, seconds=round(time.perf_counter() - t0, 2),
                                     finished_at=_now())
    for r in state["steps"].values():          # whatever was built from this step's old output
        if r.get("status") == "done" and step.name in r.get("upstream", []):
            r["status"] = "stale"
    state["steps"][step.name]["upstream"] = sorted(step.upstream)
    save()
    return None
