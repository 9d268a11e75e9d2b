"""Training data: fixed-length samples over a mixture manifest's token shards, consumed exactly as it allots.

The manifest (corpus/mixture.py) is the contract between the mix builder and the trainer. Per source: its
shards, in the manifest's seeded `shard_order`, form one token stream of the shards' training documents; the
held-out eval documents are the manifest's decision (`eval_docs`, the tail of each shard), so the allotment,
the epochs and the eval split all refer to the same tokens.

Plan: every sample is `seq_len + 1` tokens (inputs = [:-1], targets = [1:]), i.e. seq_len training tokens.
Source i contributes exactly S_i = allotted_tokens_i // seq_len samples (within one sequence of its allotment),
taken from the non-overlapping windows of its stream (stride seq_len): epoch e visits all W_i windows in a
permutation seeded by (seed, i, e), so `epochs` = S_i / W_i passes, the last one partial, as planned. Sources
are interleaved by merging their samples on the key (j + u_ij) / S_i (j = the source's sample number, u a seeded
jitter in [0, 1)): every prefix of the run holds each source in proportion to its allotment within one sample,
and the order is a pure function of (manifest, seq_len, seed). The state is one cursor per source.

Budget: the plan has sum(S_i) samples. `next_batch` past it raises BudgetExhausted, unless the data was opened
with repeat=True (it then continues with further passes of the same plan; `consumption()` shows the overrun).
`consumption()` reports planned vs consumed tokens and epochs per source for the metrics.

Document masking: `doc_ids` per token come from the index's sequence boundaries (one sequence per document),
so they are right whether or not packing appended an EOS. Eval batches are the first windows of each eval stream
in order (deterministic, identical for every run).

Validation happens before any training (`MixtureData.open`): missing shard files, size or sha256 mismatch with
the manifest, token ids >= the model's vocab (max of each shard via numpy), a source allotted samples but too
short for one, a train/eval split that differs from the manifest's.
"""
from __future__ import annotations

import heapq
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


class BudgetExhausted(DataError):
    """Every sample the manifest allots has been consumed (open with repeat=True to make further passes)."""


_MASK64 = (1 << 64) - 1


def _jitter(seed: int, source: int, j: int) -> float:
    """Deterministic u in [0, 1) for (seed, source, sample number): a splitmix64 finaliser, no state."""
    x = (seed * 0x9E3779B97F4A7C15 + (source + 1) * 0xBF58476D1CE4E5B9 + j * 0x94D049BB133111EB) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return ((x ^ (x >> 31)) >> 11) / float(1 << 53)


