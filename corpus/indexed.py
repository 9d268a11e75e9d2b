"""Megatron-LM indexed dataset format (MMIDIDX), writer and memory-mapped reader.

Byte layout, as in Megatron-LM `megatron/core/datasets/indexed_dataset.py` (_IndexWriter / _IndexReader);
all integers little-endian, a dataset is a path prefix `P` with two files:

`P.bin`: the token ids of every sequence, back to back, no header, dtype given by the index.
`P.idx`:
```
offset  size      field
0       9         magic b"MMIDIDX\\x00\\x00"
9       8  <Q     version, always 1
17      1  <B     dtype code of P.bin: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16
18      8  <Q     sequence count S
26      8  <Q     document count D (= number of entries of document_indices, i.e. documents + 1)
34      4*S       sequence lengths, int32 (tokens per sequence)
..      8*S       sequence pointers, int64 (byte offset of each sequence in P.bin)
..      8*D       document indices, int64: sequence index where each document starts, then S
                  (Megatron's builder starts it at [0] and appends len(sequence_lengths) per document)
```
Token dtype follows Megatron's `DType.optimal_dtype`: uint16 when the vocabulary has fewer than 65500 entries,
else int32. k2forge writes one sequence per document (the document's tokens plus its EOS when packing appends
one), so document_indices is simply 0..S. Both files are written atomically (temp name + rename).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from corpus.shards import atomic_path

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
HEADER_BYTES = 34  # 9 magic + 8 version + 1 dtype code + 8 sequence count + 8 document count
DTYPE_CODES: dict[int, type] = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64,
                                6: np.float64, 7: np.float32, 8: np.uint16}
_CODE_OF = {np.dtype(v): k for k, v in DTYPE_CODES.items()}


def optimal_dtype(vocab_size: int | None) -> np.dtype:
    """Megatron's choice of token dtype for a vocabulary size."""
    return np.dtype(np.uint16 if vocab_size is not None and vocab_size < 65500 else np.int32)


def dtype_code(dtype: np.dtype | type) -> int:
    try:
        return _CODE_OF[np.dtype(dtype)]
    except KeyError:
        raise ValueError(f"dtype {np.dtype(dtype)} has no Megatron code") from None


def bin_path(prefix: str | os.PathLike) -> Path:
    return Path(f"{prefix}.bin")


def idx_path(prefix: str | os.PathLike) -> Path:
    return Path(f"{prefix}.idx")


