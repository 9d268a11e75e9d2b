"""trainer.data over a real packed corpus (bundled samples -> pack -> mix): the plan consumes exactly the manifest's
allotment (tokens per source, epochs, proportional order, budget), determinism per seed, exact state restore,
document ids, the manifest's eval split never trained on, and the bad-input errors raised before training."""
import json
import shutil

import numpy as np
import pytest

from corpus.indexed import IndexedDataset
from corpus.mixture import split_documents
from trainer.data import BudgetExhausted, DataError, MixtureData
from trainer.evidence import CORPUS_VOCAB, build_sample_corpus

VOCAB = CORPUS_VOCAB  # a small trained BPE keeps the tiny model's embedding and head small: fast CPU steps


def build_corpus(root, seq_len=32):
    """The bundled samples packed with a trained BPE and mixed, one source per domain (trainer.evidence)."""
    return build_sample_corpus(root, seq_len=seq_len)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("data"))


def _draw_all(d, batch=8):
    """Every (source, window) of the plan, drawn the way training does (whole batches, then the rest)."""
    picks = []
    while d.consumed_samples < d.total_samples:
        picks += d._draw(min(batch, d.total_samples - d.consumed_samples))
    return picks


def test_plan_consumes_exactly_what_the_manifest_allots(manifest):
    d = MixtureData.open(manifest, 32, seed=3)
    m = json.loads(manifest.read_text())
    picks = _draw_all(d)
    assert len(picks) == d.total_samples == sum(s["allotted_tokens"] // 32 for s in m["sources"])
    for i, s in enumerate(m["sources"]):
        mine = [w for k, w in picks if k == i]
        # per-source tokens within one sequence of the allotment; epochs as planned
        assert 0 <= s["allotted_tokens"] - len(mine) * 32 < 32
        got = d.consumption()[s["name"]]
        assert got["consumed_tokens"] == len(mine) * 32 and got["planned_epochs"] == s["epochs"]
        assert got["consumed_epochs"] == pytest.approx(s["epochs"], abs=32 / s["available_tokens"])
        # epoch e visits every window once before epoch e+1 starts
        w = d.windows[i]
        assert s["epochs"] > 1 and len(mine) > w
        assert sorted(mine[:w]) == list(range(w)) and len(set(mine[w:])) == len(mine) - w
        assert d.train[i].num_tokens == s["available_tokens"]  # the stream is exactly the allotted-over tokens
    # every prefix of the run holds each source in proportion to its allotment (within one sample)
    for n in (10, 100, 333, len(picks)):
        for i in range(len(m["sources"])):
            assert abs(sum(1 for k, _ in picks[:n] if k == i) - n * d.planned[i] / d.total_samples) <= 1.0
    with pytest.raises(BudgetExhausted, match=f"exceeds the manifest's {d.total_samples} samples"):
        d.next_batch(1)


def test_order_is_deterministic_per_seed_and_rows_are_slices(manifest):
    a, b, c = (MixtureData.open(manifest, 32, seed=s) for s in (3, 3, 4))
    ta, da = a.next_batch(16)
    assert ta.shape == (16, 33) and np.array_equal(ta, b.next_batch(16)[0])
    assert not np.array_equal(ta, c.next_batch(16)[0])
    # a rank reading rows 8:16 of the next global batch gets exactly those rows, and stays in step
    full = a.next_batch(16)
    part = b.next_batch(16, slice(8, 16))
    assert np.array_equal(full[0][8:], part[0]) and np.array_equal(full[1][8:], part[1])
    assert a.cursors == b.cursors


def test_repeat_continues_past_the_budget(manifest):
    d = MixtureData.open(manifest, 32, seed=0, repeat=True)
    _draw_all(d)
    d.next_batch(d.total_samples)  # a second pass of the same plan
    m = json.loads(manifest.read_text())
    for s in m["sources"]:
        assert d.consumption()[s["name"]]["consumed_epochs"] == pytest.approx(2 * s["epochs"], abs=0.05)


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
    for _ in range(50):  # past one epoch of the smallest source, so epochs move
        a.next_batch(8)
    state = json.loads(json.dumps(a.state_dict()))  # JSON-able, as stored in a checkpoint
    want = [a.next_batch(8) for _ in range(5)]
    b = MixtureData.open(manifest, 32, seed=1)
    b.load_state_dict(state)
    got = [b.next_batch(8) for _ in range(5)]
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(want, got))
    assert any(c > w for c, w in zip(a.cursors, a.windows))
    with pytest.raises(DataError, match="seq_len"):
        MixtureData.open(manifest, 16, seed=1).load_state_dict(state)
    with pytest.raises(DataError, match="seed"):
        MixtureData.open(manifest, 32, seed=2).load_state_dict(state)


def test_eval_split_is_the_manifests_and_never_trained_on(manifest):
    d = MixtureData.open(manifest, 32)
    m = json.loads(manifest.read_text())
    for src, tr, ev in zip(m["sources"], d.train, d.evals):
        assert ev.num_tokens == src["eval_tokens"] > 0 and tr.num_tokens == src["available_tokens"]
        assert not {p.ctypes.data for p in tr.pieces} & {p.ctypes.data for p in ev.pieces if len(p)}
        # the held-out documents are each shard's last `eval_docs` documents, decided by the manifest
        tail = []
        for j in src["shard_order"]:
            sh = src["shards"][j]
            ds = IndexedDataset(sh["prefix"])
            tail.append(np.asarray(ds.tokens[sh["train_tokens"]:], dtype=np.int64))
            assert len(ds) - sh["eval_docs"] >= 1
        assert np.array_equal(ev.read(0, ev.num_tokens)[0], np.concatenate(tail))
    # no window of the plan reaches past a source's training stream into its eval documents
    assert all((w + 1) * 32 + 1 <= d.train[i].num_tokens for i, w in _draw_all(d))
    e1, e2 = d.eval_batches(4, 3), MixtureData.open(manifest, 32, seed=9).eval_batches(4, 3)
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


def test_split_that_differs_from_the_manifest(private):
    path, m = private
    m["sources"][2]["shards"][0]["eval_docs"] += 1
    path.write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"sources\[2\] 'code' shards\[0\].*train_tokens"):
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
