"""Exact + near-duplicate removal over many document shards (MinHash LSH), in three stages.

  1. signatures (executor, one unit per input shard): per document its exact key (digest of the normalised
     text, see corpus.minhash), length, shingle count and MinHash signature -> `_state/signatures/*.parquet`.
  2. clusters (driver): exact groups by key; LSH banding over the signatures of the exact survivors gives
     candidate pairs, kept as edges when their estimated Jaccard >= `threshold` (with `exact_recheck`, pairs
     whose estimate lies within 3 standard errors of the threshold are decided by the exact Jaccard of their
     shingle sets instead: sampling noise there would otherwise flip about half of them); union-find joins both
     kinds of edges into clusters.
  3. write (executor, one unit per input shard): the kept rows of each input shard -> `part-NNNNN.parquet`.

Kept document of a cluster (deterministic, independent of shard order and count): the longest text (in
characters), then the smallest id, then the smallest exact key, then the first input path and row. A removed
document's reason is `exact` when its normalised text equals the kept one's, else `near`; its similarity is the
estimated Jaccard against the kept document (1.0 for exact); it can lie below the threshold when the document
joined the cluster through another member or when the exact re-check settled a pair.

Outputs in `output/`: kept shards + `_index.json`, `_clusters.parquet` (one row per cluster of 2+ docs),
`_removed.parquet` (one row per removed doc), `_stats.json`, `_spec.yaml`. Units are skipped on rerun.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field, model_validator

from corpus.executor import Stage, Unit
from corpus.minhash import (MinHasher, batches, candidate_pairs, connected_components, estimated_jaccard,
                            exact_key, lsh_threshold, normalize_text, s_curve)
from corpus.shards import INDEX_NAME, atomic_write_json, expand_inputs, read_shard, write_index, write_table
from corpus.spec import ExecutorSpec, Spec, save_spec

log = logging.getLogger(__name__)

SPEC_NAME, STATS_NAME = "_spec.yaml", "_stats.json"
CLUSTERS_NAME, REMOVED_NAME = "_clusters.parquet", "_removed.parquet"
STATE_DIR = "_state"


class DedupSpec(Spec):
    """The dedup job. Defaults: word 5-shingles, 128 permutations as 32 bands x 4 rows (LSH S-curve midpoint
    (1/32)^(1/4) = 0.42, so pairs at the 0.7 threshold become candidates with probability 0.9998), verified at
    Jaccard 0.7."""
    inputs: list[str] = Field(..., min_length=1, description="document shards: directories, globs or files")
    output: str = Field(..., description="directory for kept shards, reports and state")
    exact: bool = Field(True, description="remove exact duplicates (same normalised text)")
    near: bool = Field(True, description="remove near duplicates (MinHash LSH)")
    shingle_size: int = Field(5, ge=1, description="units per shingle")
    shingle_unit: Literal["word", "char"] = Field("word", description="shingle unit: words or characters")
    shingle_hash: Literal["fast", "sha1"] = Field(
        "fast", description="fast: vectorised polynomial hash; sha1: datasketch's default hash (slower)")
    scheme: Literal["affine32", "legacy"] = Field("affine32", description="datasketch permutation scheme")
    num_perm: int = Field(128, ge=1, le=4096, description="MinHash permutations (= bands * rows)")
    bands: int = Field(32, ge=1, description="LSH bands")
    rows: int = Field(4, ge=1, description="signature values per band")
    threshold: float = Field(0.7, gt=0.0, le=1.0, description="Jaccard a candidate pair must reach")
    exact_recheck: bool = Field(
        True, description="re-check candidates whose estimate is within 3 standard errors of the threshold "
                          "against the exact Jaccard of their shingle sets (reads those documents again)")
    seed: int = Field(1, ge=0, lt=2 ** 32, description="permutation seed (datasketch semantics)")
    batch_size: int = Field(1024, ge=1, description="documents per signature batch")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)

    @model_validator(mode="after")
    def _check(self) -> "DedupSpec":
        if self.bands * self.rows != self.num_perm:
            raise ValueError(f"bands * rows must equal num_perm: bands={self.bands} * rows={self.rows} = "
                             f"{self.bands * self.rows}, num_perm={self.num_perm}")
        if not (self.exact or self.near):
            raise ValueError("nothing to do: at least one of exact and near must be true")
        return self

    def hasher(self) -> MinHasher:
        """The signature computer these parameters describe."""
        return MinHasher(self.num_perm, self.seed, self.shingle_size, self.shingle_unit, self.shingle_hash,
                         self.scheme)


# ------------------------------------------------------------------------------------------ stage 1

def _sig_schema(num_perm: int | None) -> pa.Schema:
    fields = [pa.field("row", pa.int64()), pa.field("id", pa.string()), pa.field("n_chars", pa.int64()),
              pa.field("xkey", pa.binary(16)), pa.field("n_shingles", pa.int64())]
    if num_perm:
        fields.append(pa.field("sig", pa.list_(pa.uint32(), num_perm)))
    return pa.schema(fields)


MAX_BATCH_CHARS = 1 << 22  # signature working memory is ~40 bytes per character of a batch


class SignatureStage(Stage):
    """Input shard -> one parquet of (row, id, n_chars, xkey, n_shingles[, sig]) per document."""
    name = "dedup-signatures"

    def __init__(self, hasher: MinHasher | None, batch_size: int):
        self.hasher, self.batch_size = hasher, batch_size

    def process(self, unit: Unit) -> dict[str, Any]:
        t0 = time.perf_counter()
        table = read_shard(unit.inputs[0])
        texts = table.column("text").to_pylist()
        norms = [normalize_text(t) for t in texts]  # shared by the exact key and the shingles
        cols: dict[str, Any] = {
            "row": np.arange(len(texts), dtype=np.int64), "id": table.column("id"),
            "n_chars": pc.utf8_length(table.column("text")).cast(pa.int64()),
            "xkey": pa.array([exact_key(t, normalized=True) for t in norms], type=pa.binary(16)),
            "n_shingles": np.zeros(len(texts), dtype=np.int64)}
        if self.hasher is not None:
            sig = np.empty((len(texts), self.hasher.num_perm), dtype=np.uint32)
            for lo, hi in batches(norms, self.batch_size, MAX_BATCH_CHARS):
                hv, counts = self.hasher.shingle_hashes(norms[lo:hi], normalized=True)
                sig[lo:hi] = self.hasher.signatures_from_hashes(hv, counts)
                cols["n_shingles"][lo:hi] = counts
            cols["sig"] = pa.FixedSizeListArray.from_arrays(pa.array(sig.ravel()), self.hasher.num_perm)
        num_perm = self.hasher.num_perm if self.hasher else None
        write_table(unit.output, pa.table(cols, schema=_sig_schema(num_perm)))
        return {"rows": len(texts), "shingles": int(cols["n_shingles"].sum()),
                "seconds": round(time.perf_counter() - t0, 4)}


# ------------------------------------------------------------------------------------------ stage 3

class WriteStage(Stage):
    """Input shard + kept row numbers (unit params) -> the kept shard."""
    name = "dedup-write"

    def process(self, unit: Unit) -> dict[str, Any]:
        table = read_shard(unit.inputs[0])
        kept = table.take(pa.array(unit.params["keep"], type=pa.int64()))
        entry = write_table(unit.output, kept)
        return {"rows_in": table.num_rows, "rows_out": kept.num_rows, "entry": {**entry, "input": unit.inputs[0]},
                "mtime_ns": Path(unit.output).stat().st_mtime_ns}


def _drop_stale_markers(units: list[Unit], state: Path, stage: str) -> None:
    """Forget finished units whose output is gone or was since overwritten (part files are named by input
    position, so another run in the same output directory can replace them), so that the executor redoes them."""
    for u in units:
        marker = state / "_done" / stage / f"{u.id}.json"
        if not marker.exists():
            continue
        out = Path(u.output)
        mtime = json.loads(marker.read_text()).get("mtime_ns")
        if not out.exists() or (mtime is not None and out.stat().st_mtime_ns != mtime):
            marker.unlink()


def _fingerprint(*parts: Any) -> str:
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=6).hexdigest()


def _file_key(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


# ------------------------------------------------------------------------------------------ stage 2

class Docs:
    """All documents' signature records, concatenated and sorted by keep priority (index 0 = kept first)."""

    def __init__(self, tables: list[pa.Table], paths: list[Path]):
        cols = [t.append_column("shard", pa.array(np.full(t.num_rows, k, dtype=np.int64)))
                .append_column("path", pa.array([str(paths[k])] * t.num_rows, type=pa.string()))
                for k, t in enumerate(tables)]
        table = pa.concat_tables(cols) if cols else pa.table({})
        if table.num_rows:
            order = pc.sort_indices(table, sort_keys=[("n_chars", "descending"), ("id", "ascending"),
                                                      ("xkey", "ascending"), ("path", "ascending"),
                                                      ("row", "ascending")])
            table = table.take(order)
        self.n, self.paths = table.num_rows, paths
        self.ids = table.column("id").to_pylist() if self.n else []
        self.shard = table.column("shard").to_numpy() if self.n else np.zeros(0, np.int64)
        self.row = table.column("row").to_numpy() if self.n else np.zeros(0, np.int64)
        self.n_shingles = table.column("n_shingles").to_numpy() if self.n else np.zeros(0, np.int64)
        self.xkey = (np.frombuffer(b"".join(table.column("xkey").to_pylist()), dtype="V16") if self.n
                     else np.zeros(0, dtype="V16"))
        self.sig = None
        if self.n and "sig" in table.column_names:
            flat = pc.list_flatten(table.column("sig")).to_numpy()
            self.sig = flat.reshape(self.n, -1)


