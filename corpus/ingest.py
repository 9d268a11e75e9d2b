"""Ingest stage: raw inputs (JSONL, parquet, text dirs, HF datasets) -> schema document shards.

One unit per input file (a text directory or an HF dataset directory is one input). A unit's id hashes the input's
relative path, its content (not size/mtime, so a copy or a touched file keeps its id) and the read options, so a
rerun of the same spec skips finished units and a changed input or option is redone. A unit streams its records into
shards `{stem}-{n:05d}.parquet` of about `shard_bytes`, staged in a private directory and moved into place only
when the whole input was read: a bad record in the middle of a file never leaves part of that file's output.
The driver then writes `index.json`, `stats.json` (rows in/out, skips by reason) and `spec.yaml` under
`.k2forge/` (corpus.layout).
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from corpus.events import Log, OnEvent, Progress
from corpus.executor import Stage, Unit, forget_stale
from corpus.fields import PathIn, PathOut
from corpus.layout import META_DIR, SPEC, STATS, prepare_output
from corpus.readers import (DEFAULT_MAX_DOC_BYTES, JSONL_SUFFIXES, FieldMap, ReadOptions, SkipCounter,
                            detect_format, is_hf_dataset_dir, read_docs, text_files)
from corpus.schema import DOMAINS, table_from_docs
from corpus.shards import (DEFAULT_SHARD_BYTES, INDEX_NAME, atomic_write_json, file_sha256, shard_name,
                           write_index, write_table)
from corpus.spec import ExecutorSpec, Spec, save_spec

log = logging.getLogger(__name__)
STATS_NAME = f"{META_DIR}/{STATS}"
SPEC_NAME = f"{META_DIR}/{SPEC}"


class IngestSpec(Spec):
    """Read raw documents into schema shards."""
    inputs: list[PathIn] = Field(..., min_length=1,
                                 description="input files, directories or globs (repeat the option for several)")
    output: PathOut = Field(..., description="output directory for the document shards")
    format: Literal["auto", "jsonl", "parquet", "text", "hf"] = Field(
        "auto", description="input format; auto decides from the file name or directory contents")
    text_field: str = Field("text", description="input field holding the document text (dotted for nested)")
    id_field: str = Field("id", description="input field holding the document id (content hash if absent)")
    domain_field: str = Field("domain", description="input field holding the domain")
    source_field: str = Field("source", description="input field holding the source name")
    lang_field: str = Field("lang", description="input field holding the language code")
    meta_field: str = Field("meta", description="input field holding extra metadata (object or JSON string)")
    default_domain: Literal[DOMAINS] | None = Field(
        None, description="domain for records without one (required for text directories)")
    default_source: str = Field("", description="source for records without one")
    default_lang: str = Field("", description="language code for records without one")
    on_error: Literal["error", "skip"] = Field(
        "error", description="bad record: stop with an error naming file/line/field, or skip and count it")
    max_doc_bytes: int = Field(DEFAULT_MAX_DOC_BYTES, ge=1, description="refuse documents larger than this")
    shard_bytes: int = Field(DEFAULT_SHARD_BYTES, ge=1, description="target text bytes per output shard")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec, description="where the units run")

    def read_options(self) -> ReadOptions:
        fm = FieldMap(text=self.text_field, id=self.id_field, domain=self.domain_field, source=self.source_field,
                      lang=self.lang_field, meta=self.meta_field, default_domain=self.default_domain,
                      default_source=self.default_source, default_lang=self.default_lang)
        return ReadOptions(fields=fm, on_error=self.on_error, max_doc_bytes=self.max_doc_bytes)



# --------------------------------------------------------------------------------------------- planning

def _content_hash(path: Path, fmt: str) -> str:
    if path.is_file():
        return file_sha256(path)
    files = text_files(path) if fmt == "text" else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.relative_to(path).as_posix()}\0{file_sha256(p)}\n".encode())
    return h.hexdigest()


def _files_in_dir(d: Path, fmt: str) -> list[Path]:
    suffixes = JSONL_SUFFIXES if fmt == "jsonl" else (".parquet",)
    return sorted(p for p in d.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes)
                  and not any(x.startswith((".", "_")) for x in p.relative_to(d).parts))


def _expand_one(item: str, fmt: str) -> list[tuple[Path, str, str]]:
    """(path, format, path relative to what the user named) for one input argument."""
    if any(c in item for c in "*?["):
        matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
        if not matches:
            raise FileNotFoundError(f"{item}: no files match this pattern")
        static = []
        for part in Path(item).parts:  # the directories before the first wildcard: relative paths start there
            if any(c in part for c in "*?["):
                break
            static.append(part)
        base = Path(*static) if static else Path(".")
        return [x for m in matches for x in _expand_path(m, fmt, _rel(m, base))]
    p = Path(item)
    if not p.exists():
        raise FileNotFoundError(f"{item}: no such file or directory")
    return _expand_path(p, fmt, p.name or p.resolve().name)


def _rel(p: Path, base: Path) -> str:
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        return p.name


def _expand_path(p: Path, fmt: str, rel: str) -> list[tuple[Path, str, str]]:
    if p.is_file():
        return [(p, detect_format(p) if fmt == "auto" else fmt, rel)]
    if fmt == "auto":
        if is_hf_dataset_dir(p):
            return [(p, "hf", rel)]
        inner = [(f, detect_format(f)) for f in _files_in_dir(p, "jsonl") + _files_in_dir(p, "parquet")]
        if inner:
            return [(f, ff, f"{rel}/{f.relative_to(p).as_posix()}") for f, ff in sorted(inner)]
        fmt = "text"
    if fmt in ("jsonl", "parquet"):
        files = _files_in_dir(p, fmt)
        if not files:
            raise FileNotFoundError(f"{p}: directory has no {fmt} files")
        return [(f, fmt, f"{rel}/{f.relative_to(p).as_posix()}") for f in files]
    if fmt == "text" and not text_files(p):
        raise FileNotFoundError(f"{p}: directory has no .txt/.md files (nor jsonl/parquet files or an HF dataset)")
    return [(p, fmt, rel)]


def _stem(rel: str) -> str:
    name = rel.rstrip("/").split("/")[-1]
    for suf in sorted(JSONL_SUFFIXES + (".parquet", ".txt", ".md"), key=len, reverse=True):
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "input"


def plan_units(spec: IngestSpec) -> list[Unit]:
    """One unit per input, with an id from (relative path, content, read options) and a unique shard stem."""
    found: dict[Path, tuple[str, str]] = {}
    out = Path(spec.output).resolve()
    for item in spec.inputs:
        for path, fmt, rel in _expand_one(item, spec.format):
            if out == path.resolve() or out in path.resolve().parents:
                continue  # our own earlier output, met again by a directory input or a glob
            found.setdefault(path.resolve(), (fmt, rel))
    if not found:
        raise FileNotFoundError(f"ingest: inputs {spec.inputs} hold nothing to read outside the output {out}")
    opts = spec.model_dump(exclude={"inputs", "output", "executor", "format"})
    opts_key = json.dumps(opts, sort_keys=True)
    units, stems = [], {}
    for path, (fmt, rel) in sorted(found.items(), key=lambda kv: kv[1][1]):
        key = f"{fmt}\0{rel}\0{_content_hash(path, fmt)}\0{opts_key}"
        uid = hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
        if any(u.id == uid for u in units):
            log.warning("ingest: %s is an exact copy of an input already listed; reading it once", path)
            continue
        stems.setdefault(_stem(rel), []).append(uid)
        units.append(Unit(id=uid, inputs=(str(path),), output=spec.output,
                          params={"format": fmt, "rel": rel, "stem": _stem(rel)}))
    # Two inputs with the same file name (a/x.jsonl, b/x.jsonl) get the unit id in their stem.
    return [Unit(u.id, u.inputs, u.output, {**u.params, "stem": f"{u.params['stem']}-{u.id[:8]}"})
            if len(stems[u.params["stem"]]) > 1 else u for u in units]


# --------------------------------------------------------------------------------------------- the stage

class IngestStage(Stage):
    """Reads one input and writes its shards; picklable (options only), so it runs in workers and Ray actors."""
    name = "ingest"

    def __init__(self, opts: ReadOptions, shard_bytes: int):
        self.opts, self.shard_bytes = opts, shard_bytes

    def process(self, unit: Unit) -> dict[str, Any]:
        out = Path(unit.output)
        stem, fmt = unit.params["stem"], unit.params["format"]
        staging = out / f".staging-{unit.id}"
        shutil.rmtree(staging, ignore_errors=True)  # leftovers of an attempt that was killed
        staging.mkdir(parents=True)
        try:
            stats = self._write(Path(unit.inputs[0]), fmt, stem, staging)
            for e in stats["shards"]:
                os.replace(staging / e["path"], out / e["path"])
            _remove_stale(out, stem, len(stats["shards"]))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        stats.update(input=unit.params["rel"], format=fmt)
        return stats

    def _write(self, path: Path, fmt: str, stem: str, staging: Path) -> dict[str, Any]:
        skips = SkipCounter()
        entries: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []
        acc = rows = chars = 0
        for doc in read_docs(path, fmt, self.opts, skips, label=str(path)):
            batch.append(doc)
            n = len(doc["text"])
            rows, chars, acc = rows + 1, chars + n, acc + n
            if acc >= self.shard_bytes:
                entries.append(write_table(staging / shard_name(stem, len(entries)), table_from_docs(batch)))
                batch, acc = [], 0
        if batch:
            entries.append(write_table(staging / shard_name(stem, len(entries)), table_from_docs(batch)))
        return {"rows_in": rows + skips.total, "rows_out": rows, "chars": chars,
                "skipped": dict(sorted(skips.reasons.items())), "skip_examples": skips.examples, "shards": entries}


def _remove_stale(out: Path, stem: str, keep: int) -> None:
    """Shards of this stem numbered >= keep come from an older, longer version of the input."""
    for p in out.glob(f"{glob.escape(stem)}-[0-9][0-9][0-9][0-9][0-9].parquet"):
        if int(p.stem.rsplit("-", 1)[1]) >= keep:
            p.unlink()


# --------------------------------------------------------------------------------------------- the driver

def _totals(per_unit: list[dict[str, Any]]) -> dict[str, Any]:
    skipped: dict[str, int] = {}
    for s in per_unit:
        for k, v in s["skipped"].items():
            skipped[k] = skipped.get(k, 0) + v
    return {"inputs": len(per_unit), "rows_in": sum(s["rows_in"] for s in per_unit),
            "rows_out": sum(s["rows_out"] for s in per_unit), "chars": sum(s["chars"] for s in per_unit),
            "skipped": dict(sorted(skipped.items())), "shards": sum(len(s["shards"]) for s in per_unit)}


def run_ingest(spec: IngestSpec, on_event: OnEvent | None = None) -> dict[str, Any]:
    """Run the ingest job (run-function contract in corpus/spec.py); returns a summary with `outputs`."""
    emit = on_event or (lambda ev: None)
    out = Path(spec.output)
    units = plan_units(spec)
    prepare_output(out)
    save_spec(spec, out / SPEC_NAME, "ingest")
    cached = _check_done(out, units)
    emit(Log(f"ingest: {len(units)} input(s), {cached} already done"))
    emit(Progress(cached, len(units)))
    t0 = time.perf_counter()
    stage = IngestStage(spec.read_options(), spec.shard_bytes)
    per_unit = spec.executor.build().run(stage, units, out, desc="ingest", on_event=on_event)
    seconds = time.perf_counter() - t0
    totals = _totals(per_unit)
    entries = [e for s in per_unit for e in s["shards"]]
    write_index(out, entries, extra={"stage": "ingest", "stats": totals})
    atomic_write_json(out / STATS_NAME, {**totals, "units": per_unit})
    _warn_unlisted(out, {e["path"] for e in entries})
    emit(Progress(len(units), len(units)))
    if totals["skipped"]:
        log.warning("ingest: skipped %d bad record(s): %s", sum(totals["skipped"].values()), totals["skipped"])
    return {**totals, "units_cached": cached, "seconds": round(seconds, 3), "output": str(out),
            "outputs": [str(out / e["path"]) for e in sorted(entries, key=lambda e: e["path"])]
            + [str(out / INDEX_NAME), str(out / STATS_NAME), str(out / SPEC_NAME)]}


def _check_done(out: Path, units: list[Unit]) -> int:
    """Count finished units; a unit whose marker names shards that are gone or changed is redone."""
    def stale(u: Unit, stats: dict) -> bool:
        shards = stats.get("shards", [])
        if all((out / e["path"]).is_file() and (out / e["path"]).stat().st_size == e["bytes"] for e in shards):
            return False
        log.warning("ingest: output of %s is missing or changed; redoing it", u.params["rel"])
        return True
    return forget_stale(out, IngestStage.name, units, stale)


def _warn_unlisted(out: Path, listed: set[str]) -> None:
    extra = sorted(p.name for p in out.glob("*.parquet") if p.name not in listed)
    if extra:
        log.warning("ingest: %s holds %d shard(s) not in %s (from other inputs or runs): %s", out, len(extra),
                    INDEX_NAME, ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else ""))
