"""Normalisation before shingling: the TextNorm steps, recall per planted kind through the dedup job, and the
stated rules for empty and shorter-than-a-shingle documents."""
import json
import random

import pyarrow.parquet as pq
import pytest

from corpus.dedup import DedupSpec, run_dedup
from corpus.schema import normalize_doc, table_from_docs
from corpus.shards import read_index, read_shard, write_table
from corpus.textnorm import TextNorm

R = random.Random(11)
VOCAB = ["".join(R.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(R.randint(2, 9))) for _ in range(4000)]
FULL_WIDTH = {c: chr(ord(c) + 0xFEE0) for c in map(chr, range(0x21, 0x7F))}  # ASCII -> U+FF01..U+FF5E


def _sentence_text(r, n_words):
    """Prose-like text: capitalised sentences, commas, periods, a few digits."""
    out, words = [], [r.choice(VOCAB) for _ in range(n_words)]
    for i, w in enumerate(words):
        if i == 0 or out[-1].endswith("."):
            w = w.capitalize()
        if r.random() < 0.02:
            w = str(r.randint(1, 999))
        out.append(w + r.choice([""] * 8 + [",", "."]))
    return " ".join(out) + "."


def _spaced_upper(text):
    """The whole text UPPER-CASED with a space before every punctuation mark."""
    return "".join(f" {c}" if c in ",.;:!?" else c for c in text.upper())


def _whitespace(r, text):
    return "".join(r.choice([" ", "\t", "\n", "  ", "\u00a0", " \r\n "]) if c == " " else c for c in text)


def _replace_words(r, text, frac):
    words = text.split(" ")
    for i in r.sample(range(len(words)), max(1, int(frac * len(words)))):
        words[i] = r.choice(VOCAB)
    return " ".join(words)


def _remove_span(r, text, frac):
    words = text.split(" ")
    n = int(frac * len(words))
    lo = r.randrange(len(words) - n)
    return " ".join(words[:lo] + words[lo + n:])


KINDS = {
    "upper_spaced": lambda r, t: _spaced_upper(t),
    "full_width": lambda r, t: "".join(FULL_WIDTH.get(c, c) for c in t),
    "whitespace": _whitespace,
    "words_replaced": lambda r, t: _replace_words(r, t, 0.01),
    "footer": lambda r, t: _whitespace(r, t) + "\n\n  Copyright 2024 , All rights reserved .  ",
    "span_removed": lambda r, t: _remove_span(r, t, 0.05),
}


def planted(seed=0, per_kind=6, noise=30):
    """(docs, {dup id: (kind, original id)})."""
    r = random.Random(seed)
    docs, truth = [], {}
    for kind, make in KINDS.items():
        for i in range(per_kind):
            base = _sentence_text(r, r.randint(120, 300))
            oid = f"{kind}-{i}-orig"
            docs += [{"id": oid, "text": base}, {"id": f"{kind}-{i}-dup", "text": make(r, base)}]
            truth[f"{kind}-{i}-dup"] = (kind, oid)
    docs += [{"id": f"noise-{i}", "text": _sentence_text(r, r.randint(120, 300))} for i in range(noise)]
    r.shuffle(docs)
    return [normalize_doc({**d, "domain": "web"}, "test") for d in docs], truth


def _recall_per_kind(out, truth):
    """Per kind: fraction of planted pairs whose two documents ended in one cluster."""
    clusters = pq.read_table(out / ".k2forge/clusters.parquet").to_pylist()
    together = {frozenset([c["kept_id"], *c["removed_ids"]]) for c in clusters}
    member_of = {i: s for s in together for i in s}
    hits = {k: 0 for k in KINDS}
    for dup, (kind, orig) in truth.items():
        hits[kind] += member_of.get(dup) is not None and orig in member_of[dup]
    per = len(truth) // len(KINDS)
    return {k: v / per for k, v in hits.items()}, clusters


def _write(tmp_path, docs, shards=3):
    d = tmp_path / "in"
    for k in range(shards):
        write_table(d / f"s-{k:05d}.parquet", table_from_docs(docs[k::shards]))
    return d


