"""Band-partitioned LSH: duplicate clusters without any process holding all signatures.

Layout written by the signature stage, per input shard k (N_k documents, global node numbers offset_k + row):
  `{uid}.sig.npy`    [N_k, num_perm] uint32 MinHash signatures
  `{uid}.bands.npy`  [bands + 2, N_k] uint64, band-major: row b < bands is the 64-bit hash of band b's `rows`
                     signature values; the last two rows are the two halves of the 128-bit exact key. 0 marks a
                     document that takes no part (no shingles, or an empty normalised text).
Band-major rows make "band b of every document" a contiguous read of each shard's file: these files are the
band-bucket files, partitioned by band and, inside a band, by hash (`hash % parts`).

`BandStage` units (one per group of bands and hash partition, spread over the executor's workers) turn each
bucket into candidate pairs (all pairs up to 32 members, a star plus chain above, as corpus.minhash) and write
them. The driver then verifies candidates in chunks, reading only the signatures of the documents involved
(memory-mapped rows of `.sig.npy`), and joins exact and verified near edges with scipy's connected components
over node numbers (8 bytes per document: the one O(corpus) structure, on one node). Only the members of
clusters of 2+ documents are then loaded as records, to choose the kept document and build the reports.
Worker memory is bounded by `partition_docs` documents per band unit, not by the corpus.
"""
from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpus.dedup_clusters import Docs, exact_jaccard, verify
from corpus.dedup_spec import DedupSpec
from corpus.executor import Stage, Unit
from corpus.minhash import POLY, _bucket_pairs, _fmix64, connected_components, estimated_jaccard
from corpus.shards import write_table

EXACT = -1           # band index of the exact-key "band"
PAIR_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64())])


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB. VmHWM where there is /proc: ru_maxrss also counts
    what the parent held before this process was forked and exec'd (a bench that generated a corpus)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def band_hashes(sig: np.ndarray, bands: int, rows: int, xkey: np.ndarray, active: np.ndarray,
                live: np.ndarray) -> np.ndarray:
    """[bands + 2, n] uint64 band-bucket keys (module docstring). `active`: docs with shingles (near search);
    `live`: docs with a non-empty normalised text (exact search); 0 = not in any bucket."""
    n = len(xkey)
    out = np.zeros((bands + 2, n), dtype=np.uint64)
    with np.errstate(over="ignore"):  # uint64 wrap-around is the intended mod 2^64
        for b in range(bands):
            acc = np.full(n, b + 1, dtype=np.uint64)  # the band number seeds the hash: bands never collide
            for j in range(b * rows, (b + 1) * rows):
                acc = acc * np.uint64(POLY) + sig[:, j].astype(np.uint64)
            out[b] = _fmix64(acc)
    halves = np.frombuffer(xkey.tobytes(), dtype="<u8").reshape(n, 2).T if n else np.zeros((2, 0), np.uint64)
    out[bands:] = halves
    out[out == 0] = 1  # 0 means "in no bucket"; a real hash of 0 has probability 2^-64 anyway
    out[:bands, ~active] = 0
    out[bands:, ~live] = 0
    return out