def _exact_edges(docs: Docs) -> tuple[np.ndarray, np.ndarray]:
    """(edges from each exact duplicate to its group's first doc, mask of docs that are group firsts)."""
    _, first, inverse = np.unique(docs.xkey, return_index=True, return_inverse=True)
    root = first[inverse.ravel()]
    dup = np.flatnonzero(root != np.arange(docs.n))
    return np.stack([root[dup], dup], axis=1), root == np.arange(docs.n)


def _near_edges(docs: Docs, nodes: np.ndarray, spec: DedupSpec) -> tuple[np.ndarray, dict[str, int]]:
    """LSH candidates among `nodes` (ascending), verified by estimated Jaccard >= threshold; estimates too
    close to the threshold to trust (within 3 standard errors) are settled by the exact Jaccard instead."""
    nodes = nodes[docs.n_shingles[nodes] > 0]  # a doc without shingles has no signature to compare
    sub = docs.sig[nodes]
    pairs = candidate_pairs(sub, spec.bands, spec.rows)
    sim = estimated_jaccard(sub, pairs)
    ok = sim >= spec.threshold
    unsure = np.zeros(0, dtype=np.int64)
    if spec.exact_recheck:
        margin = 3.0 * np.sqrt(spec.threshold * (1.0 - spec.threshold) / spec.num_perm)
        unsure = np.flatnonzero(np.abs(sim - spec.threshold) <= margin)
        ok[unsure] = exact_jaccard(docs, nodes[pairs[unsure]], spec.hasher()) >= spec.threshold
    edges = nodes[pairs[ok]]
    return edges.reshape(-1, 2), {"candidate_pairs": len(pairs), "rechecked_pairs": len(unsure),
                                  "verified_pairs": len(edges)}