def test_text_norm_steps():
    n = TextNorm()
    assert n("Hello, world! It's  fine.") == n("HELLO , WORLD ! IT ' S FINE .") == "hello world it s fine"
    assert n("\uff28\uff45\uff4c\uff4c\uff4f\uff0c\u3000\uff57\uff4f\uff52\uff4c\uff44") == "hello world"  # NFKC
    assert n(" a\t\nb\u00a0 c\r\n") == "a b c" and n("Straße") == "strasse" and n("  ,;!  ") == ""
    assert n("pi 3.14, 42 apples") == "pi 3 14 42 apples"
    assert TextNorm(digits=True)("pi 3.14, 42 apples") == "pi 0 0 apples"
    assert TextNorm(diacritics=True)("Café naïve") == "cafe naive" != n("Café naïve")
    assert TextNorm.legacy()("Hello, World!") == "hello, world!"
    assert TextNorm(nfkc=False, lowercase=False, punctuation=False)("A\uff21  b") == "A\uff21 b"


def test_recall_per_kind_with_default_normalisation(tmp_path):
    docs, truth = planted()
    out = tmp_path / "out"
    res = run_dedup(DedupSpec(inputs=[str(_write(tmp_path, docs))], output=str(out)))
    recall, clusters = _recall_per_kind(out, truth)
    assert recall == {k: 1.0 for k in KINDS}
    assert all(c["size"] == 2 for c in clusters) and len(clusters) == len(truth)  # no noise doc caught
    removed = {r["id"]: r["reason"] for r in pq.read_table(out / ".k2forge/removed.parquet").to_pylist()}
    # exact dedup sees the same normalised text: case, punctuation spacing, full width and whitespace are exact
    for dup, (kind, orig) in truth.items():
        got = removed.get(dup) or removed.get(orig)
        want = "exact" if kind in ("upper_spaced", "full_width", "whitespace") else "near"
        assert got == want, (dup, got)
    stats = json.loads((out / ".k2forge/stats.json").read_text())
    assert stats["text_norm"] == TextNorm().model_dump() and stats["text_norm"]["punctuation"] is True
    assert res["exact_removed"] == 3 * 6 and res["near_removed"] == 3 * 6


def test_without_punctuation_folding_the_spaced_upper_case_kind_is_missed(tmp_path):
    docs, truth = planted(seed=1)
    out = tmp_path / "out"
    run_dedup(DedupSpec(inputs=[str(_write(tmp_path, docs))], output=str(out),
                        text_norm=TextNorm.legacy().model_dump()))
    recall, _ = _recall_per_kind(out, truth)
    assert recall["upper_spaced"] < 0.5 and recall["full_width"] == recall["whitespace"] == 1.0


@pytest.mark.parametrize("rule", ["keep", "drop"])
def test_empty_and_short_documents(tmp_path, rule):
    texts = {"e1": "", "e2": "   \n\t ", "e3": " ,;! -- ", "s1": "Hello, world", "s1b": "HELLO , WORLD !",
             "s2": "tiny"}
    # ingest refuses empty texts, but shards from elsewhere (or a rewriting stage) can hold them
    docs = [{**normalize_doc({"id": i, "text": "x", "domain": "web"}, "t"), "text": t} for i, t in texts.items()]
    out = tmp_path / rule
    res = run_dedup(DedupSpec(inputs=[str(_write(tmp_path, docs, 2))], output=str(out), empty=rule))
    assert res["empty_docs"] == 3 and res["short_docs"] == 3 and res["empty_rule"] == rule
    removed = {r["id"]: r["reason"] for r in pq.read_table(out / ".k2forge/removed.parquet").to_pylist()}
    kept = {r["id"] for e in read_index(out)["shards"] for r in read_shard(out / e["path"]).to_pylist()}
    assert removed.get("s1") == "exact" and "s1b" in kept and "s2" in kept  # the longer text is kept
    if rule == "keep":  # empty texts are nobody's duplicate
        assert {"e1", "e2", "e3"} <= kept and res["empty_removed"] == 0
    else:
        assert {removed[i] for i in ("e1", "e2", "e3")} == {"empty"} and res["empty_removed"] == 3
    assert res["docs_out"] == len(kept) == len(texts) - len(removed)
    # a document shorter than one shingle still has a signature: near search alone finds its copy
    near = run_dedup(DedupSpec(inputs=[str(tmp_path / "in")], output=str(tmp_path / "near"), exact=False,
                               empty=rule))
    removed = {r["id"]: r["reason"] for r in pq.read_table(tmp_path / "near/.k2forge/removed.parquet").to_pylist()}
    assert removed.get("s1") == "near" and near["near_removed"] == 1 and near["short_docs"] == 3