class BandStage(Stage):
    """Bands (a group, or the exact key) of every shard's band file, one hash partition -> candidate pairs of
    global node numbers, (a < b), unique, sorted. Params: bands, part, parts, offsets, min_node. Memory: one
    band of one partition at a time (16 bytes per document in it) plus the group's candidate pairs."""
    name = "dedup-bands"

    def __init__(self, n_bands: int, max_all_pairs: int = 32):
        self.n_bands, self.max_all_pairs = n_bands, max_all_pairs

    def _bucket_members(self, unit: Unit, band: int) -> tuple[np.ndarray, np.ndarray]:
        """(bucket keys [m, 1 or 2], node numbers) of this band's partition, read shard by shard."""
        part, parts = unit.params["part"], unit.params["parts"]
        keys, nodes = [], []
        for path, off in zip(unit.inputs, unit.params["offsets"]):
            mm = np.load(path, mmap_mode="r")
            rows = mm[self.n_bands:] if band == EXACT else mm[band:band + 1]
            k = np.array(rows).T  # [N_k, 1 or 2], copied out of the map
            keep = np.flatnonzero((k[:, 0] != 0) & (k[:, 0] % np.uint64(parts) == np.uint64(part)))
            keys.append(k[keep])
            nodes.append(keep.astype(np.int64) + off)
            del mm
        width = 2 if band == EXACT else 1
        return (np.concatenate(keys) if keys else np.zeros((0, width), np.uint64),
                np.concatenate(nodes) if nodes else np.zeros(0, np.int64))

    def process(self, unit: Unit) -> dict[str, Any]:
        t0 = time.perf_counter()
        parts = [np.zeros((0, 2), dtype=np.int64)]
        for band in unit.params["bands"]:
            keys, nodes = self._bucket_members(unit, band)
            order = np.lexsort((nodes, *keys.T[::-1]))  # by key, then node: members in node order
            k = keys[order]
            starts = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]).any(axis=1)]) if len(k) else np.zeros(0, int)
            sizes = np.diff(np.r_[starts, len(k)])
            parts.extend(_bucket_pairs(nodes[order], starts, sizes, self.max_all_pairs))
        pairs = np.concatenate(parts)
        pairs.sort(axis=1)
        pairs = np.unique(pairs, axis=0) if len(pairs) else pairs
        pairs = pairs[pairs[:, 1] >= unit.params.get("min_node", 0)]  # index-index pairs were settled before
        write_table(unit.output, pa.table({"a": pairs[:, 0], "b": pairs[:, 1]}, schema=PAIR_SCHEMA))
        return {"pairs": len(pairs), "seconds": round(time.perf_counter() - t0, 4), "peak_rss_mb": peak_rss_mb(),
                "pid": os.getpid()}


