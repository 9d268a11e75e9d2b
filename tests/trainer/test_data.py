"""trainer.data over a real packed corpus (bundled samples -> pack -> mix): weights, determinism, exact sampler
state restore, document ids, a disjoint eval split, and the bad-input errors raised before training."""
import json
import shutil

import numpy as np
import pytest

from corpus.indexed import IndexedDataset
from trainer.data import DataError, MixtureData, split_documents
from trainer.evidence import CORPUS_VOCAB, build_sample_corpus

VOCAB = CORPUS_VOCAB  # a small trained BPE keeps the tiny model's embedding and head small: fast CPU steps


def build_corpus(root, seq_len=32):
    """The bundled samples packed with a trained BPE and mixed, one source per domain (trainer.evidence)."""
    return build_sample_corpus(root, seq_len=seq_len)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("data"))


def test_samples_follow_weights_and_are_deterministic(manifest):
    a = MixtureData.open(manifest, 32, seed=3)
    b = MixtureData.open(manifest, 32, seed=3)
    ta, _ = a.next_batch(64)
    tb, _ = b.next_batch(64)
    assert ta.shape == (64, 33) and np.array_equal(ta, tb)
    assert not np.array_equal(ta, MixtureData.open(manifest, 32, seed=4).next_batch(64)[0])
    m = json.loads(manifest.read_text())
    want = np.array([s["fraction"] for s in m["sources"]])
    assert np.allclose(a.probs, want, atol=1e-6)
    counts = np.bincount(a.rng.choice(len(want), 20000, p=a.probs), minlength=len(want)) / 20000
    assert np.allclose(counts, want, atol=0.02)


def test_windows_are_real_stream_tokens(manifest):
    d = MixtureData.open(manifest, 32, seed=0)
    m = json.loads(manifest.read_text())
    src = m["sources"][0]
    ds = IndexedDataset(src["shards"][src["shard_order"][0]]["prefix"])
    toks, docs = d.train[0].read(0, 33)
    assert np.array_equal(toks, np.asarray(ds.tokens[:33], dtype=np.int64))
    # document index from the sequence boundaries: changes exactly after each document's last token (its EOS)
    eos = m["tokenizer"]["eos_id"]
    assert np.array_equal(np.diff(docs) == 1, toks[:-1] == eos)


def test_sampler_state_restores_exactly(manifest):
    a = MixtureData.open(manifest, 32, seed=1)
    for _ in range(100):  # past one epoch of the smallest source, so epochs and cursors move
        a.next_batch(8)
    state = json.loads(json.dumps(a.state_dict()))  # JSON-able, as stored in a checkpoint
    want = [a.next_batch(8) for _ in range(5)]
    b = MixtureData.open(manifest, 32, seed=1)
    b.load_state_dict(state)
    got = [b.next_batch(8) for _ in range(5)]
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(want, got))
    assert max(a.epochs) >= 1
    with pytest.raises(DataError, match="seq_len"):
        MixtureData.open(manifest, 16, seed=1).load_state_dict(state)


def test_eval_split_is_disjoint_and_fixed(manifest):
    d = MixtureData.open(manifest, 32, eval_fraction=0.25)
    for tr, ev in zip(d.train, d.evals):
        train_pieces = {p.ctypes.data for p in tr.pieces}
        assert not train_pieces & {p.ctypes.data for p in ev.pieces if len(p)}
        assert ev.num_tokens > 0
    e1, e2 = d.eval_batches(4, 3), MixtureData.open(manifest, 32, eval_fraction=0.25, seed=9).eval_batches(4, 3)
    assert len(e1) == 3 and all(np.array_equal(x[0], y[0]) for x, y in zip(e1, e2))
    assert split_documents(10, 0.2) == 8 and split_documents(1, 0.5) == 1 and split_documents(5, 0.0) == 5


def _copy(manifest, tmp_path):
    """A private copy of the corpus (manifest + shards) whose files a test may damage."""
    m = json.loads(manifest.read_text())
    for s in m["sources"]:
        for sh in s["shards"]:
            dst = tmp_path / "p" / sh["prefix"].replace("/", "_")
            for ext in (".bin", ".idx"):
                shutil.copy(sh["prefix"] + ext, str(dst) + ext)
            sh["prefix"] = str(dst)
    path = tmp_path / "m.json"
    path.parent.mkdir(exist_ok=True)
    (tmp_path / "p").mkdir(exist_ok=True)
    path.write_text(json.dumps(m))
    return path, m


@pytest.fixture
def private(manifest, tmp_path):
    (tmp_path / "p").mkdir()
    return _copy(manifest, tmp_path)


def test_missing_shard_is_named(private):
    path, m = private
    victim = m["sources"][1]["shards"][0]["prefix"] + ".bin"
    import os
    os.remove(victim)
    with pytest.raises(DataError, match=r"sources\[1\] 'math'.*missing"):
        MixtureData.open(path, 32)


def test_corrupted_shard_fails_checksum(private):
    path, m = private
    victim = m["sources"][0]["shards"][1]["prefix"] + ".bin"
    raw = bytearray(open(victim, "rb").read())
    raw[10] ^= 0xFF
    open(victim, "wb").write(bytes(raw))
    with pytest.raises(DataError, match="sha256 differs"):
        MixtureData.open(path, 32)


def test_token_ids_beyond_vocab(manifest):
    MixtureData.open(manifest, 32, vocab_size=VOCAB)
    with pytest.raises(DataError, match="token id .* >= model vocab_size 300"):
        MixtureData.open(manifest, 32, vocab_size=300)


def test_not_a_manifest(tmp_path):
    (tmp_path / "x.json").write_text('{"format": "something"}')
    with pytest.raises(DataError, match="not a mixture manifest"):
        MixtureData.open(tmp_path / "x.json", 32)
    (tmp_path / "y.json").write_text('{"format": ')
    with pytest.raises(DataError, match="line 1"):
        MixtureData.open(tmp_path / "y.json", 32)
    with pytest.raises(DataError, match="not found"):
        MixtureData.open(tmp_path / "nope.json", 32)