def exact_jaccard(docs: Docs, pairs: np.ndarray, hasher: MinHasher) -> np.ndarray:
    """Exact Jaccard of the shingle-hash sets of each pair of doc indices (texts re-read from the inputs)."""
    need = np.unique(pairs)
    sets: dict[int, np.ndarray] = {}
    for k in np.unique(docs.shard[need]):
        idx = need[docs.shard[need] == k]
        texts = pq.read_table(docs.paths[k], columns=["text"]).column("text").take(
            pa.array(docs.row[idx])).to_pylist()
        hv, counts = hasher.shingle_hashes(texts)
        for i, h in zip(idx.tolist(), np.split(hv, np.cumsum(counts)[:-1])):
            sets[i] = np.unique(h)
    out = np.empty(len(pairs), dtype=np.float64)
    for n, (a, b) in enumerate(pairs.tolist()):
        inter = len(np.intersect1d(sets[a], sets[b], assume_unique=True))
        out[n] = inter / (len(sets[a]) + len(sets[b]) - inter)
    return out


def cluster(docs: Docs, spec: DedupSpec) -> tuple[np.ndarray, dict[str, int]]:
    """Root (= kept doc index) of every doc, plus pair counts."""
    edges = [np.zeros((0, 2), dtype=np.int64)]
    nodes = np.arange(docs.n)
    counts = {"candidate_pairs": 0, "rechecked_pairs": 0, "verified_pairs": 0}
    if spec.exact:
        exact, is_first = _exact_edges(docs)
        edges.append(exact)
        nodes = np.flatnonzero(is_first)  # near search only among exact survivors
    if spec.near and docs.n:
        near, counts = _near_edges(docs, nodes, spec)
        edges.append(near)
    return connected_components(docs.n, np.concatenate(edges)), counts


