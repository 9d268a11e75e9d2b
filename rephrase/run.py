"""run_rephrase: the rephrase job (spec -> synthetic shards + rejects + stats), resumable and executor-agnostic.

Input shard i becomes `part-{i:05d}.parquet` (synthetic rows) and `.k2forge/rejects/part-{i:05d}.parquet`
(corpus.layout: the spec, stats, index and markers sit there too). A shard can hold tens of MB of text, hours of
generation, so the unit of work is a piece of at most `unit_docs()` documents of a shard: a unit writes its rows
to `.k2forge/units/part-{i:05d}/{key}-{j:05d}.parquet` (+ its side tables beside them), and once every unit of a
shard is done the shard is assembled from them in document order (the part file last: it marks the shard
finished) and the pieces are dropped. A killed worker therefore redoes at most one unit, and progress moves per unit.
Seeds depend only on (spec seed, document id, variant, chunk, attempt), so a rerun after an interruption
processes the unfinished units only and produces the same files as one uninterrupted run; finished units
(done-markers) are never redone. A rerun into an output directory that holds a run of a different spec is
refused rather than mixing two runs.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from corpus.events import Event, Log, OnEvent, Progress
from corpus.executor import Stage, Unit, done_marker, forget_stale
from corpus.layout import META_DIR, SPEC, STATS, find_meta, meta_path, prepare_output
from corpus.shards import atomic_write_json, expand_inputs, file_sha256, shard_name, write_index, write_table
from corpus.spec import SpecError, save_spec
from rephrase.stage import RewriteStage, rejects_path, side_path
from rephrase.stats import merge_stats

SPEC_NAME = f"{META_DIR}/{SPEC}"
STATS_NAME = f"{META_DIR}/{STATS}"
# Fields that may change between a run and its resumption without changing any output.
_RESUMABLE_FIELDS = {"executor", "limit", "concurrency"}
#: documents per unit (K2FORGE_UNIT_DOCS overrides): enough (x variants) to keep an engine's batch full most of
#: a unit, few enough that a preempted worker loses minutes, not a shard's hours
UNIT_DOCS = 256
#: under .k2forge/: the pieces finished units wrote, until their shard is assembled
UNITS_DIR = "units"


def unit_docs() -> int:
    n = int(os.environ.get("K2FORGE_UNIT_DOCS", UNIT_DOCS))
    if n < 1:
        raise ValueError(f"K2FORGE_UNIT_DOCS must be >= 1, got {n}")
    return n


def plan_units(spec: Any, prefix: str = "part") -> list[Unit]:
    """Units of at most unit_docs() documents of one input shard each, in shard then document order; with
    `limit`, the first N documents in shard order (later shards get none). An empty shard gets one empty unit
    (its part file is written all the same)."""
    inputs = expand_inputs(spec.inputs)
    if not inputs:
        raise FileNotFoundError(f"inputs {spec.inputs}: no parquet shards found")
    out = Path(spec.output)
    if any(p.resolve().parent == out.resolve() for p in inputs):
        raise SpecError(f"output {out} is also an input directory: a rerun would read its own shards back")
    remaining = spec.limit
    size = unit_docs()
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
        # The id (and the piece's name) carries the input path, its document count and the unit size, so a
        # different input (or split) never reuses a marker or a piece.
        ident = f"{path.resolve()}\x00{take}"
        key = _key(f"{ident}\x00{size}")
        whole = f"{prefix}-{i:05d}-{_key(ident)}"      # the id of the shard as one unit, in earlier versions
        shard = shard_name(prefix, i)
        for j, start in enumerate(range(0, take, size) or [0]):
            units.append(Unit(id=f"{prefix}-{i:05d}-{key}-{j:05d}", inputs=(str(path),),
                              output=str(meta_path(out, UNITS_DIR) / Path(shard).stem / f"{key}-{j:05d}.parquet"),
                              params={"start": start, "stop": min(take, start + size), "shard": shard,
                                      "whole": whole}))
    return units


def _key(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def _check_same_spec(spec: Any, out: Path, kind: str) -> None:
    saved = find_meta(out, SPEC)
    if not saved.exists():
        return
    old = _as_saved_now(type(spec), (yaml.safe_load(saved.read_text()) or {}).get("spec", {}))
    new = json.loads(spec.model_dump_json())
    # A field added to the spec after the run started (absent from the saved spec) at its default changes nothing.
    defaults = {k: f.get_default(call_default_factory=True) for k, f in type(spec).model_fields.items()}
    diff = sorted(k for k in set(old) | set(new) if k not in _RESUMABLE_FIELDS and old.get(k) != new.get(k)
                  and not (k not in old and _jsonable(defaults.get(k)) == new.get(k)))
    if diff:
        raise SpecError(f"{out}: holds a {kind} run of a different spec (fields differ: {', '.join(diff)}); "
                        f"use a new output directory or remove this one")


def _as_saved_now(cls: type, old: dict[str, Any]) -> dict[str, Any]:
    """A saved spec as this version would save it (an earlier version may have written a field in another form,
    e.g. the flat engine spec with every backend's fields), or as it was where it no longer validates."""
    try:
        return json.loads(cls.model_validate(old).model_dump_json())
    except (ValueError, OSError):   # pydantic's ValidationError is a ValueError
        return old


def _jsonable(v: Any) -> Any:
    return json.loads(v.model_dump_json()) if hasattr(v, "model_dump_json") else v


def run_rewrite(spec: Any, stage: Stage, kind: str, on_event: OnEvent | None = None) -> dict:
    """The shared driver for rewriting jobs (rephrase here; mathnotes passes its own stage and kind)."""
    out = Path(spec.output)
    units = plan_units(spec)
    _check_same_spec(spec, out, kind)
    prepare_output(out)
    save_spec(spec, out / SPEC_NAME, kind)
    shards: dict[str, list[Unit]] = {}
    for u in units:
        shards.setdefault(u.params["shard"], []).append(u)
    whole = _finished_whole(out, stage.name, shards)
    units = [u for u in units if u.params["shard"] not in whole]
    # a unit whose piece is gone while its shard is not assembled yet is redone (its marker alone is no output)
    forget_stale(out, stage.name, units, lambda u, _: not (out / u.params["shard"]).exists()
                 and not Path(u.output).exists())
    emit = on_event or (lambda ev: None)
    emit(Log(f"{kind}: {len(shards)} shard(s) in {len(units)} unit(s) -> {out}"))
    tracker = _Progress(out, stage, units, shards, emit)
    try:
        unit_stats = spec.executor.build().run(stage, units, out, desc=kind, on_event=tracker)
    finally:
        if hasattr(stage, "close"):
            stage.close()     # the in-process stage (local, workers=1) holds the engine and an event loop
    for shard, pieces in shards.items():     # shards whose units all finished in an earlier run
        if not (out / shard).exists():
            _assemble(out, shard, pieces, stage.side_tables)
    stats = merge_stats([*unit_stats, *whole.values()])
    stats["shards"] = len(shards)
    rows = {shard: whole[shard]["rows"] if shard in whole else 0 for shard in shards}
    for u, s in zip(units, unit_stats):
        rows[u.params["shard"]] += s["rows"]
    entries = [{"path": shard, "rows": n} for shard, n in rows.items()]
    write_index(out, _with_checksums(out, entries), extra={"kind": kind})
    atomic_write_json(out / STATS_NAME, stats)
    emit(Progress(len(units), len(units), extra={"docs_done": tracker.docs_total, "docs_total": tracker.docs_total}))
    outputs = [str(out / e["path"]) for e in entries]
    rejects = [str(rejects_path(out / e["path"])) for e in entries]
    return {"outputs": outputs, "rejects": rejects, "stats_path": str(out / STATS_NAME),
            "spec_path": str(out / SPEC_NAME), "stats": stats}


def _finished_whole(out: Path, stage: str, shards: dict[str, list[Unit]]) -> dict[str, dict]:
    """{shard: stats} of the shards an earlier version finished as one unit (its part file and its marker under
    the whole shard's id): they count as done. A part file that neither its units' markers nor such a marker
    vouch for is dropped and rebuilt from its units."""
    found = {}
    for shard, pieces in shards.items():
        if not (out / shard).exists() or all(done_marker(out, stage, u.id).exists() for u in pieces):
            continue
        old = done_marker(out, stage, pieces[0].params["whole"])
        if old.exists():
            found[shard] = json.loads(old.read_text())
        else:
            (out / shard).unlink()
    return found


class _Progress:
    """The executor's per-unit events, with documents done/total added; assembles a shard once its last unit
    is done, so finished shards appear while the run goes on."""

    def __init__(self, out: Path, stage: Stage, units: list[Unit], shards: dict[str, list[Unit]], emit):
        self.out, self.sides, self.shards, self.emit = out, stage.side_tables, shards, emit
        self.by_id = {u.id: u for u in units}
        self.done = {u.id for u in units if done_marker(out, stage.name, u.id).exists()}
        self.docs_total = sum(_ndocs(u) for u in units)
        self.docs_done = sum(_ndocs(self.by_id[i]) for i in self.done)

    def __call__(self, event: Event) -> None:
        u = self.by_id.get(event.unit) if isinstance(event, Progress) else None
        if u is not None and u.id not in self.done:
            self.done.add(u.id)
            self.docs_done += _ndocs(u)
            shard = u.params["shard"]
            if all(p.id in self.done for p in self.shards[shard]) and not (self.out / shard).exists():
                _assemble(self.out, shard, self.shards[shard], self.sides)
            event = replace(event, extra={**event.extra, "docs_done": self.docs_done, "docs_total": self.docs_total})
        self.emit(event)


def _ndocs(u: Unit) -> int:
    return u.params["stop"] - u.params["start"]


def _assemble(out: Path, shard: str, pieces: list[Unit], sides: dict[str, pa.Schema]) -> None:
    """Write `shard` and its side tables from its units' pieces in document order, the part file last (it marks
    the shard finished), then drop the pieces."""
    for kind, schema in sides.items():
        tables = [pq.read_table(side_path(u.output, kind)) for u in pieces]
        write_table(meta_path(out, kind) / shard, pa.concat_tables(tables).cast(schema).combine_chunks())
    write_table(out / shard, pa.concat_tables([pq.read_table(u.output) for u in pieces]).combine_chunks())
    shutil.rmtree(Path(pieces[0].output).parent, ignore_errors=True)


def _with_checksums(out: Path, entries: list[dict]) -> list[dict]:
    for e in entries:
        p = out / e["path"]
        e.update(bytes=p.stat().st_size, sha256=file_sha256(p))
    return entries


def run_rephrase(spec: Any, on_event: OnEvent | None = None, *, stage: Stage | None = None) -> dict:
    """Run a rephrase job (JOB_KINDS contract). `stage` replaces the default RewriteStage (fault injection)."""
    return run_rewrite(spec, stage or RewriteStage(spec, "rephrase"), "rephrase", on_event)

