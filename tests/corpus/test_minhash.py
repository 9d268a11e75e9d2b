"""Vectorised MinHash against datasketch (bit-identical), LSH banding against MinHashLSH, clustering helpers."""
import random

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH

from corpus.minhash import (MinHasher, batches, candidate_pairs, connected_components, estimated_jaccard, exact_key,
                            fast_shingle_hash, lsh_threshold, normalize_text, s_curve)

RNG = random.Random(7)
VOCAB = ["".join(RNG.choice("abcdefghijklmnop") for _ in range(5)) for _ in range(2000)]


def _docs(n=40, seed=0):
    r = random.Random(seed)
    docs = [" ".join(r.choice(VOCAB) for _ in range(r.randint(0, 120))) for _ in range(n)]
    # edge cases: empty, shorter than a shingle, NFKC/casefold/whitespace variants, non-ASCII
    return docs + ["", "hi", "a b", "  X\u00a0y\t\n z  ", "\ufb01ne Ｆｕｌｌ width", "Straße ὈΔΥΣΣΕΎΣ 東京 🙂 ok"]


def test_normalize_text():
    assert normalize_text("  Hello\u00a0\tWORLD \n") == "hello world"
    assert normalize_text("Ｆｕｌｌ \ufb01") == "full fi"          # NFKC folds width and ligatures
    assert normalize_text("Straße") == normalize_text("STRASSE")  # casefold, not lower
    assert exact_key("A  b") == exact_key("a b") != exact_key("a  c")


@pytest.mark.parametrize("unit,size", [("word", 5), ("char", 7)])
@pytest.mark.parametrize("shash", ["fast", "sha1"])
@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_signatures_equal_datasketch(unit, size, shash, scheme):
    # max_rows small so documents straddle the permutation chunks
    mh = MinHasher(64, seed=3, shingle_size=size, shingle_unit=unit, shingle_hash=shash, scheme=scheme,
                   max_rows=333)
    docs = _docs()
    sig = mh.signatures(docs)
    ref = np.array([mh.datasketch_minhash(d).hashvalues for d in docs]).astype(np.uint64)
    assert sig.shape == (len(docs), 64) and sig.dtype == np.uint32
    assert np.array_equal(sig.astype(np.uint64), ref)
    assert (sig[len(docs) - 6] == 0xFFFFFFFF).all()  # the empty doc: datasketch's empty MinHash


def test_sha1_mode_is_plain_datasketch():
    """sha1 mode needs no custom hashfunc: it is MinHash(num_perm, seed) fed the shingle strings."""
    mh = MinHasher(128, seed=1, shingle_size=3, shingle_hash="sha1")
    text = "The quick brown fox jumps over the lazy dog"
    m = MinHash(128, seed=1)
    for s in ["the quick brown", "quick brown fox", "brown fox jumps", "fox jumps over", "jumps over the",
              "over the lazy", "the lazy dog"]:
        m.update(s.encode("utf-8"))
    assert np.array_equal(mh.signatures([text])[0], m.hashvalues)


def test_fast_hash_vectorised_equals_scalar():
    for unit in ("word", "char"):
        mh = MinHasher(16, shingle_size=4, shingle_unit=unit)
        docs = _docs(10, seed=1)
        hv, counts = mh.shingle_hashes(docs)
        ref = [fast_shingle_hash(s) for d in docs for s in mh.shingles(d)]
        assert counts.tolist() == [len(mh.shingles(d)) for d in docs]
        assert hv.tolist() == ref


def _pair_with_jaccard(r, n_words=300, k=5, target=0.5):
    """A random doc and a copy with words replaced until the shingle-set Jaccard drops to `target`."""
    a = [r.choice(VOCAB) for _ in range(n_words)]
    b = list(a)
    sa = {tuple(a[i:i + k]) for i in range(n_words - k + 1)}
    while True:
        sb = {tuple(b[i:i + k]) for i in range(n_words - k + 1)}
        j = len(sa & sb) / len(sa | sb)
        if j <= target:
            return " ".join(a), " ".join(b), j
        b[r.randrange(n_words)] = r.choice(VOCAB) + "x"


def test_estimated_jaccard_within_sampling_error():
    r = random.Random(3)
    mh = MinHasher(256, seed=5)
    pairs = [_pair_with_jaccard(r, target=t) for t in (0.9, 0.75, 0.6, 0.4, 0.2)]
    sig = mh.signatures([t for a, b, _ in pairs for t in (a, b)])
    est = estimated_jaccard(sig, np.array([[2 * i, 2 * i + 1] for i in range(len(pairs))]))
    for (a, b, j), e in zip(pairs, est):
        assert abs(e - j) <= 4 * np.sqrt(j * (1 - j) / 256) + 1e-9, (j, e)
        assert e == mh.datasketch_minhash(a).jaccard(mh.datasketch_minhash(b))


