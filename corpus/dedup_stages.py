"""The per-shard stages of corpus.dedup: signatures (records, MinHash signatures, band-bucket keys) and write
(the kept rows). Both stream their input shard in READ_ROWS-row pieces, so memory follows the piece size and
the hashing batch (MAX_BATCH_CHARS characters), not the shard size.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus.executor import Stage, Unit
from corpus.lsh import band_hashes, peak_rss_mb
from corpus.minhash import MinHasher, batches, exact_key
from corpus.schema import validate_table
from corpus.shards import atomic_path, file_sha256, write_table
from corpus.textnorm import TextNorm

META_SCHEMA = pa.schema([("row", pa.int64()), ("id", pa.string()), ("n_chars", pa.int64()),
                         ("xkey", pa.binary(16)), ("n_units", pa.int64()), ("n_shingles", pa.int64())])
MAX_BATCH_CHARS = 1 << 20  # signature working memory is ~40 bytes per character of a batch
READ_ROWS = 2048           # rows per streamed read: memory follows this, not the shard size


def sig_path(meta: str | Path) -> Path:
    return Path(str(meta)[:-len(".parquet")] + ".sig.npy")


def bands_path(meta: str | Path) -> Path:
    return Path(str(meta)[:-len(".parquet")] + ".bands.npy")


def save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)


def open_shard(path: str) -> tuple[pq.ParquetFile, pa.Schema]:
    """The shard's reader and its document schema (validated as `read_shard` does, without reading rows)."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{path}: not a readable parquet file ({e})") from None
    return pf, validate_table(pf.schema_arrow.empty_table(), path).schema


def pieces(norm: str, k: int, words: bool, max_chars: int) -> list[str]:
    """A normalised text longer than `max_chars`, cut into pieces whose shingle sets partition its own: each
    piece runs k-1 units past the next one's start, so every shingle starts in exactly one piece."""
    out, start, n = [], 0, len(norm)
    while True:
        cut = norm.find(" ", start + max_chars) if words else start + max_chars
        if cut < 0 or cut >= n:
            out.append(norm[start:])
            return out
        end = cut
        for _ in range(k - 1):  # extend by k-1 units so shingles starting before the cut are complete
            nxt = norm.find(" ", end + 1) if words else end + 1
            end = n if nxt < 0 or nxt > n else nxt
        if end >= n:  # fewer than k units after the cut: no shingle starts there, keep them in this piece
            out.append(norm[start:])
            return out
        out.append(norm[start:end])
        start = cut + 1 if words else cut


