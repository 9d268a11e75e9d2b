"""Parquet shards: atomic writes, deterministic names, a shard index with row counts and checksums.

Every file a stage produces goes through `atomic_path` (write to a temp name in the same directory, fsync,
rename), so a crash leaves either the finished file or nothing. Shard names are `{prefix}-{n:05d}.parquet`.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus.layout import INDEX, META_DIR, find_meta, meta_path
from corpus.schema import DOC_SCHEMA, SYNTH_SCHEMA, validate_table

INDEX_NAME = f"{META_DIR}/{INDEX}"   # relative to the output folder (corpus.layout)
DEFAULT_SHARD_BYTES = 64 << 20


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success rename it into place, on failure remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_name(prefix: str, n: int) -> str:
    return f"{prefix}-{n:05d}.parquet"


def write_table(path: str | os.PathLike, table: pa.Table) -> dict[str, Any]:
    """Write one parquet file atomically; return its index entry."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if table.num_rows:
            pq.write_table(table, tmp, compression="zstd")
        else:   # no row group at all: `datasets` fails on a row group of 0 rows ("BatchSize must be > 0")
            pq.ParquetWriter(tmp, table.schema, compression="zstd").close()
    return {"path": path.name, "rows": table.num_rows, "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def split_by_bytes(table: pa.Table, target_bytes: int) -> list[pa.Table]:
    """Split a table into contiguous pieces of about `target_bytes` of text each (at least one row per piece)."""
    if table.num_rows == 0:
        return [table]
    sizes = pc.binary_length(table.column("text")).to_numpy(zero_copy_only=False)
    pieces, start, acc = [], 0, 0
    for i, s in enumerate(sizes):
        if acc and acc + s > target_bytes:
            pieces.append(table.slice(start, i - start))
            start, acc = i, 0
        acc += int(s)
    pieces.append(table.slice(start))
    return pieces


def write_shards(out_dir: str | os.PathLike, prefix: str, table: pa.Table,
                 target_bytes: int = DEFAULT_SHARD_BYTES) -> list[dict[str, Any]]:
    """Write `table` as `{prefix}-00000.parquet`, … of about `target_bytes` each; return index entries."""
    out_dir = Path(out_dir)
    return [write_table(out_dir / shard_name(prefix, i), t)
            for i, t in enumerate(split_by_bytes(table, target_bytes))]


def write_index(out_dir: str | os.PathLike, entries: list[dict[str, Any]], extra: dict | None = None) -> Path:
    """Write `.k2forge/index.json` listing shards (sorted by name) with rows, bytes and sha256."""
    entries = sorted(entries, key=lambda e: e["path"])
    index = {"shards": entries, "total_rows": sum(e["rows"] for e in entries), **(extra or {})}
    path = meta_path(out_dir, INDEX)
    atomic_write_json(path, index)
    return path


def read_index(out_dir: str | os.PathLike) -> dict[str, Any]:
    path = find_meta(out_dir, INDEX)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no shard index (is this a k2forge shard directory?)")
    return json.loads(path.read_text())


def expand_inputs(inputs: str | os.PathLike | list, pattern: str = "*.parquet") -> list[Path]:
    """Resolve shard inputs: a directory (its `*.parquet`), a glob, a file, or a list of those. Sorted, unique."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.update(q for q in p.glob(pattern) if not q.name.startswith((".", "_")))
        elif any(c in str(item) for c in "*?["):
            found.update(Path(q) for q in glob.glob(str(item), recursive=True))
        elif p.exists():
            found.add(p)
        else:
            raise FileNotFoundError(f"{item}: no such file or directory")
    return sorted(found)


def read_shard(path: str | os.PathLike) -> pa.Table:
    """Read and validate one document shard."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{path}: not a readable parquet file ({e})") from None
    return validate_table(table, str(path))


def iter_docs(paths: list[Path]) -> Iterator[dict[str, Any]]:
    for p in paths:
        yield from read_shard(p).to_pylist()


def empty_table(synthetic: bool = False) -> pa.Table:
    return (SYNTH_SCHEMA if synthetic else DOC_SCHEMA).empty_table()
