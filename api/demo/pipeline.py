"""`k2forge demo`: the main job end to end on the bundled samples, resumable per stage.

    ingest -> rephrase -> mathnotes -> dedup -> pack -> mix -> train -> eval -> export -> sample -> report

Every stage is an ordinary job (api/demo/stages.py) writing under OUTPUT/<stage>. The pipeline records each
finished stage (its summary and wall time) in OUTPUT/_demo/state.json, written atomically after the stage, so a
rerun reuses finished stages and an interrupted one resumes at the first unfinished stage (the jobs themselves
skip their finished units, and training resumes from its last checkpoint). Once a stage runs, every later stage
runs again, so nothing downstream is built from stale inputs. A rerun with another configuration (size, --docs,
--steps) into the same folder is refused; `fresh=True` starts over, but only in a folder the demo made.
The report is rebuilt on every run (cheap) from the outputs on disk.
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from api.demo.config import DemoConfig, load_config
from corpus.events import Log
from corpus.shards import atomic_write_json

log = logging.getLogger(__name__)
STATE_DIR, STATE_NAME = "_demo", "state.json"


class DemoError(RuntimeError):
    """The demo cannot run in this folder (another config, not a demo folder); the message says what to do."""


def state_path(out: Path) -> Path:
    return out / STATE_DIR / STATE_NAME


def read_state(out: Path) -> dict[str, Any] | None:
    p = state_path(out)
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DemoError(f"{p}: corrupt demo state ({e}); rerun with --fresh") from None


def prepare_output(out: Path, cfg: DemoConfig, fresh: bool) -> dict[str, Any]:
    """The state to continue from: a new one for an empty/new folder or --fresh, else the saved one."""
    if fresh and out.exists():
        if any(out.iterdir()) and not (out / STATE_DIR).is_dir():
            raise DemoError(f"{out}: not a demo output folder (no {STATE_DIR}/); refusing to delete it with --fresh")
        shutil.rmtree(out)
    state = read_state(out) if out.exists() else None
    if state is None:
        if out.exists() and any(p.name != STATE_DIR for p in out.iterdir()):
            raise DemoError(f"{out}: exists and is not a demo output folder; choose another --output")
        return {"config_digest": cfg.digest(), "config": json.loads(cfg.model_dump_json()), "stages": {}}
    if state.get("config_digest") != cfg.digest():
        raise DemoError(f"{out}: holds a demo run of another configuration (size {state['config'].get('size')!r}); "
                        f"rerun with --fresh to start over, or choose another --output")
    return state


#: stages whose output folder must go when their inputs were rebuilt: training would resume from a checkpoint
#: of the old data (the other jobs key their finished units on their inputs and redo changed ones)
_RESUMING_OUTPUTS = {"train": "train"}


def _clear_stale(out: Path, name: str) -> None:
    if name in _RESUMING_OUTPUTS:
        log.info("demo: %s was built from inputs that have since been rebuilt; starting it over", name)
        shutil.rmtree(out / _RESUMING_OUTPUTS[name], ignore_errors=True)


def _announce(i: int, n: int, name: str, what: str, reused: bool) -> None:
    from corpus.log import is_quiet
    if not is_quiet():
        tag = "reused" if reused else "running"
        print(f"demo [{i}/{n}] {name:<9} {tag}: {what}", file=sys.stderr, flush=True)


def run_demo(output: str | Path = "out/demo", size: str = "full", docs: int | None = None,
             steps: int | None = None, fresh: bool = False, cfg: DemoConfig | None = None,
             on_event: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the whole chain into `output`; returns {output, stages, report paths, seconds}."""
    from api.demo.stages import STAGES, Ctx
    out = Path(output).resolve()
    cfg = cfg or load_config(size, docs=docs, steps=steps)
    state = prepare_output(out, cfg, fresh)
    (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / STATE_DIR / "config.json", state["config"])
    atomic_write_json(state_path(out), state)   # marks the folder as a demo folder before any stage writes
    emit = on_event or (lambda ev: None)
    ctx = Ctx(out=out, cfg=cfg, emit=emit, results={})
    t_start, dirty, n = time.perf_counter(), False, len(STAGES) + 1
    for i, (name, fn, what) in enumerate(STAGES, 1):
        done = state["stages"].get(name)
        if done is not None and not dirty:
            _announce(i, n, name, what, reused=True)
            ctx.results[name] = done["summary"]
            continue
        dirty = True                     # everything after a rerun stage runs again
        _announce(i, n, name, what, reused=False)
        _run_stage(ctx, state, name, fn, later=[s for s, _, _ in STAGES[i:]])
    _announce(n, n, "report", "HTML + Markdown report", reused=False)
    from api.demo.report import write_report
    t0 = time.perf_counter()
    paths = write_report(out, state)
    report_s = round(time.perf_counter() - t0, 2)
    return {"output": str(out), "size": cfg.size, "stages": state["stages"], "report": paths,
            "report_seconds": report_s, "wall_seconds": round(time.perf_counter() - t_start, 2),
            "stage_seconds_total": round(sum(s["seconds"] for s in state["stages"].values()), 2)}