class SignatureStage(Stage):
    """Input shard -> records (row, id, n_chars, xkey, n_units, n_shingles), signatures and band keys; read in
    pieces of READ_ROWS rows and hashed in batches of MAX_BATCH_CHARS, so memory does not grow with the shard."""
    name = "dedup-signatures"

    def __init__(self, hasher: MinHasher | None, norm: TextNorm, batch_size: int, bands: int, rows: int):
        self.hasher, self.norm, self.batch_size, self.bands, self.rows = hasher, norm, batch_size, bands, rows

    def _signatures(self, norms: list[str], n_shingles: np.ndarray) -> np.ndarray:
        h = self.hasher
        sig = np.full((len(norms), h.num_perm), 0xFFFFFFFF, dtype=np.uint32)
        for lo, hi in batches(norms, self.batch_size, MAX_BATCH_CHARS):
            if hi - lo == 1 and len(norms[lo]) > MAX_BATCH_CHARS:  # one huge document: min over its pieces
                for piece in pieces(norms[lo], h.k, h.unit == "word", MAX_BATCH_CHARS):
                    hv, counts = h.shingle_hashes([piece], normalized=True)
                    sig[lo] = np.minimum(sig[lo], h.signatures_from_hashes(hv, counts)[0])
                    n_shingles[lo] += counts[0]
                continue
            hv, counts = h.shingle_hashes(norms[lo:hi], normalized=True)
            sig[lo:hi] = h.signatures_from_hashes(hv, counts)
            n_shingles[lo:hi] = counts
        return sig

    def _records(self, ids: pa.Array, texts: pa.Array) -> tuple[dict, np.ndarray]:
        norms = [self.norm(t) for t in texts.to_pylist()]  # shared by the exact key and the shingles
        n = len(norms)
        words = self.hasher is None or self.hasher.unit == "word"
        n_units = np.fromiter(((t.count(" ") + 1 if t else 0) if words else len(t) for t in norms), np.int64, n)
        n_shingles = np.zeros(n, dtype=np.int64)
        sig = self._signatures(norms, n_shingles) if self.hasher else np.zeros((n, 0), dtype=np.uint32)
        xkey = b"".join(exact_key(t, normalized=True) for t in norms)
        return {"id": ids, "n_chars": pc.utf8_length(texts).cast(pa.int64()), "xkey": xkey, "n_units": n_units,
                "n_shingles": n_shingles}, sig

    def process(self, unit: Unit) -> dict[str, Any]:
        t0, path = time.perf_counter(), unit.inputs[0]
        pf, _ = open_shard(path)
        recs, sigs = [], []
        for batch in pf.iter_batches(READ_ROWS, columns=["id", "text"]):
            if batch.column(0).null_count or batch.column(1).null_count:
                raise ValueError(f"{path}: column 'id' or 'text' has null values")
            rec, sig = self._records(batch.column(0), batch.column(1))
            recs.append(rec)
            sigs.append(sig)
        cat = (lambda name: np.concatenate([r[name] for r in recs]) if recs else np.zeros(0, np.int64))
        n_units, n_shingles = cat("n_units"), cat("n_shingles")
        n = len(n_units)
        xkey = np.frombuffer(b"".join(r["xkey"] for r in recs), dtype="V16")
        sig = np.concatenate(sigs) if sigs else np.zeros((0, self.hasher.num_perm if self.hasher else 0), np.uint32)
        save_npy(sig_path(unit.output), sig)
        nb = self.bands if self.hasher else 0
        save_npy(bands_path(unit.output), band_hashes(sig, nb, self.rows, xkey, n_shingles > 0, n_units > 0))
        cols = {"row": np.arange(n, dtype=np.int64), "id": pa.chunked_array([r["id"] for r in recs], pa.string()),
                "n_chars": pa.chunked_array([r["n_chars"] for r in recs], pa.int64()),
                "xkey": pa.array(xkey.tolist(), type=pa.binary(16)), "n_units": n_units, "n_shingles": n_shingles}
        write_table(unit.output, pa.table(cols, schema=META_SCHEMA))  # last: it marks the unit's files complete
        k = self.hasher.k if self.hasher else 1
        return {"rows": n, "shingles": int(n_shingles.sum()), "empty": int((n_units == 0).sum()),
                "short": int(((n_units > 0) & (n_units < k)).sum()), "seconds": round(time.perf_counter() - t0, 4),
                "peak_rss_mb": peak_rss_mb()}


class WriteStage(Stage):
    """Input shard + kept row numbers (unit params) -> the kept shard, streamed READ_ROWS rows at a time."""
    name = "dedup-write"

    def process(self, unit: Unit) -> dict[str, Any]:
        path = unit.inputs[0]
        pf, schema = open_shard(path)
        keep, lo = np.asarray(unit.params["keep"], dtype=np.int64), 0
        with atomic_path(unit.output) as tmp:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
                for batch in pf.iter_batches(READ_ROWS):
                    t = validate_table(pa.Table.from_batches([batch]), path)
                    sel = keep[(keep >= lo) & (keep < lo + t.num_rows)] - lo
                    lo += t.num_rows
                    if len(sel):
                        w.write_table(t.take(pa.array(sel)))
        out = Path(unit.output)
        entry = {"path": out.name, "rows": len(keep), "bytes": out.stat().st_size, "sha256": file_sha256(out)}
        return {"rows_in": lo, "rows_out": len(keep), "entry": {**entry, "input": path},
                "mtime_ns": out.stat().st_mtime_ns}
