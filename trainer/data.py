"""Training data: fixed-length samples drawn from a mixture manifest's token shards (corpus.mixture format).

Layout per source (the manifest's `sources[i]`): its shards, in the manifest's seeded `shard_order`, form one
token stream. Each shard's documents are split by position: the first `1 - eval_fraction` of its documents are
training data, the rest (a contiguous tail, at least one document when the shard has two or more) is the
held-out eval split, so the two never share a document and the split depends only on the shard, not the seed.

Sampling (train): every sample is `seq_len + 1` tokens (inputs = [:-1], targets = [1:]). The source of each
sample is drawn with probability = the source's share of the manifest's allotted tokens (`fraction`); within a
source, samples are the non-overlapping windows of its stream visited in a seeded permutation per epoch (a new
permutation each epoch). Everything random comes from one numpy Generator, so the sampler state is small and
exact: `{"rng": bit-generator state, "cursors": [window index per source], "epochs": [epoch per source]}`.
Eval batches are the first windows of each eval stream in order (deterministic, identical for every run).

Document masking: `doc_ids` per token come from the index's sequence boundaries (one sequence per document),
so they are right whether or not packing appended an EOS.

Validation happens before any training (`MixtureData.open`): missing shard files, size or sha256 mismatch with
the manifest, token ids >= the model's vocab (max of each shard via numpy), too few tokens for one sample.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from corpus.indexed import IndexedDataset, bin_path, idx_path
from corpus.mixture import MIX_FORMAT
from corpus.shards import file_sha256


class DataError(ValueError):
    """The manifest or its shards cannot feed training; the message names the file and the problem."""


@dataclass
class Stream:
    """A source's tokens as pieces of memmapped shards: one logical array without copying."""

    name: str
    pieces: list[np.ndarray]  # token views, in stream order
    doc_starts: np.ndarray  # (D,) stream offset where each document starts
    offsets: np.ndarray  # (P + 1,) stream offset of each piece

    @classmethod
    def build(cls, name: str, parts: list[tuple[np.ndarray, np.ndarray]]) -> "Stream":
        """parts: (tokens, document lengths) per shard, in order."""
        pieces = [t for t, _ in parts]
        offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(p) for p in pieces])
        lengths = np.concatenate([ln for _, ln in parts]) if parts else np.zeros(0, np.int64)
        starts = np.zeros(len(lengths), dtype=np.int64)
        starts[1:] = np.cumsum(lengths, dtype=np.int64)[:-1]
        return cls(name, pieces, starts, offsets)

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    def num_windows(self, length: int, stride: int) -> int:
        return 0 if self.num_tokens < length else (self.num_tokens - length) // stride + 1

    def read(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens int64, document index per token) of stream[start:start+length]."""
        out = np.empty(length, dtype=np.int64)
        p = int(np.searchsorted(self.offsets, start, side="right")) - 1
        pos, got = start, 0
        while got < length:
            lo = pos - int(self.offsets[p])
            take = min(length - got, len(self.pieces[p]) - lo)
            out[got:got + take] = self.pieces[p][lo:lo + take]
            got, pos, p = got + take, pos + take, p + 1
        docs = np.searchsorted(self.doc_starts, np.arange(start, start + length), side="right") - 1
        return out, docs


def load_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mixture manifest not found (make one with `k2forge corpus mix`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MIX_FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise DataError(f"{path}: format {got!r} is not a mixture manifest ({MIX_FORMAT})")
    return manifest


def check_shard(sh: dict[str, Any], where: str, verify_checksums: bool, vocab_size: int | None) -> IndexedDataset:
    """Open one shard of the manifest, checking existence, size, checksums and the token range."""
    prefix = sh["prefix"]
    for p in (bin_path(prefix), idx_path(prefix)):
        if not p.exists():
            raise DataError(f"{where}: shard file {p} is missing")
    if verify_checksums:
        for p, key in ((bin_path(prefix), "bin_sha256"), (idx_path(prefix), "idx_sha256")):
            if sh.get(key) and file_sha256(p) != sh[key]:
                raise DataError(f"{where}: {p} sha256 differs from the manifest's {key} (corrupted or repacked)")
    try:
        ds = IndexedDataset(prefix)
    except (ValueError, FileNotFoundError) as e:
        raise DataError(f"{where}: {e}") from None
    if ds.num_tokens != sh["tokens"]:
        raise DataError(f"{where}: {prefix} holds {ds.num_tokens} tokens, the manifest says {sh['tokens']}")
    if vocab_size is not None and ds.num_tokens:
        top = int(ds.tokens.max())
        if top >= vocab_size:
            raise DataError(f"{where}: {bin_path(prefix)} has token id {top} >= model vocab_size {vocab_size} "
                            "(the tokenizer is bigger than the model's embedding)")
    return ds


def split_documents(num_docs: int, eval_fraction: float) -> int:
    """Number of leading documents that are training data; the rest are held out."""
    if eval_fraction <= 0 or num_docs < 2:
        return num_docs
    return num_docs - max(1, int(round(num_docs * eval_fraction)))


class MixtureData:
    """Train sampler + eval split over a mixture manifest. Build with `MixtureData.open`."""

    def __init__(self, manifest: dict[str, Any], train: list[Stream], evals: list[Stream], seq_len: int,
                 seed: int, manifest_path: str):
        self.manifest, self.train, self.evals = manifest, train, evals
        self.seq_len, self.seed, self.manifest_path = seq_len, seed, manifest_path
        allotted = np.array([float(s["allotted_tokens"]) for s in manifest["sources"]])
        usable = np.array([t.num_windows(seq_len + 1, seq_len) > 0 for t in train])
        weights = np.where(usable, allotted, 0.0)
        if weights.sum() <= 0:
            raise DataError(f"{manifest_path}: no source has both allotted tokens and at least seq_len+1="
                            f"{seq_len + 1} training tokens")
        self.probs = weights / weights.sum()
        self.rng = np.random.default_rng(seed)
        self.cursors = [0] * len(train)
        self.epochs = [0] * len(train)
        self._orders: dict[int, tuple[int, np.ndarray]] = {}

    @classmethod
    def open(cls, manifest_path: str | Path, seq_len: int, seed: int = 0, eval_fraction: float = 0.05,
             vocab_size: int | None = None, verify_checksums: bool = True) -> "MixtureData":
        manifest = load_manifest(manifest_path)
        train, evals = [], []
        for i, src in enumerate(manifest["sources"]):
            order = src.get("shard_order") or list(range(len(src["shards"])))
            tr_parts, ev_parts = [], []
            for j in order:
                where = f"{manifest_path}: sources[{i}] {src['name']!r} shards[{j}]"
                ds = check_shard(src["shards"][j], where, verify_checksums, vocab_size)
                n_train = split_documents(len(ds), eval_fraction)
                cut = int(ds.sequence_lengths[:n_train].sum(dtype=np.int64))
                lengths = ds.sequence_lengths.astype(np.int64)
                tr_parts.append((ds.tokens[:cut], lengths[:n_train]))
                ev_parts.append((ds.tokens[cut:], lengths[n_train:]))
            train.append(Stream.build(src["name"], tr_parts))
            evals.append(Stream.build(src["name"], ev_parts))
        return cls(manifest, train, evals, seq_len, seed, str(manifest_path))

    # ---------------------------------------------------------------- training samples
    def _window_order(self, i: int, epoch: int) -> np.ndarray:
        # seeded by (seed, source, epoch): recomputed on resume, so it is not part of the state; cached per source
        cached = self._orders.get(i)
        if cached is None or cached[0] != epoch:
            n = self.train[i].num_windows(self.seq_len + 1, self.seq_len)
            cached = self._orders[i] = (epoch, np.random.default_rng([self.seed, i, epoch]).permutation(n))
        return cached[1]

    def _next_window(self, i: int) -> int:
        order = self._window_order(i, self.epochs[i])
        if self.cursors[i] >= len(order):
            self.epochs[i] += 1
            self.cursors[i] = 0
            order = self._window_order(i, self.epochs[i])
        w = int(order[self.cursors[i]])
        self.cursors[i] += 1
        return w

    def next_batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, doc_ids), each (batch_size, seq_len + 1) int64."""
        sources = self.rng.choice(len(self.train), size=batch_size, p=self.probs)
        toks = np.empty((batch_size, self.seq_len + 1), dtype=np.int64)
        docs = np.empty_like(toks)
        for b, i in enumerate(sources):
            toks[b], d = self.train[i].read(self._next_window(int(i)) * self.seq_len, self.seq_len + 1)
            docs[b] = d - d[0]
        return toks, docs

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "cursors": list(self.cursors), "epochs": list(self.epochs),
                "seed": self.seed, "seq_len": self.seq_len, "sources": [t.name for t in self.train]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = [t.name for t in self.train]
        if state.get("sources") != names or state.get("seq_len") != self.seq_len:
            raise DataError(f"sampler state is for sources {state.get('sources')} at seq_len {state.get('seq_len')}, "
                            f"but this manifest has {names} at seq_len {self.seq_len}")
        self.rng.bit_generator.state = state["rng"]
        self.cursors, self.epochs = list(state["cursors"]), list(state["epochs"])

    # ---------------------------------------------------------------- eval
    def eval_batches(self, batch_size: int, max_batches: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The same held-out batches every call: windows of each eval stream in order, sources interleaved
        (window 0 of every source, then window 1, ...), so a small eval budget still covers every source."""
        want = batch_size * max_batches
        counts = [s.num_windows(self.seq_len + 1, self.seq_len) for s in self.evals]
        # lazy: a big corpus has millions of eval windows, only `want` are read
        order = islice(((w, i) for w in range(max(counts, default=0)) for i, n in enumerate(counts) if w < n), want)
        rows = [self.evals[i].read(w * self.seq_len, self.seq_len + 1) for w, i in order]
        batch_size = min(batch_size, len(rows)) or 1  # a tiny eval split still gives one (smaller) batch
        return [(np.stack([t for t, _ in rows[k:k + batch_size]]),
                 np.stack([d - d[0] for _, d in rows[k:k + batch_size]]))
                for k in range(0, len(rows) - batch_size + 1, batch_size)]

    @property
    def tokenizer(self) -> dict[str, Any]:
        return self.manifest.get("tokenizer") or {}