def band_units(spec: DedupSpec, band_files: list[str], offsets: list[int], state: Path, tag: str,
               min_node: int = 0) -> list[Unit]:
    """The exact-key units and the near units (groups of `band_group` bands), each in `parts` hash partitions
    of at most about `partition_docs` documents; pairs of two nodes below `min_node` (indexed) are dropped."""
    parts = max(1, -(-offsets[-1] // spec.partition_docs)) if offsets else 1
    groups = [[EXACT]] if spec.exact else []
    if spec.near:
        step = spec.band_group
        groups += [list(range(lo, min(lo + step, spec.bands))) for lo in range(0, spec.bands, step)]
    units = []
    for g in groups:
        name = "exact" if g == [EXACT] else f"b{g[0]:03d}-{g[-1]:03d}"
        for p in range(parts):
            uid = f"{name}-p{p:04d}of{parts:04d}-{tag}"
            units.append(Unit(uid, tuple(band_files), str(state / "bands" / f"{uid}.parquet"),
                              {"bands": g, "part": p, "parts": parts, "offsets": offsets[:-1],
                               "min_node": min_node}))
    return units


class SigStore:
    """Rows of the per-shard signature files by global node number, read through memory maps."""

    def __init__(self, sig_files: list[str], offsets: list[int]):
        self.files, self.offsets = sig_files, np.asarray(offsets, dtype=np.int64)

    def shard_row(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shard = np.searchsorted(self.offsets, nodes, side="right") - 1
        return shard, nodes - self.offsets[shard]

    def get(self, nodes: np.ndarray) -> np.ndarray:
        """[len(nodes), num_perm] signatures; the maps are closed again so their pages leave this process."""
        shard, row = self.shard_row(nodes)
        out = None
        for k in np.unique(shard):
            idx = np.flatnonzero(shard == k)
            mm = np.load(self.files[k], mmap_mode="r")
            out = np.empty((len(nodes), mm.shape[1]), dtype=np.uint32) if out is None else out
            out[idx] = mm[row[idx]]
            del mm
        return out if out is not None else np.zeros((0, 0), dtype=np.uint32)


CHUNK = 1 << 14  # pairs per verification chunk: at most 2 * CHUNK signatures (16 MB at 128 perms) in memory


def pair_similarity(store: SigStore, pairs: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Estimated Jaccard of node pairs, `chunk` pairs at a time."""
    out = np.empty(len(pairs), dtype=np.float64)
    for lo in range(0, len(pairs), chunk):
        nodes, local = np.unique(pairs[lo:lo + chunk], return_inverse=True)
        out[lo:lo + chunk] = estimated_jaccard(store.get(nodes), local.reshape(-1, 2))
    return out


def verified_edges(cands: np.ndarray, store: SigStore, paths: list[Path], spec: DedupSpec,
                   chunk: int = CHUNK) -> tuple[np.ndarray, dict[str, int]]:
    """Candidate pairs that pass `verify`, `chunk` pairs at a time (only their signatures in memory)."""
    keep, rechecked = [], 0
    for lo in range(0, len(cands), chunk):
        pairs = cands[lo:lo + chunk]
        nodes, local = np.unique(pairs, return_inverse=True)
        local = local.reshape(-1, 2)
        sim = estimated_jaccard(store.get(nodes), local)
        shard, row = store.shard_row(nodes)
        ok, n = verify(sim, spec, lambda idx: exact_jaccard(paths, shard, row, local[idx], spec.hasher()))
        keep.append(pairs[ok])
        rechecked += n
    edges = np.concatenate(keep) if keep else np.zeros((0, 2), dtype=np.int64)
    return edges, {"candidate_pairs": len(cands), "rechecked_pairs": rechecked, "verified_pairs": len(edges)}


def _read_pairs(units: list[Unit]) -> np.ndarray:
    tables = [pq.read_table(u.output) for u in units]
    if not tables:
        return np.zeros((0, 2), dtype=np.int64)
    t = pa.concat_tables(tables)
    return np.stack([t.column("a").to_numpy(), t.column("b").to_numpy()], axis=1)


def cluster_members(spec: DedupSpec, units: list[Unit], meta_files: list[str], sig_files: list[str],
                    offsets: list[int], paths: list[Path], n_index: int = 0) -> tuple[Docs, np.ndarray, dict, Any]:
    """(records of the documents in clusters of 2+, sorted by keep priority; each one's root index into them;
    pair counts; the estimated Jaccard of index pairs into them), from the band units' candidate pairs. The first `n_index` shards are indexed documents: they
    come first in every cluster and are never removed."""
    exact = _read_pairs([u for u in units if u.params["bands"] == [EXACT]])
    cands = _read_pairs([u for u in units if u.params["bands"] != [EXACT]])
    if len(cands):  # a pair shares buckets in several band groups: count and verify it once
        cands = np.unique(cands, axis=0)
    store = SigStore(sig_files, offsets)
    near, counts = verified_edges(cands, store, paths, spec)
    label = connected_components(offsets[-1], np.concatenate([exact, near]))
    member = np.flatnonzero(np.bincount(label, minlength=offsets[-1])[label] > 1)
    shard, row = store.shard_row(member)
    tables = []
    for k in range(len(paths)):
        rows = row[shard == k]
        t = pq.read_table(meta_files[k]).take(pa.array(rows, type=pa.int64()))
        tables.append(t.append_column("origin", pa.array(np.full(len(rows), int(k >= n_index), np.int8))))
    docs = Docs(tables, paths, offsets=offsets[:-1])
    _, first, inverse = np.unique(label[docs.node], return_index=True, return_inverse=True)
    root = first[inverse.ravel()]  # first in priority order = the kept document
    indexed = np.flatnonzero(docs.origin == 0)
    root[indexed] = indexed  # two indexed documents joined through a new one: both stay
    # the reports' similarities read signatures in chunks too, instead of holding every member's
    similarity = (lambda pairs: pair_similarity(store, docs.node[pairs])) if spec.near else None
    return docs, root, counts, similarity