def _reports(docs: Docs, root: np.ndarray, spec: DedupSpec, paths: list[Path]) -> tuple[pa.Table, pa.Table]:
    """(clusters table, removed table) from cluster roots."""
    removed = np.flatnonzero(root != np.arange(docs.n))
    kept_of = root[removed]
    exact = (docs.xkey[removed] == docs.xkey[kept_of]) & spec.exact if len(removed) else np.zeros(0, bool)
    sim = np.ones(len(removed))
    if docs.sig is not None and len(removed):
        sim = np.where(exact, 1.0, estimated_jaccard(docs.sig, np.stack([removed, kept_of], axis=1)))
    roots = np.unique(kept_of)
    cid = np.searchsorted(roots, kept_of)  # cluster ids follow the kept docs' priority order
    rem = pa.table({
        "id": [docs.ids[i] for i in removed], "shard": [str(paths[docs.shard[i]]) for i in removed],
        "row": docs.row[removed], "reason": ["exact" if e else "near" for e in exact],
        "kept_id": [docs.ids[i] for i in kept_of], "kept_shard": [str(paths[docs.shard[i]]) for i in kept_of],
        "kept_row": docs.row[kept_of], "cluster_id": cid.astype(np.int64), "similarity": sim})
    order = np.argsort(cid, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(cid[order])) + 1) if len(order) else []
    clu = pa.table({
        "cluster_id": np.arange(len(roots), dtype=np.int64), "kept_id": [docs.ids[r] for r in roots],
        "kept_shard": [str(paths[docs.shard[r]]) for r in roots], "kept_row": docs.row[roots],
        "size": np.array([len(g) + 1 for g in groups], dtype=np.int64),
        "removed_ids": [[docs.ids[removed[i]] for i in g] for g in groups],
        "reasons": [["exact" if exact[i] else "near" for i in g] for g in groups],
        "similarity": [sim[g].tolist() for g in groups],
        "min_similarity": np.array([sim[g].min() for g in groups], dtype=np.float64)},
        schema=pa.schema([("cluster_id", pa.int64()), ("kept_id", pa.string()), ("kept_shard", pa.string()),
                          ("kept_row", pa.int64()), ("size", pa.int64()), ("removed_ids", pa.list_(pa.string())),
                          ("reasons", pa.list_(pa.string())), ("similarity", pa.list_(pa.float64())),
                          ("min_similarity", pa.float64())]))
    return clu, rem


# ------------------------------------------------------------------------------------------ the driver

def _check_paths(spec: DedupSpec) -> tuple[list[Path], Path]:
    paths = expand_inputs(spec.inputs)
    if not paths:
        raise FileNotFoundError(f"dedup: no input shards (*.parquet) found in {', '.join(spec.inputs)}")
    out = Path(spec.output).resolve()
    inside = [p for p in paths if out in p.resolve().parents]
    if inside:
        raise ValueError(f"dedup: output {spec.output} contains input shard {inside[0]}: choose another output")
    return paths, Path(spec.output)


def _signature_units(spec: DedupSpec, paths: list[Path], out: Path) -> list[Unit]:
    params = spec.model_dump(include={"near", "shingle_size", "shingle_unit", "shingle_hash", "scheme",
                                      "num_perm", "seed"})
    units = []
    for k, p in enumerate(paths):
        uid = f"{k:05d}-{_fingerprint(_file_key(p), params)}"
        units.append(Unit(uid, (str(p),), str(out / STATE_DIR / "signatures" / f"{uid}.parquet")))
    return units


def _write_units(paths: list[Path], out: Path, root: np.ndarray, docs: Docs) -> list[Unit]:
    kept = np.flatnonzero(root == np.arange(docs.n))
    units = []
    for k, p in enumerate(paths):
        rows = np.sort(docs.row[kept[docs.shard[kept] == k]])
        uid = f"{k:05d}-{_fingerprint(_file_key(p), hashlib.blake2b(rows.tobytes()).hexdigest())}"
        units.append(Unit(uid, (str(p),), str(out / f"part-{k:05d}.parquet"), {"keep": rows}))
    return units


