"""run_rephrase: the rephrase job (spec -> synthetic shards + rejects + stats), resumable and executor-agnostic.

Units are the input shards, in sorted order: unit i writes `part-{i:05d}.parquet` (synthetic rows) and
`.k2forge/rejects/part-{i:05d}.parquet` (corpus.layout: the spec, stats, index and markers sit there too).
Seeds depend only on (spec seed, document id, variant, chunk, attempt), so a rerun after an interruption
processes the unfinished shards only and produces the same files as one uninterrupted run; finished shards
(done-markers) are never redone. A rerun into an output directory that holds a run of a different spec is
refused rather than mixing two runs.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import pyarrow.parquet as pq

from corpus.executor import Stage, Unit
from corpus.layout import META_DIR, SPEC, STATS, find_meta, prepare_output
from corpus.shards import atomic_write_json, expand_inputs, read_index, shard_name, write_index
from corpus.spec import SpecError, save_spec

SPEC_NAME = f"{META_DIR}/{SPEC}"
STATS_NAME = f"{META_DIR}/{STATS}"
# Fields that may change between a run and its resumption without changing any output.
_RESUMABLE_FIELDS = {"executor", "limit", "concurrency"}


def plan_units(spec: Any, prefix: str = "part") -> list[Unit]:
    """One unit per input shard; with `limit`, the first N documents in shard order (later shards get none)."""
    inputs = expand_inputs(spec.inputs)
    if not inputs:
        raise FileNotFoundError(f"inputs {spec.inputs}: no parquet shards found")
    out = Path(spec.output)
    if any(p.resolve().parent == out.resolve() for p in inputs):
        raise SpecError(f"output {out} is also an input directory: a rerun would read its own shards back")
    remaining = spec.limit
    units = []
    for i, path in enumerate(inputs):
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
            raise ValueError(f"{path}: not a readable parquet file ({e})") from None
        take = rows if remaining is None else min(rows, remaining)
        if remaining is not None:
            remaining -= take
        if take == 0 and spec.limit is not None:
            continue
        # The id carries the input path and its document count, so a different input never reuses a marker.
        key = hashlib.blake2b(f"{path.resolve()}\x00{take}".encode(), digest_size=4).hexdigest()
        units.append(Unit(id=f"{prefix}-{i:05d}-{key}", inputs=(str(path),),
                          output=str(out / shard_name(prefix, i)), params={"limit": take}))
    return units


def _check_same_spec(spec: Any, out: Path, kind: str) -> None:
    import yaml
    saved = find_meta(out, SPEC)
    if not saved.exists():
        return
    old = (yaml.safe_load(saved.read_text()) or {}).get("spec", {})
    new = json.loads(spec.model_dump_json())
    # A field added to the spec after the run started (absent from the saved spec) at its default changes nothing.
    defaults = {k: f.get_default(call_default_factory=True) for k, f in type(spec).model_fields.items()}
    diff = sorted(k for k in set(old) | set(new) if k not in _RESUMABLE_FIELDS and old.get(k) != new.get(k)
                  and not (k not in old and _jsonable(defaults.get(k)) == new.get(k)))
    if diff:
        raise SpecError(f"{out}: holds a {kind} run of a different spec (fields differ: {', '.join(diff)}); "
                        f"use a new output directory or remove this one")


def _jsonable(v: Any) -> Any:
    return json.loads(v.model_dump_json()) if hasattr(v, "model_dump_json") else v


def run_rewrite(spec: Any, stage: Stage, kind: str, on_event: Callable[[dict], None] | None = None) -> dict:
    """The shared driver for rewriting jobs (rephrase here; mathnotes passes its own stage and kind)."""
    out = Path(spec.output)
    units = plan_units(spec)
    _check_same_spec(spec, out, kind)
    prepare_output(out)
    save_spec(spec, out / SPEC_NAME, kind)
    emit = on_event or (lambda ev: None)
    emit({"type": "log", "message": f"{kind}: {len(units)} shard(s) -> {out}"})
    try:
        unit_stats = spec.executor.build().run(stage, units, out, desc=kind, on_event=on_event)
    finally:
        if hasattr(stage, "close"):
            stage.close()     # the in-process stage (local, workers=1) holds the engine and an event loop
    from rephrase.stage import rejects_path
    from rephrase.stats import merge_stats
    stats = merge_stats(unit_stats)
    entries = [{"path": Path(u.output).name, "rows": s["rows"]} for u, s in zip(units, unit_stats)]
    write_index(out, _with_checksums(out, entries), extra={"kind": kind})
    atomic_write_json(out / STATS_NAME, stats)
    emit({"type": "progress", "done": len(units), "total": len(units)})
    outputs = [str(out / e["path"]) for e in entries]
    rejects = [str(rejects_path(out / e["path"])) for e in entries]
    return {"outputs": outputs, "rejects": rejects, "stats_path": str(out / STATS_NAME),
            "spec_path": str(out / SPEC_NAME), "stats": stats}


def _with_checksums(out: Path, entries: list[dict]) -> list[dict]:
    from corpus.shards import file_sha256
    for e in entries:
        p = out / e["path"]
        e.update(bytes=p.stat().st_size, sha256=file_sha256(p))
    return entries


def run_rephrase(spec: Any, on_event: Callable[[dict], None] | None = None, *, stage: Stage | None = None) -> dict:
    """Run a rephrase job (JOB_KINDS contract). `stage` replaces the default RewriteStage (fault injection)."""
    from rephrase.stage import RewriteStage
    return run_rewrite(spec, stage or RewriteStage(spec, "rephrase"), "rephrase", on_event)


def read_stats(output: str | Path) -> dict:
    """The merged stats of a finished run."""
    p = find_meta(output, STATS)
    if not p.exists():
        read_index(output)       # raises the clearer "not a shard directory" error when that is the problem
        raise FileNotFoundError(f"{p}: no stats (the run has not finished)")
    return json.loads(p.read_text())