def test_candidate_pairs_match_datasketch_lsh():
    r = random.Random(11)
    texts = []
    for t in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3):
        texts.extend(_pair_with_jaccard(r, n_words=120, target=t)[:2])
    texts += [" ".join(r.choice(VOCAB) for _ in range(120)) for _ in range(20)]
    mh = MinHasher(64, seed=2)
    sig = mh.signatures(texts)
    ours = {tuple(p) for p in candidate_pairs(sig, bands=16, rows=4).tolist()}
    lsh = MinHashLSH(num_perm=64, params=(16, 4))
    minhashes = [LeanMinHash(MinHash(hashvalues=s, scheme="affine32", seed=2)) for s in sig]
    for i, m in enumerate(minhashes):
        lsh.insert(i, m)
    theirs = {(min(i, j), max(i, j)) for i, m in enumerate(minhashes) for j in lsh.query(m) if j != i}
    assert ours == theirs and (0, 1) in ours


def test_large_bucket_links_linearly_but_connects_all():
    sig = np.tile(np.arange(8, dtype=np.uint32), (100, 1))  # 100 identical signatures: one bucket per band
    pairs = candidate_pairs(sig, bands=2, rows=4, max_all_pairs=32)
    assert len(pairs) == 2 * 100 - 3  # star to the first member + chain, not 100*99/2
    root = connected_components(100, pairs)
    assert (root == 0).all()
    assert len(candidate_pairs(sig[:10], bands=2, rows=4)) == 45  # small bucket: all pairs


def test_connected_components_root_is_smallest_index():
    root = connected_components(7, np.array([[5, 3], [3, 6], [1, 2], [6, 4]]))
    assert root.tolist() == [0, 1, 1, 3, 3, 3, 3]
    assert connected_components(3, np.zeros((0, 2), dtype=np.int64)).tolist() == [0, 1, 2]


def test_threshold_and_s_curve():
    assert lsh_threshold(32, 4) == pytest.approx((1 / 32) ** 0.25)
    curve = s_curve(16, 8)
    vals = list(curve.values())
    assert vals == sorted(vals) and curve["1.00"] == 1.0
    assert curve["0.70"] == pytest.approx(1 - (1 - 0.7 ** 8) ** 16, abs=1e-6)


def test_bad_parameters():
    with pytest.raises(ValueError, match="shingle_unit must be one of word, char"):
        MinHasher(shingle_unit="line")
    with pytest.raises(ValueError, match="num_perm, shingle_size and max_rows must be >= 1"):
        MinHasher(num_perm=0)
    with pytest.raises(ValueError, match="bands \\* rows = 3 \\* 4"):
        candidate_pairs(np.zeros((2, 8), dtype=np.uint32), bands=3, rows=4)


@pytest.mark.parametrize("shash", ["fast", "sha1"])
@pytest.mark.parametrize("unit", ["word", "char"])
def test_prenormalised_input_gives_the_same_hashes(shash, unit):
    mh = MinHasher(32, shingle_size=3, shingle_unit=unit, shingle_hash=shash)
    docs = _docs(8, seed=4)
    raw, counts = mh.shingle_hashes(docs)
    norm, ncounts = mh.shingle_hashes([normalize_text(d) for d in docs], normalized=True)
    assert np.array_equal(raw, norm) and np.array_equal(counts, ncounts)
    assert exact_key(normalize_text(docs[0]), normalized=True) == exact_key(docs[0])


def test_batches_bound_docs_and_chars():
    texts = ["aaaa", "bbbb", "cc", "d" * 30, "e", "f", "g"]
    assert batches(texts, max_docs=2, max_chars=10) == [(0, 2), (2, 3), (3, 4), (4, 6), (6, 7)]
    assert batches(texts, max_docs=100, max_chars=10) == [(0, 3), (3, 4), (4, 7)]  # a long text: own batch
    assert batches([], max_docs=4, max_chars=10) == []


def _union_find_roots(n, edges):
    """The reference: the pure-Python union-find k2forge used before scipy (smaller index wins)."""
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(x) for x in range(n)]


@pytest.mark.parametrize("n,m", [(1, 0), (50, 10), (2000, 1500), (2000, 6000)])
def test_connected_components_equal_union_find(n, m):
    rng = np.random.default_rng(n + m)
    edges = rng.integers(0, n, size=(m, 2))
    edges = np.concatenate([edges, edges[: m // 3]])  # repeated edges must not cancel out
    assert connected_components(n, edges).tolist() == _union_find_roots(n, edges)
