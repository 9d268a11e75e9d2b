"""Incremental dedup against a saved index: only new documents are removed, and they are the ones a one-shot
dedup of the union removes (when the indexed copies win the keep rule), transitively over chained indexes."""
import random

import pyarrow.parquet as pq
import pytest

from corpus.dedup import DedupSpec, run_dedup
from corpus.schema import normalize_doc
from corpus.shards import read_index, read_shard
from tests.corpus.test_dedup_norm import _remove_span, _sentence_text, _write, planted


def _removed(out):
    return {r["id"]: r for r in pq.read_table(out / ".k2forge/removed.parquet").to_pylist()}


def _kept_texts(out):
    return {r["id"]: r["text"] for e in read_index(out)["shards"] for r in read_shard(out / e["path"]).to_pylist()}


def _new_batch(r, old_kept, old_removed_texts):
    """New documents ('z' ids sort after the old ones): exact and shortened copies of indexed documents,
    copies of documents the first run removed, new pairs among themselves and fresh ones."""
    kept = sorted(old_kept.items())
    docs = [{"id": f"z-exact-{i}", "text": t} for i, (_, t) in enumerate(kept[:5])]
    docs += [{"id": f"z-span-{i}", "text": _remove_span(r, t, 0.05)} for i, (_, t) in enumerate(kept[5:10])]
    docs += [{"id": f"z-again-{i}", "text": t} for i, t in enumerate(old_removed_texts[:4])]
    for i in range(4):
        base = _sentence_text(r, 200)
        docs += [{"id": f"z-pair-{i}", "text": base}, {"id": f"z-pair-{i}-b", "text": _remove_span(r, base, 0.05)}]
    docs += [{"id": f"z-fresh-{i}", "text": _sentence_text(r, 150)} for i in range(10)]
    return [normalize_doc({**d, "domain": "web"}, "t") for d in docs]


def test_incremental_equals_one_shot_for_new_documents(tmp_path):
    old, _ = planted(seed=5, per_kind=3, noise=15)
    a_in = _write(tmp_path / "a", old, shards=2)
    run_dedup(DedupSpec(inputs=[str(a_in)], output=str(tmp_path / "A"), save_index=True))
    old_removed = _removed(tmp_path / "A")
    texts = {d["id"]: d["text"] for d in old}
    new = _new_batch(random.Random(1), _kept_texts(tmp_path / "A"), [texts[i] for i in sorted(old_removed)])
    b_in = _write(tmp_path / "b", new, shards=2)
    res = run_dedup(DedupSpec(inputs=[str(b_in)], output=str(tmp_path / "B"), index=[str(tmp_path / "A")],
                              save_index=True))
    got = _removed(tmp_path / "B")
    assert set(got) <= {d["id"] for d in new} and res["index"]["docs"] == len(old) - len(old_removed)
    one_shot = run_dedup(DedupSpec(inputs=[str(a_in), str(b_in)], output=str(tmp_path / "AB")))
    want = {i for i in _removed(tmp_path / "AB") if i.startswith("z")}
    assert set(got) == want and len(want) == 5 + 5 + 4 + 4 and one_shot["docs_in"] == len(old) + len(new)
    cross = [r for r in got.values() if not r["kept_id"].startswith("z")]
    assert len(cross) == 14 and all(r["kept_shard"].startswith(str((tmp_path / "A").resolve())) for r in cross)
    assert set(_kept_texts(tmp_path / "B")) == {d["id"] for d in new} - set(got)

    # a third batch against B's index alone still meets A's documents (B's index includes A's)
    c_in = _write(tmp_path / "c", [normalize_doc({"id": "zz-copy", "text": texts[sorted(_kept_texts(
        tmp_path / "A"))[0]], "domain": "web"}, "t"), normalize_doc({"id": "zz-copy-b", "text": new[-1]["text"],
                                                                      "domain": "web"}, "t")], shards=1)
    res = run_dedup(DedupSpec(inputs=[str(c_in)], output=str(tmp_path / "C"), index=[str(tmp_path / "B")]))
    assert set(_removed(tmp_path / "C")) == {"zz-copy", "zz-copy-b"} and len(res["index"]["dirs"]) == 2


def test_index_errors_name_the_directory(tmp_path):
    docs, _ = planted(seed=6, per_kind=1, noise=4)
    inp = _write(tmp_path / "a", docs, shards=1)
    run_dedup(DedupSpec(inputs=[str(inp)], output=str(tmp_path / "A"), save_index=True))
    run_dedup(DedupSpec(inputs=[str(inp)], output=str(tmp_path / "plain")))
    with pytest.raises(FileNotFoundError, match=r"plain: no \.k2forge/dedup_index/index.json \(run that dedup with "):
        run_dedup(DedupSpec(inputs=[str(inp)], output=str(tmp_path / "x"), index=[str(tmp_path / "plain")]))
    with pytest.raises(ValueError, match=r"A: built with other parameters \(bands, num_perm\): "):
        run_dedup(DedupSpec(inputs=[str(inp)], output=str(tmp_path / "y"), index=[str(tmp_path / "A")],
                            num_perm=64, bands=16))
    with pytest.raises(ValueError, match="index .incremental dedup. needs lsh: bounded"):
        DedupSpec(inputs=["x"], output="o", index=["A"], lsh="memory")


def test_a_rerun_without_save_index_drops_the_stale_index(tmp_path):
    docs, _ = planted(seed=8, per_kind=1, noise=4)
    inp = _write(tmp_path / "a", docs, shards=1)
    res = run_dedup(DedupSpec(inputs=[str(inp)], output=str(tmp_path / "A"), save_index=True))
    assert res["saved_index"] == {"docs": res["docs_out"], "shards": 1}
    run_dedup(DedupSpec(inputs=[str(inp)], output=str(tmp_path / "A"), near=False))  # other kept shards
    with pytest.raises(FileNotFoundError, match="no .k2forge/dedup_index"):
        run_dedup(DedupSpec(inputs=[str(inp)], output=str(tmp_path / "x"), index=[str(tmp_path / "A")]))