def _stats(spec: DedupSpec, docs: Docs, clu: pa.Table, rem: pa.Table, counts: dict, per_shard: list,
           secs: dict) -> dict:
    reasons = rem.column("reason").to_pylist()
    return {
        "docs_in": docs.n, "docs_out": docs.n - rem.num_rows, "exact_removed": reasons.count("exact"),
        "near_removed": reasons.count("near"), "clusters": clu.num_rows,
        "threshold": spec.threshold, "exact_recheck": spec.exact_recheck, **counts,
        "lsh": {"num_perm": spec.num_perm, "bands": spec.bands, "rows": spec.rows,
                "implied_threshold": round(lsh_threshold(spec.bands, spec.rows), 6),
                "s_curve": s_curve(spec.bands, spec.rows)},
        "shingles": {"size": spec.shingle_size, "unit": spec.shingle_unit, "hash": spec.shingle_hash,
                     "total": int(docs.n_shingles.sum())},
        "shards": per_shard, "seconds": secs}


def _finish(spec: DedupSpec, out: Path, paths: list[Path], docs: Docs, clu: pa.Table, rem: pa.Table,
            counts: dict, per_unit: list[dict], secs: dict) -> dict:
    """Write the reports, stats and index (index last: it marks a complete output); drop stale shards."""
    per_shard = [{"input": str(p), "output": s["entry"]["path"], "rows_in": s["rows_in"], "rows_out": s["rows_out"]}
                 for p, s in zip(paths, per_unit)]
    stats = _stats(spec, docs, clu, rem, counts, per_shard, secs)
    write_table(out / CLUSTERS_NAME, clu)
    write_table(out / REMOVED_NAME, rem)
    atomic_write_json(out / STATS_NAME, stats)
    for old in out.glob("part-[0-9][0-9][0-9][0-9][0-9].parquet"):
        if int(old.stem[5:]) >= len(paths):  # from an earlier run over more input shards
            old.unlink()
    write_index(out, [s["entry"] for s in per_unit], extra={"stage": "dedup", "stats": {
        k: stats[k] for k in ("docs_in", "docs_out", "exact_removed", "near_removed", "threshold")}})
    return stats


def run_dedup(spec: DedupSpec, on_event: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run the dedup job (run-function contract in corpus/spec.py); returns the stats plus `outputs`."""
    emit = on_event or (lambda ev: None)
    paths, out = _check_paths(spec)
    out.mkdir(parents=True, exist_ok=True)
    save_spec(spec, out / SPEC_NAME, "dedup")
    if spec.near and lsh_threshold(spec.bands, spec.rows) > spec.threshold:
        log.warning("dedup: LSH threshold (1/%d)^(1/%d) = %.3f is above the verification threshold %.3f: pairs "
                    "in between are rarely candidates (more bands, fewer rows raise recall)", spec.bands,
                    spec.rows, lsh_threshold(spec.bands, spec.rows), spec.threshold)
    executor, secs = spec.executor.build(), {}
    emit({"type": "log", "message": f"dedup: {len(paths)} input shard(s)"})

    t0 = time.perf_counter()
    units = _signature_units(spec, paths, out)
    stage = SignatureStage(spec.hasher() if spec.near else None, spec.batch_size)
    _drop_stale_markers(units, out / STATE_DIR, stage.name)
    executor.run(stage, units, out / STATE_DIR, desc="dedup signatures", on_event=on_event)
    secs["signatures"] = round(time.perf_counter() - t0, 3)
    emit({"type": "progress", "stage": "signatures", "done": len(units), "total": len(units)})

    t0 = time.perf_counter()
    docs = Docs([pq.read_table(u.output) for u in units], paths)
    root, counts = cluster(docs, spec)
    clu, rem = _reports(docs, root, spec, paths)
    secs["clusters"] = round(time.perf_counter() - t0, 3)
    emit({"type": "progress", "stage": "clusters", "done": 1, "total": 1})

    t0 = time.perf_counter()
    wunits = _write_units(paths, out, root, docs)
    _drop_stale_markers(wunits, out / STATE_DIR, WriteStage.name)
    per_unit = executor.run(WriteStage(), wunits, out / STATE_DIR, desc="dedup write", on_event=on_event)
    secs["write"] = round(time.perf_counter() - t0, 3)
    emit({"type": "progress", "stage": "write", "done": len(wunits), "total": len(wunits)})

    stats = _finish(spec, out, paths, docs, clu, rem, counts, per_unit, secs)
    emit({"type": "log", "message": f"dedup: {stats['docs_in']} -> {stats['docs_out']} documents"})
    outputs = [str(out / s["entry"]["path"]) for s in per_unit]
    outputs += [str(out / n) for n in (INDEX_NAME, CLUSTERS_NAME, REMOVED_NAME, STATS_NAME, SPEC_NAME)]
    return {**{k: v for k, v in stats.items() if k != "shards"}, "output": str(out), "outputs": outputs}
