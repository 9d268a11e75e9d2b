"""Saved dedup indexes, for incremental dedup: new shards against an already deduplicated corpus.

A run with `save_index: true` writes `{output}/.k2forge/dedup_index/`: per kept shard the records, signatures and
band-bucket keys (corpus.lsh layout) of its kept documents only, rows numbered as in the kept part file, plus
`index.json` with the signature parameters and the indexes the run itself was deduplicated against. A run
with `index: [dir, ...]` puts those documents (and, transitively, the indexes they include) in front of its
own: they join every band unit, never get removed and win every cluster, so only new documents are removed.
The indexed corpus is not reread, except the texts of the few pairs that the exact Jaccard re-check settles.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpus.dedup_stages import bands_path, save_npy, sig_path
from corpus.executor import Unit
from corpus.layout import DEDUP_INDEX, META_DIR, find_meta
from corpus.shards import atomic_write_json, write_table

INDEX_DIR = f"{META_DIR}/{DEDUP_INDEX}"   # relative to the dedup output (corpus.layout)
MANIFEST = "index.json"


@dataclass
class IndexParts:
    """The indexed documents as per-shard files: records, kept part files (their texts) and row counts."""
    metas: list[str] = field(default_factory=list)
    parts: list[Path] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)


def load_index(dirs: list[str], params: dict[str, Any]) -> IndexParts:
    """The documents of the saved indexes in `dirs` (dedup outputs), following the indexes they include."""
    out, seen = IndexParts(), set()
    todo = [str(Path(d).resolve()) for d in dirs]
    while todo:
        d = todo.pop(0)
        if d in seen:
            continue
        seen.add(d)
        idir = find_meta(d, DEDUP_INDEX)   # an output of an older version keeps it in _dedup_index/
        manifest = idir / MANIFEST
        if not manifest.exists():
            raise FileNotFoundError(f"dedup index {d}: no {INDEX_DIR}/{MANIFEST} (run that dedup with "
                                    f"save_index: true)")
        saved = json.loads(manifest.read_text())
        diff = sorted(k for k in set(params) | set(saved["params"]) if params.get(k) != saved["params"].get(k))
        if diff:
            raise ValueError(f"dedup index {d}: built with other parameters ({', '.join(diff)}): "
                             + "; ".join(f"{k}: index {saved['params'].get(k)!r}, spec {params.get(k)!r}"
                                         for k in diff))
        for e in saved["entries"]:
            out.metas.append(str(idir / e["meta"]))
            out.parts.append(Path(d) / e["part"])
            out.rows.append(e["rows"])
        out.dirs.append(d)
        todo.extend(saved["includes"])
    return out


def drop_index(out: Path) -> None:
    """Remove a saved index (its manifest first, so a half-removed index is never taken for one)."""
    (out / INDEX_DIR / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(out / INDEX_DIR, ignore_errors=True)


def save_index(out: Path, units: list[Unit], wunits: list[Unit], params: dict[str, Any],
               prior: IndexParts) -> dict[str, Any]:
    """Write `{out}/.k2forge/dedup_index` from the signature units and the kept rows of the write units, one shard at
    a time (memory follows the shard); the manifest goes last, so an interrupted save leaves no index."""
    entries = []
    for k, (u, wu) in enumerate(zip(units, wunits)):
        keep = np.asarray(wu.params["keep"], dtype=np.int64)
        meta = Path(out / INDEX_DIR / f"part-{k:05d}.parquet")
        save_npy(sig_path(meta), np.load(sig_path(u.output), mmap_mode="r")[keep])
        save_npy(bands_path(meta), np.ascontiguousarray(np.load(bands_path(u.output), mmap_mode="r")[:, keep]))
        table = pq.read_table(u.output).take(pa.array(keep))
        table = table.set_column(0, "row", pa.array(np.arange(len(keep), dtype=np.int64)))  # row in the part
        write_table(meta, table)
        entries.append({"meta": meta.name, "part": Path(wu.output).name, "rows": len(keep)})
    atomic_write_json(out / INDEX_DIR / MANIFEST, {"params": params, "entries": entries, "includes": prior.dirs})
    return {"docs": sum(e["rows"] for e in entries), "shards": len(entries)}
