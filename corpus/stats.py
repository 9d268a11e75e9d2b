"""`k2forge corpus stats PATH`: documents and characters per domain, source, language and task of document shards,
plus fidelity acceptance when the shards are synthetic, and the ingest skip counts when PATH is an ingest output.

Shards are read in record batches of the few columns needed, and counting is done with Arrow group-bys, so the
text of a large corpus is never held in memory at once.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus.schema import SchemaError
from corpus.layout import INDEX, STATS, find_meta
from corpus.shards import expand_inputs

KEYS = ("domain", "source", "lang", "task")
_REQUIRED = ("text", "domain")


def shard_paths(inputs: str | os.PathLike | list) -> list[Path]:
    """Shards of a directory (those in its shard index when present), a glob, files, or a list of those."""
    items = inputs if isinstance(inputs, list) else [inputs]
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir() and find_meta(p, INDEX).exists():
            index = json.loads(find_meta(p, INDEX).read_text())
            listed = [p / e["path"] for e in index.get("shards", []) if str(e.get("path", "")).endswith(".parquet")]
            paths.extend(listed or expand_inputs(p))
        else:
            paths.extend(expand_inputs(p))
    if not paths:
        raise FileNotFoundError(f"{', '.join(map(str, items))}: no document shards (.parquet) found")
    return sorted(set(paths))


class _Tally:
    def __init__(self) -> None:
        self.docs = self.chars = self.synthetic = 0
        self.by: dict[str, dict[str, Counter]] = {k: {"docs": Counter(), "chars": Counter()} for k in KEYS}
        self.fid: dict[str, Counter] = {"accepted": Counter(), "rejected": Counter(), "unverified": Counter()}
        self.reasons: Counter = Counter()

    def add(self, batch: pa.RecordBatch) -> None:
        names = batch.schema.names
        n = batch.num_rows
        lengths = pc.fill_null(pc.utf8_length(batch.column(names.index("text"))), 0).cast(pa.int64())
        self.docs += n
        self.chars += pc.sum(lengths).as_py() or 0
        task = batch.column(names.index("task")) if "task" in names else pa.nulls(n, pa.string())
        task = pc.fill_null(task.cast(pa.string()), "raw")
        if "parent_id" in names:
            self.synthetic += n - batch.column(names.index("parent_id")).null_count
        for key in KEYS:
            col = task if key == "task" else (batch.column(names.index(key)) if key in names
                                              else pa.nulls(n, pa.string()))
            grouped = pa.table({"k": pc.fill_null(col.cast(pa.string()), ""), "n": lengths}).group_by("k") \
                .aggregate([("n", "sum"), ("n", "count")])
            for k, s, c in zip(*(grouped.column(x).to_pylist() for x in ("k", "n_sum", "n_count"))):
                self.by[key]["docs"][k] += c
                self.by[key]["chars"][k] += s
        if "fidelity" in names:
            self._add_fidelity(batch.column(names.index("fidelity")), task.to_pylist())

    def _add_fidelity(self, col: pa.Array, tasks: list[str]) -> None:
        for fid, task in zip(col.to_pylist(), tasks):
            if fid is None or fid.get("accepted") is None:
                self.fid["unverified"][task] += 1
                continue
            self.fid["accepted" if fid["accepted"] else "rejected"][task] += 1
            if not fid["accepted"]:
                self.reasons.update(fid.get("reasons") or ["(no reason given)"])

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"docs": self.docs, "chars": self.chars, "synthetic_docs": self.synthetic}
        for key in KEYS:
            docs, chars = self.by[key]["docs"], self.by[key]["chars"]
            out[f"by_{key}"] = {k: {"docs": docs[k], "chars": chars[k]}
                                for k in sorted(docs, key=lambda k: (-docs[k], k))}
        verified = sum(self.fid["accepted"].values()) + sum(self.fid["rejected"].values())
        if self.synthetic or verified:
            tasks = sorted(set().union(*self.fid.values()))
            out["fidelity"] = {
                **{v: sum(c.values()) for v, c in self.fid.items()},
                "acceptance_rate": round(sum(self.fid["accepted"].values()) / verified, 4) if verified else None,
                "by_task": {t: {v: self.fid[v][t] for v in self.fid} for t in tasks},
                "reject_reasons": dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])))}
        return out


def corpus_stats(inputs: str | os.PathLike | list, batch_rows: int = 8192) -> dict[str, Any]:
    """Counts over every document shard under `inputs` (see module docstring)."""
    paths = shard_paths(inputs)
    tally = _Tally()
    for p in paths:
        try:
            pf = pq.ParquetFile(p)
        except (pa.ArrowInvalid, OSError) as e:
            raise SchemaError(f"{p}: not a readable parquet file ({e})") from None
        names = pf.schema_arrow.names
        missing = [c for c in _REQUIRED if c not in names]
        if missing:
            raise SchemaError(f"{p}: not a document shard (missing column(s) {', '.join(missing)})")
        cols = [c for c in ("text", *KEYS, "parent_id", "fidelity") if c in names]
        for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
            tally.add(batch)
    result = {"shards": len(paths), **tally.result()}
    ingest = _ingest_skips(inputs)
    if ingest is not None:
        result["ingest"] = ingest
    return result


def _ingest_skips(inputs: Any) -> dict[str, Any] | None:
    if isinstance(inputs, list) or not find_meta(inputs, STATS).is_file():
        return None
    st = json.loads(find_meta(inputs, STATS).read_text())
    if not {"rows_in", "rows_out", "skipped"} <= set(st):
        return None  # another stage's stats
    return {"rows_in": st["rows_in"], "rows_out": st["rows_out"], "skipped": st["skipped"]}


def format_stats(s: dict[str, Any], top: int = 15) -> str:
    """Human-readable report; the `top` most frequent values of each key (JSON output has them all)."""
    lines = [f"shards {s['shards']}   docs {s['docs']:,}   chars {s['chars']:,}"
             + (f"   synthetic {s['synthetic_docs']:,}" if s["synthetic_docs"] else "")]
    for key in KEYS:
        rows = s[f"by_{key}"]
        if key == "task" and list(rows) == ["raw"]:
            continue
        lines.append(f"by {key}:")
        for k, v in list(rows.items())[:top]:
            share = v["docs"] / s["docs"] if s["docs"] else 0
            lines.append(f"  {k or '(none)':<28} {v['docs']:>9,} docs {share:6.1%} {v['chars']:>13,} chars")
        if len(rows) > top:
            lines.append(f"  ... {len(rows) - top} more (use --json for all)")
    fid = s.get("fidelity")
    if fid:
        rate = "n/a" if fid["acceptance_rate"] is None else f"{fid['acceptance_rate']:.1%}"
        lines.append(f"fidelity: accepted {fid['accepted']:,}  rejected {fid['rejected']:,}  "
                     f"unverified {fid['unverified']:,}  acceptance {rate}")
        for t, c in fid["by_task"].items():
            lines.append(f"  {t:<28} accepted {c['accepted']:,}  rejected {c['rejected']:,}  "
                         f"unverified {c['unverified']:,}")
        for r, n in list(fid["reject_reasons"].items())[:top]:
            lines.append(f"  reject reason {r}: {n:,}")
    ing = s.get("ingest")
    if ing:
        skipped = ", ".join(f"{k} {v}" for k, v in ing["skipped"].items()) or "none"
        lines.append(f"ingest: {ing['rows_in']:,} records read, {ing['rows_out']:,} kept; skipped: {skipped}")
    return "\n".join(lines)