def _run_stage(ctx, state: dict[str, Any], name: str, fn: Callable, later: list[str]) -> None:
    """Run one stage and record it; the markers of the stages after it become stale."""
    state["stages"].pop(name, None)
    if name in state.get("stale", []):
        _clear_stale(ctx.out, name)
    ctx.emit(Log(f"demo: {name}"))
    t0 = time.perf_counter()
    summary = fn(ctx)
    ctx.results[name] = summary
    state["stages"][name] = {"summary": summary, "seconds": round(time.perf_counter() - t0, 2),
                             "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    stale = set(state.get("stale", [])) - {name}
    stale |= {s for s in later if state["stages"].pop(s, None) is not None}
    state["stale"] = sorted(stale)
    atomic_write_json(state_path(ctx.out), state)


def _top_reasons(stats: dict[str, Any], k: int = 3) -> str:
    top = sorted(stats.get("rejected_by_reason", {}).items(), key=lambda kv: -kv[1])[:k]
    return ("; rejected for " + ", ".join(f"{r} {c}" for r, c in top)) if top else ""


def format_summary(res: dict[str, Any]) -> str:
    """The lines printed at the end of `k2forge demo`."""
    st = {k: v["summary"] for k, v in res["stages"].items()}
    secs = {k: v["seconds"] for k, v in res["stages"].items()}
    reph, notes = st["rephrase"]["stats"], st["mathnotes"]["stats"]
    tr, ev = st["train"], st["eval"]
    lines = [
        f"k2forge demo ({res['size']}) in {res['output']}",
        f"  ingest     {st['ingest']['rows_out']} documents ({secs['ingest']} s)",
        f"  rephrase   {reph.get('variants_accepted', 0)}/{reph.get('variants', 0)} rewrites accepted "
        f"({secs['rephrase']} s){_top_reasons(reph)}",
        f"  mathnotes  {notes.get('variants_accepted', 0)}/{notes.get('variants', 0)} notes/translations "
        f"accepted ({secs['mathnotes']} s){_top_reasons(notes)}",
        f"  dedup      {st['dedup']['docs_in']} -> {st['dedup']['docs_out']} documents ({secs['dedup']} s)",
        f"  pack       {st['pack']['total_tokens']:,} tokens ({secs['pack']} s)",
        f"  mix        {st['mix']['allotted_tokens']:,} tokens over {st['mix']['sources']} sources ({secs['mix']} s)",
        f"  train      {tr['step']} steps, loss {tr['final_loss']:.3f}, eval loss {ev['eval_loss']:.3f} "
        f"(ppl {ev['perplexity']:.1f}) ({secs['train']} s)",
        f"  sample     {st['sample']['prompt']!r} -> {st['sample']['completion'][:80]!r}",
        f"  stages took {res['stage_seconds_total']} s in all; this run {res['wall_seconds']} s",
        f"report: {res['report']['html']}",
        f"        {res['report']['md']}",
    ]
    return "\n".join(lines)
