"""Clusters of duplicates from signature records: the in-memory path, the exact Jaccard re-check and the
cluster/removed reports that both dedup paths (in-memory here, band-partitioned in corpus.lsh) share.

`Docs` holds signature records sorted by keep priority, so that "the smallest index of a component" is its
kept document: the longest text (in characters), then the smallest id, then the smallest exact key, then the
first input path and row.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus.dedup_spec import DedupSpec
from corpus.minhash import MinHasher, candidate_pairs, connected_components, estimated_jaccard

PRIORITY = [("n_chars", "descending"), ("id", "ascending"), ("xkey", "ascending"), ("path", "ascending"),
            ("row", "ascending")]


class Docs:
    """Signature records (one table per input shard, optionally its [rows, num_perm] signatures and its first
    global node number), concatenated and sorted by keep priority (index 0 = kept first)."""

    def __init__(self, tables: list[pa.Table], paths: list[Path], sigs: list[np.ndarray] | None = None,
                 offsets: list[int] | None = None):
        offsets = offsets if offsets is not None else [0] * len(tables)
        cols = [t.append_column("shard", pa.array(np.full(t.num_rows, k, dtype=np.int64)))
                .append_column("path", pa.array([str(paths[k])] * t.num_rows, type=pa.string()))
                .append_column("pos", pa.array(np.arange(t.num_rows, dtype=np.int64)))
                for k, t in enumerate(tables)]
        table = pa.concat_tables(cols) if cols else pa.table({})
        if table.num_rows:  # indexed documents (origin 0, see corpus.dedup_index) before new ones
            first = [("origin", "ascending")] if "origin" in table.column_names else []
            table = table.take(pc.sort_indices(table, sort_keys=first + PRIORITY))
        self.n, self.paths = table.num_rows, paths
        col = (lambda name: table.column(name).to_numpy()) if self.n else (lambda name: np.zeros(0, np.int64))
        self.ids = table.column("id").to_pylist() if self.n else []
        self.shard, self.row, self.n_shingles = col("shard"), col("row"), col("n_shingles")
        self.n_units = col("n_units")
        self.origin = col("origin") if "origin" in table.column_names else np.ones(self.n, dtype=np.int8)
        self.node = np.asarray(offsets, dtype=np.int64)[self.shard] + self.row if self.n else col("row")
        self.xkey = (np.frombuffer(b"".join(table.column("xkey").to_pylist()), dtype="V16") if self.n
                     else np.zeros(0, dtype="V16"))
        self.sig = None
        if sigs is not None and self.n:  # sigs[k][i] belongs to row i of tables[k] ("pos", not "row")
            starts = np.cumsum([0] + [len(s) for s in sigs])[:-1]
            self.sig = np.concatenate(sigs)[starts[self.shard] + col("pos")]


def exact_jaccard(paths: list[Path], shard: np.ndarray, row: np.ndarray, pairs: np.ndarray,
                  hasher: MinHasher) -> np.ndarray:
    """Exact Jaccard of the shingle-hash sets of each pair of document indices (into `shard` and `row`); the
    texts are re-read from the input shards."""
    need = np.unique(pairs)
    sets: dict[int, np.ndarray] = {}
    for k in np.unique(shard[need]):
        idx = need[shard[need] == k]
        texts = pq.read_table(paths[k], columns=["text"]).column("text").take(pa.array(row[idx])).to_pylist()
        hv, counts = hasher.shingle_hashes(texts)
        for i, h in zip(idx.tolist(), np.split(hv, np.cumsum(counts)[:-1])):
            sets[i] = np.unique(h)
    out = np.empty(len(pairs), dtype=np.float64)
    for n, (a, b) in enumerate(pairs.tolist()):
        inter = len(np.intersect1d(sets[a], sets[b], assume_unique=True))
        out[n] = inter / (len(sets[a]) + len(sets[b]) - inter)
    return out


def verify(sim: np.ndarray, spec: DedupSpec, recheck) -> tuple[np.ndarray, int]:
    """(mask of pairs that are duplicates, number re-checked). `recheck(idx)` gives the exact Jaccard of the
    pairs at `idx`: estimates within 3 standard errors of the threshold are decided by it, because sampling
    noise there would otherwise flip about half of them."""
    ok = sim >= spec.threshold
    unsure = np.zeros(0, dtype=np.int64)
    if spec.exact_recheck:
        margin = 3.0 * np.sqrt(spec.threshold * (1.0 - spec.threshold) / spec.num_perm)
        unsure = np.flatnonzero(np.abs(sim - spec.threshold) <= margin)
        if len(unsure):
            ok[unsure] = recheck(unsure) >= spec.threshold
    return ok, len(unsure)


def _exact_edges(docs: Docs) -> tuple[np.ndarray, np.ndarray]:
    """(edges from each exact duplicate to its group's first doc, mask of docs that are group firsts).
    Empty documents (no units after normalisation) are nobody's duplicate."""
    _, first, inverse = np.unique(docs.xkey, return_index=True, return_inverse=True)
    root = first[inverse.ravel()]
    dup = np.flatnonzero((root != np.arange(docs.n)) & (docs.n_units > 0))
    return np.stack([root[dup], dup], axis=1), root == np.arange(docs.n)


def _near_edges(docs: Docs, nodes: np.ndarray, spec: DedupSpec) -> tuple[np.ndarray, dict[str, int]]:
    """LSH candidates among `nodes` (ascending), verified by estimated Jaccard >= threshold (see `verify`)."""
    nodes = nodes[docs.n_shingles[nodes] > 0]  # a doc without shingles has no signature to compare
    sub = docs.sig[nodes]
    pairs = candidate_pairs(sub, spec.bands, spec.rows)
    ok, rechecked = verify(estimated_jaccard(sub, pairs), spec, lambda idx: exact_jaccard(
        docs.paths, docs.shard, docs.row, nodes[pairs[idx]], spec.hasher()))
    edges = nodes[pairs[ok]]
    return edges.reshape(-1, 2), {"candidate_pairs": len(pairs), "rechecked_pairs": rechecked,
                                  "verified_pairs": len(edges)}


def cluster(docs: Docs, spec: DedupSpec) -> tuple[np.ndarray, dict[str, int]]:
    """In memory: root (= kept doc index) of every doc, plus pair counts."""
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


REMOVED_SCHEMA = pa.schema([
    ("id", pa.string()), ("shard", pa.string()), ("row", pa.int64()), ("reason", pa.string()),
    ("kept_id", pa.string()), ("kept_shard", pa.string()), ("kept_row", pa.int64()), ("cluster_id", pa.int64()),
    ("similarity", pa.float64())])
CLUSTER_SCHEMA = pa.schema([
    ("cluster_id", pa.int64()), ("kept_id", pa.string()), ("kept_shard", pa.string()), ("kept_row", pa.int64()),
    ("size", pa.int64()), ("removed_ids", pa.list_(pa.string())), ("reasons", pa.list_(pa.string())),
    ("similarity", pa.list_(pa.float64())), ("min_similarity", pa.float64())])


def reports(docs: Docs, root: np.ndarray, spec: DedupSpec, similarity=None) -> tuple[pa.Table, pa.Table]:
    """(clusters table, removed table) from cluster roots (indices into `docs`). `similarity(pairs)` gives the
    estimated Jaccard of [m, 2] doc index pairs; by default from `docs.sig`."""
    paths = docs.paths
    removed = np.flatnonzero(root != np.arange(docs.n))
    kept_of = root[removed]
    exact = (docs.xkey[removed] == docs.xkey[kept_of]) & spec.exact if len(removed) else np.zeros(0, bool)
    sim = np.ones(len(removed))
    if similarity is None and docs.sig is not None:
        def similarity(pairs):
            return estimated_jaccard(docs.sig, pairs)
    if similarity is not None and len(removed):
        sim = np.where(exact, 1.0, similarity(np.stack([removed, kept_of], axis=1)))
    roots = np.unique(kept_of)
    cid = np.searchsorted(roots, kept_of)  # cluster ids follow the kept docs' priority order
    rem = pa.table({
        "id": [docs.ids[i] for i in removed], "shard": [str(paths[docs.shard[i]]) for i in removed],
        "row": docs.row[removed], "reason": ["exact" if e else "near" for e in exact],
        "kept_id": [docs.ids[i] for i in kept_of], "kept_shard": [str(paths[docs.shard[i]]) for i in kept_of],
        "kept_row": docs.row[kept_of], "cluster_id": cid.astype(np.int64), "similarity": sim},
        schema=REMOVED_SCHEMA)
    order = np.argsort(cid, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(cid[order])) + 1) if len(order) else []
    clu = pa.table({
        "cluster_id": np.arange(len(roots), dtype=np.int64), "kept_id": [docs.ids[r] for r in roots],
        "kept_shard": [str(paths[docs.shard[r]]) for r in roots], "kept_row": docs.row[roots],
        "size": np.array([len(g) + 1 for g in groups], dtype=np.int64),
        "removed_ids": [[docs.ids[removed[i]] for i in g] for g in groups],
        "reasons": [["exact" if exact[i] else "near" for i in g] for g in groups],
        "similarity": [sim[g].tolist() for g in groups],
        "min_similarity": np.array([sim[g].min() for g in groups], dtype=np.float64)}, schema=CLUSTER_SCHEMA)
    return clu, rem


def empty_removals(docs: Docs) -> pa.Table:
    """Removed-report rows for documents dropped because their normalised text is empty."""
    idx = np.flatnonzero(docs.n_units == 0)
    return pa.table({
        "id": [docs.ids[i] for i in idx], "shard": [str(docs.paths[docs.shard[i]]) for i in idx],
        "row": docs.row[idx], "reason": ["empty"] * len(idx), "kept_id": pa.nulls(len(idx), pa.string()),
        "kept_shard": pa.nulls(len(idx), pa.string()), "kept_row": np.full(len(idx), -1, dtype=np.int64),
        "cluster_id": np.full(len(idx), -1, dtype=np.int64), "similarity": np.full(len(idx), np.nan)},
        schema=REMOVED_SCHEMA)