def encode_index(lengths: np.ndarray, dtype: np.dtype, document_indices: np.ndarray | None = None) -> bytes:
    """The complete .idx file content for sequences of `lengths` tokens of `dtype`."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size and (lengths.min() < 0 or lengths.max() > np.iinfo(np.int32).max):
        raise ValueError("sequence lengths must fit in int32 and be >= 0")
    itemsize = np.dtype(dtype).itemsize
    pointers = np.zeros(lengths.size, dtype=np.int64)
    if lengths.size > 1:
        np.cumsum(lengths[:-1] * itemsize, out=pointers[1:])
    if document_indices is None:
        document_indices = np.arange(lengths.size + 1, dtype=np.int64)
    document_indices = np.asarray(document_indices, dtype=np.int64)
    head = MAGIC + struct.pack("<Q", VERSION) + struct.pack("<B", dtype_code(dtype)) \
        + struct.pack("<Q", lengths.size) + struct.pack("<Q", document_indices.size)
    return b"".join([head, lengths.astype("<i4").tobytes(), pointers.astype("<i8").tobytes(),
                     document_indices.astype("<i8").tobytes()])


class IndexedWriter:
    """Stream sequences into `prefix.bin`, then write `prefix.idx` on close; nothing appears unless both finish.

    with IndexedWriter(prefix, dtype) as w:
        w.add(flat_tokens, lengths)   # any number of times; one sequence (= one document) per length
    """

    def __init__(self, prefix: str | os.PathLike, dtype: np.dtype | type):
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        if dtype_code(self.dtype) not in (1, 2, 3, 4, 5, 8):  # also rejects dtypes Megatron cannot name
            raise ValueError(f"{self.prefix}: token dtype must be an integer type, got {self.dtype}")
        self._lengths: list[np.ndarray] = []
        self._ctx = None
        self._f: BinaryIO | None = None

    def __enter__(self) -> "IndexedWriter":
        self._ctx = atomic_path(bin_path(self.prefix))
        self._f = open(self._ctx.__enter__(), "wb")
        return self

    def add(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        if int(lengths.sum()) != len(tokens):
            raise ValueError(f"{self.prefix}: {len(tokens)} tokens but lengths sum to {int(lengths.sum())}")
        assert self._f is not None, "use IndexedWriter as a context manager"
        arr = np.asarray(tokens)
        if arr.dtype != self.dtype:
            if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(self.dtype).max):
                raise ValueError(f"{self.prefix}: token ids outside the range of {self.dtype}")
            arr = arr.astype(self.dtype)
        self._f.write(arr.astype(self.dtype.newbyteorder("<"), copy=False).tobytes())
        self._lengths.append(lengths)

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._f is not None and self._ctx is not None
        self._f.close()
        if exc_type is not None:
            self._ctx.__exit__(exc_type, exc, tb)  # removes the temp .bin
            return
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        # .bin lands first; .idx last, so a readable .idx implies a complete .bin of the same run.
        self._ctx.__exit__(None, None, None)
        with atomic_path(idx_path(self.prefix)) as tmp:
            tmp.write_bytes(encode_index(lengths, self.dtype))


def write_indexed(prefix: str | os.PathLike, tokens: np.ndarray, lengths: np.ndarray,
                  dtype: np.dtype | type) -> None:
    """Write one dataset in a single call."""
    with IndexedWriter(prefix, dtype) as w:
        w.add(tokens, lengths)


class IndexedDataset:
    """Memory-mapped reader of `prefix.bin/.idx`; `ds[i]` is sequence i as a numpy array (a view, no copy)."""

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = Path(prefix)
        ip, bp = idx_path(prefix), bin_path(prefix)
        for p in (ip, bp):
            if not p.exists():
                raise FileNotFoundError(f"{p}: no such file (indexed dataset prefix {prefix})")
        with open(ip, "rb") as f:
            self.dtype, n_seq, n_doc = _parse_header(f.read(HEADER_BYTES), ip)
        want = HEADER_BYTES + 4 * n_seq + 8 * n_seq + 8 * n_doc
        if ip.stat().st_size < want:
            raise ValueError(f"{ip}: truncated index ({ip.stat().st_size} bytes, header promises {want})")
        raw = np.memmap(ip, dtype=np.uint8, mode="r")
        self.sequence_lengths = np.frombuffer(raw, "<i4", n_seq, HEADER_BYTES)
        self.sequence_pointers = np.frombuffer(raw, "<i8", n_seq, HEADER_BYTES + 4 * n_seq)
        self.document_indices = np.frombuffer(raw, "<i8", n_doc, HEADER_BYTES + 12 * n_seq)
        self.num_tokens = int(self.sequence_lengths.sum(dtype=np.int64))
        size = bp.stat().st_size
        if size != self.num_tokens * self.dtype.itemsize:
            raise ValueError(f"{bp}: {size} bytes, index promises {self.num_tokens} tokens of {self.dtype}")
        # np.memmap refuses empty files; an empty dataset is legal
        self.tokens = (np.memmap(bp, dtype=self.dtype.newbyteorder("<"), mode="r") if size
                       else np.zeros(0, self.dtype))

    def __len__(self) -> int:
        return len(self.sequence_lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sequence {i} out of range for {len(self)} sequences")
        start = int(self.sequence_pointers[i]) // self.dtype.itemsize
        return self.tokens[start:start + int(self.sequence_lengths[i])]

    @property
    def num_documents(self) -> int:
        return len(self.document_indices) - 1


def _parse_header(raw: bytes, where: Path) -> tuple[np.dtype, int, int]:
    if len(raw) < HEADER_BYTES:
        raise ValueError(f"{where}: too short for an MMIDIDX header ({len(raw)} bytes)")
    if raw[:9] != MAGIC:
        raise ValueError(f"{where}: bad magic {raw[:9]!r}, expected {MAGIC!r} (not a Megatron .idx file)")
    version = struct.unpack_from("<Q", raw, 9)[0]
    if version != VERSION:
        raise ValueError(f"{where}: unsupported index version {version}, expected {VERSION}")
    code = raw[17]
    if code not in DTYPE_CODES:
        raise ValueError(f"{where}: unknown dtype code {code}")
    n_seq, n_doc = struct.unpack_from("<QQ", raw, 18)
    return np.dtype(DTYPE_CODES[code]), int(n_seq), int(n_doc)