class MixtureData:
    """The manifest's plan of training samples + its eval split. Build with `MixtureData.open`."""

    def __init__(self, manifest: dict[str, Any], train: list[Stream], evals: list[Stream], seq_len: int,
                 seed: int, manifest_path: str, repeat: bool = False):
        self.manifest, self.train, self.evals = manifest, train, evals
        self.seq_len, self.seed, self.manifest_path, self.repeat = seq_len, seed, manifest_path, repeat
        self.allotted = [int(s["allotted_tokens"]) for s in manifest["sources"]]
        self.planned = [a // seq_len for a in self.allotted]  # S_i: samples per source
        self.windows = [t.num_windows(seq_len + 1, seq_len) for t in train]  # W_i: samples per epoch
        for i, (n, w) in enumerate(zip(self.planned, self.windows)):
            if n and not w:
                raise DataError(f"{manifest_path}: sources[{i}] {train[i].name!r} is allotted {self.allotted[i]} "
                                f"tokens but holds only {train[i].num_tokens} training tokens, fewer than one "
                                f"sample of seq_len+1={seq_len + 1}")
        self.cursors = [0] * len(train)
        self._orders: dict[int, tuple[int, np.ndarray]] = {}

    @classmethod
    def open(cls, manifest_path: str | Path, seq_len: int, seed: int = 0, vocab_size: int | None = None,
             verify_checksums: bool = True, repeat: bool = False) -> "MixtureData":
        manifest = load_manifest(manifest_path)
        train, evals = [], []
        for i, src in enumerate(manifest["sources"]):
            order = src.get("shard_order") or list(range(len(src["shards"])))
            tr_parts, ev_parts = [], []
            for j in order:
                sh = src["shards"][j]
                where = f"{manifest_path}: sources[{i}] {src['name']!r} shards[{j}]"
                ds = check_shard(sh, where, verify_checksums, vocab_size)
                n_train = len(ds) - int(sh.get("eval_docs", 0))  # manifests before the eval split: all train
                lengths = ds.sequence_lengths.astype(np.int64)
                cut = int(lengths[:n_train].sum())
                if "train_tokens" in sh and cut != sh["train_tokens"]:
                    raise DataError(f"{where}: its first {n_train} documents hold {cut} tokens, the manifest's "
                                    f"train_tokens say {sh['train_tokens']}")
                tr_parts.append((ds.tokens[:cut], lengths[:n_train]))
                ev_parts.append((ds.tokens[cut:], lengths[n_train:]))
            train.append(Stream.build(src["name"], tr_parts))
            evals.append(Stream.build(src["name"], ev_parts))
        return cls(manifest, train, evals, seq_len, seed, str(manifest_path), repeat)

    # ---------------------------------------------------------------- the plan
    @property
    def total_samples(self) -> int:
        """Samples in one pass of the plan."""
        return sum(self.planned)

    @property
    def consumed_samples(self) -> int:
        return sum(self.cursors)

    def _key(self, i: int, j: int) -> float:
        return (j + _jitter(self.seed, i, j)) / self.planned[i]

    def _window_order(self, i: int, epoch: int) -> np.ndarray:
        # seeded by (seed, source, epoch): recomputed on resume, so it is not part of the state; cached per source
        cached = self._orders.get(i)
        if cached is None or cached[0] != epoch:
            perm = np.random.default_rng([self.seed, i, epoch]).permutation(self.windows[i])
            cached = self._orders[i] = (epoch, perm)
        return cached[1]

    def _draw(self, n: int) -> list[tuple[int, int]]:
        """The next n (source, window) pairs of the plan; advances the cursors."""
        if not self.repeat and self.consumed_samples + n > self.total_samples:
            raise BudgetExhausted(f"{self.manifest_path}: a batch of {n} samples after {self.consumed_samples} "
                                  f"exceeds the manifest's {self.total_samples} samples of seq_len "
                                  f"{self.seq_len} ({sum(self.allotted)} allotted tokens)")
        heap = [(self._key(i, j), i) for i, j in enumerate(self.cursors) if self.planned[i]]
        heapq.heapify(heap)
        out = []
        for _ in range(n):
            _, i = heapq.heappop(heap)
            j = self.cursors[i]
            w = self.windows[i]
            out.append((i, int(self._window_order(i, j // w)[j % w])))
            self.cursors[i] = j + 1
            heapq.heappush(heap, (self._key(i, j + 1), i))
        return out

    def next_batch(self, batch_size: int, rows: slice | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, doc_ids), each (rows, seq_len + 1) int64: rows `rows` (default all) of the next global batch
        of `batch_size` samples. Every rank draws the same plan but reads only its own rows."""
        picks = self._draw(batch_size)[rows or slice(None)]
        toks = np.empty((len(picks), self.seq_len + 1), dtype=np.int64)
        docs = np.empty_like(toks)
        for b, (i, w) in enumerate(picks):
            toks[b], d = self.train[i].read(w * self.seq_len, self.seq_len + 1)
            docs[b] = d - d[0]
        return toks, docs

    def consumption(self) -> dict[str, dict[str, Any]]:
        """Per source: the manifest's allotment and epochs beside what has been consumed so far."""
        out = {}
        for i, (src, t) in enumerate(zip(self.manifest["sources"], self.train)):
            used = self.cursors[i] * self.seq_len
            out[t.name] = {"allotted_tokens": self.allotted[i], "planned_tokens": self.planned[i] * self.seq_len,
                           "consumed_tokens": used, "planned_epochs": src.get("epochs"),
                           "consumed_epochs": round(used / t.num_tokens, 6) if t.num_tokens else 0.0}
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"plan": "k2forge-plan/1", "cursors": list(self.cursors), "seed": self.seed, "seq_len": self.seq_len,
                "sources": [t.name for t in self.train]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = [t.name for t in self.train]
        if state.get("sources") != names or state.get("seq_len") != self.seq_len:
            raise DataError(f"sampler state is for sources {state.get('sources')} at seq_len {state.get('seq_len')}, "
                            f"but this manifest has {names} at seq_len {self.seq_len}")
        if state.get("plan") != "k2forge-plan/1" or state.get("seed") != self.seed:
            raise DataError(f"sampler state (plan {state.get('plan')!r}, seed {state.get('seed')}) is not this "
                            f"run's plan (k2forge-plan/1, seed {self.seed}): resume with the seed it was saved with")
        self.cursors = list(state["cursors"])

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
