"""MMIDIDX writer/reader: round trip, byte-exact header and layout per Megatron-LM, and corrupt-file errors."""
import struct

import numpy as np
import pytest

from corpus.indexed import (IndexedDataset, IndexedWriter, dtype_code, encode_index, optimal_dtype,
                            write_indexed)


def _docs(rng, n, vocab):
    return [rng.integers(0, vocab, size=rng.integers(0, 40)) for _ in range(n)]


@pytest.mark.parametrize("vocab", [49152, 163840])
def test_round_trip(tmp_out, vocab):
    rng = np.random.default_rng(0)
    docs = _docs(rng, 57, vocab)
    dtype = optimal_dtype(vocab)
    with IndexedWriter(tmp_out / "ds", dtype) as w:  # two batches: streaming appends
        for part in (docs[:20], docs[20:]):
            w.add(np.concatenate(part), np.array([len(d) for d in part]))
    ds = IndexedDataset(tmp_out / "ds")
    assert len(ds) == 57 and ds.num_documents == 57 and ds.dtype == dtype
    assert ds.num_tokens == sum(len(d) for d in docs)
    for got, want in zip((ds[i] for i in range(len(ds))), docs):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ds[-1], docs[-1])
    with pytest.raises(IndexError):
        ds[57]


def test_dtype_choice_follows_megatron():
    assert optimal_dtype(65499) == np.uint16 and optimal_dtype(65500) == np.int32
    assert optimal_dtype(None) == np.int32
    assert dtype_code(np.uint16) == 8 and dtype_code(np.int32) == 4
    with pytest.raises(ValueError, match="no Megatron code"):
        dtype_code(np.complex64)


def test_idx_bytes_match_the_spec(tmp_out):
    """Hand-built expected bytes from the Megatron layout, independent of encode_index's own code."""
    lengths = [3, 0, 5]
    write_indexed(tmp_out / "x", np.arange(8, dtype=np.uint16), np.array(lengths), np.uint16)
    raw = (tmp_out / "x.idx").read_bytes()
    expected = (b"MMIDIDX\x00\x00" + (1).to_bytes(8, "little") + bytes([8])
                + (3).to_bytes(8, "little") + (4).to_bytes(8, "little")
                + b"".join(v.to_bytes(4, "little") for v in lengths)
                + b"".join(v.to_bytes(8, "little") for v in (0, 6, 6))       # byte offsets, 2 bytes/token
                + b"".join(v.to_bytes(8, "little") for v in (0, 1, 2, 3)))  # document_indices
    assert raw == expected
    assert (tmp_out / "x.bin").read_bytes() == np.arange(8, dtype="<u2").tobytes()
    # int32 pointers advance 4 bytes per token
    raw32 = encode_index(np.array([2, 1]), np.int32)
    assert struct.unpack_from("<B", raw32, 17)[0] == 4
    assert struct.unpack_from("<qq", raw32, 34 + 8) == (0, 8)


def test_writer_failure_leaves_nothing(tmp_out):
    with pytest.raises(RuntimeError):
        with IndexedWriter(tmp_out / "y", np.uint16) as w:
            w.add(np.arange(4), np.array([4]))
            raise RuntimeError("crash mid-shard")
    assert list(tmp_out.iterdir()) == []


def test_writer_rejects_bad_input(tmp_out):
    with pytest.raises(ValueError, match="lengths sum to 3"):
        write_indexed(tmp_out / "z", np.arange(4), np.array([3]), np.uint16)
    with pytest.raises(ValueError, match="outside the range of uint16"):
        write_indexed(tmp_out / "z", np.array([70000]), np.array([1]), np.uint16)
    with pytest.raises(ValueError, match="integer type"):
        IndexedWriter(tmp_out / "z", np.float32)
    assert list(tmp_out.iterdir()) == []


def test_reader_errors_name_the_file(tmp_out):
    write_indexed(tmp_out / "a", np.arange(10), np.array([4, 6]), np.uint16)
    idx, bin_ = tmp_out / "a.idx", tmp_out / "a.bin"
    good = idx.read_bytes()
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        IndexedDataset(tmp_out / "nope")
    idx.write_bytes(b"XXIDIDX\x00\x00" + good[9:])
    with pytest.raises(ValueError, match=r"a\.idx: bad magic"):
        IndexedDataset(tmp_out / "a")
    idx.write_bytes(good[:9] + (2).to_bytes(8, "little") + good[17:])
    with pytest.raises(ValueError, match="unsupported index version 2"):
        IndexedDataset(tmp_out / "a")
    idx.write_bytes(good[:17] + bytes([9]) + good[18:])
    with pytest.raises(ValueError, match="unknown dtype code 9"):
        IndexedDataset(tmp_out / "a")
    idx.write_bytes(good[:-8])
    with pytest.raises(ValueError, match="truncated index"):
        IndexedDataset(tmp_out / "a")
    idx.write_bytes(good)
    bin_.write_bytes(bin_.read_bytes()[:-2])
    with pytest.raises(ValueError, match=r"a\.bin: 18 bytes, index promises 10 tokens"):
        IndexedDataset(tmp_out / "a")


def test_empty_dataset(tmp_out):
    write_indexed(tmp_out / "e", np.zeros(0, np.uint16), np.zeros(0, np.int64), np.uint16)
    ds = IndexedDataset(tmp_out / "e")
    assert len(ds) == 0 and ds.num_documents == 0 and ds.num_tokens == 0


# Written by megatron-core 0.16.1 `IndexedDatasetBuilder(dtype=np.int32)`: add_item + end_document for the
# documents [0..4], [100..102], [7], then finalize (captured once; megatron-core is not a dependency).
MEGATRON_IDX_HEX = (
    "4d4d494449445800000100000000000000040300000000000000040000000000000005000000030000000100000000000000"
    "00000000140000000000000020000000000000000000000000000000010000000000000002000000000000000300000000000000")


def test_bytes_equal_megatron_builder_output(tmp_out):
    docs = [np.arange(5), np.arange(3) + 100, np.array([7])]
    write_indexed(tmp_out / "m", np.concatenate(docs), np.array([5, 3, 1]), np.int32)
    assert (tmp_out / "m.idx").read_bytes().hex() == MEGATRON_IDX_HEX
    assert (tmp_out / "m.bin").read_bytes() == np.concatenate(docs).astype("<i4").tobytes()
    (tmp_out / "g.idx").write_bytes(bytes.fromhex(MEGATRON_IDX_HEX))
    (tmp_out / "g.bin").write_bytes(np.concatenate(docs).astype("<i4").tobytes())
    ds = IndexedDataset(tmp_out / "g")
    assert [ds[i].tolist() for i in range(3)] == [d.tolist() for d in docs] and ds.num_documents == 3
