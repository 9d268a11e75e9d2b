"""The band-partitioned (memory-bounded) dedup path against the in-memory reference, and on real Ray."""
import json

import pyarrow.parquet as pq
import pytest

from corpus.dedup import DedupSpec, run_dedup
from corpus.events import Progress
from corpus.shards import read_index
from tests.corpus.test_dedup import _corpus
from tests.corpus.test_dedup_norm import _write, planted


def _both_corpora():
    docs, _ = planted(seed=3, per_kind=4, noise=20)
    extra, _ = _corpus(seed=2)  # exact groups of 3, near pairs, a word-overlap decoy
    return docs + extra


def _outputs(out):
    return (read_index(out)["shards"], pq.read_table(out / ".k2forge/clusters.parquet"),
            pq.read_table(out / ".k2forge/removed.parquet"))


def _band_unit_stats(out):
    return [json.loads(p.read_text()) for p in sorted((out / ".k2forge/done/dedup-bands").glob("*.json"))]


@pytest.mark.parametrize("kw", [{}, {"exact": False}, {"near": False}, {"exact_recheck": False, "empty": "drop"}])
def test_bounded_path_equals_in_memory_path(tmp_path, kw):
    inp = _write(tmp_path, _both_corpora(), shards=4)
    run_dedup(DedupSpec(inputs=[str(inp)], output=str(tmp_path / "mem"), lsh="memory", **kw))
    # 3 bands per unit and hash partitions of ~25 documents: 11 near groups (+1 exact) x 5 partitions
    res = run_dedup(DedupSpec(inputs=[str(inp)], output=str(tmp_path / "bnd"), band_group=3, partition_docs=25,
                              **kw))
    mem, bnd = _outputs(tmp_path / "mem"), _outputs(tmp_path / "bnd")
    assert mem[0] == bnd[0]          # kept shards: same bytes (sha256)
    assert mem[1].equals(bnd[1]) and mem[2].equals(bnd[2]) and mem[2].num_rows > 10
    n_groups = (0 if kw.get("near") is False else 11) + (0 if kw.get("exact") is False else 1)
    assert res["lsh"]["partitions"] == 5 and res["lsh"]["band_units"] == 5 * n_groups
    assert len(_band_unit_stats(tmp_path / "bnd")) == 5 * n_groups


def test_ray_spreads_band_units_and_gives_identical_results(tmp_path):
    inp = _write(tmp_path, _both_corpora(), shards=4)
    run_dedup(DedupSpec(inputs=[str(inp)], output=str(tmp_path / "local")))
    res = run_dedup(DedupSpec(inputs=[str(inp)], output=str(tmp_path / "ray"),
                              executor={"kind": "ray", "workers": 2}))
    local, ray = _outputs(tmp_path / "local"), _outputs(tmp_path / "ray")
    assert local[0] == ray[0] and local[1].equals(ray[1]) and local[2].equals(ray[2])
    assert len({s["pid"] for s in _band_unit_stats(tmp_path / "ray")}) == 2  # both actors did band units
    assert res["peak_rss_mb"]["bands"] > 0


@pytest.mark.parametrize("unit,size", [("word", 5), ("char", 9)])
def test_a_huge_document_is_hashed_in_pieces_with_the_same_signature(tmp_path, monkeypatch, unit, size):
    import numpy as np

    from corpus import dedup_stages as dedup
    from corpus.schema import normalize_doc, table_from_docs
    from corpus.shards import write_table
    docs, _ = planted(seed=4, per_kind=1, noise=3)
    texts = [" ".join(d["text"] for d in docs)] + [d["text"] for d in docs[:3]]  # ~15k characters first
    write_table(tmp_path / "in" / "s-00000.parquet", table_from_docs(
        [normalize_doc({"id": f"t{i}", "text": t, "domain": "web"}, "t") for i, t in enumerate(texts)]))
    monkeypatch.setattr(dedup, "MAX_BATCH_CHARS", 1000)  # the first text is cut into ~15 pieces
    spec = DedupSpec(inputs=[str(tmp_path / "in")], output=str(tmp_path / "out"), shingle_unit=unit,
                     shingle_size=size, num_perm=64, bands=16, rows=4)
    run_dedup(spec)
    meta = next((tmp_path / "out/.k2forge/state/signatures").glob("*.parquet"))
    sig = np.load(dedup.sig_path(meta))
    assert np.array_equal(sig, spec.hasher().signatures(texts))
    hv, counts = spec.hasher().shingle_hashes(texts)
    assert pq.read_table(meta).column("n_shingles").to_pylist() == counts.tolist()


def test_a_shard_that_disappears_mid_run_fails_clearly_and_the_rerun_resumes(tmp_path):
    inp = _write(tmp_path, _both_corpora(), shards=4)
    victim = inp / "s-00002.parquet"
    saved = victim.read_bytes()

    def vanish(event):
        if isinstance(event, Progress) and event.stage == "signatures":  # after every shard was fingerprinted, before any is written
            victim.unlink()
    spec = DedupSpec(inputs=[str(p) for p in sorted(inp.glob("*.parquet"))], output=str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="s-00002.parquet"):
        run_dedup(spec, on_event=vanish)
    assert not (tmp_path / "out" / ".k2forge/index.json").exists()  # no output claims to be complete
    victim.write_bytes(saved)
    events = []
    run_dedup(spec, on_event=events.append)
    redone = [e.unit for e in events if isinstance(e, Progress) and e.stage == "dedup-signatures"]
    assert len(redone) == 1 and redone[0].startswith("00002-")  # only the rewritten shard is fingerprinted again
    run_dedup(DedupSpec(inputs=spec.inputs, output=str(tmp_path / "clean")))
    assert _outputs(tmp_path / "out")[0] == _outputs(tmp_path / "clean")[0]


@pytest.mark.slow
def test_a_50_mb_document_and_its_copy(tmp_path):
    from corpus.schema import normalize_doc, table_from_docs
    from corpus.shards import write_table
    docs, _ = planted(seed=7, per_kind=1, noise=2)
    huge = " ".join(d["text"] for d in docs)
    huge = " ".join([huge] * (50_000_000 // len(huge) + 1)) + " end"
    texts = {"huge": huge, "copy": huge.upper().replace(".", " ."), "small": docs[0]["text"]}
    write_table(tmp_path / "in" / "s-00000.parquet", table_from_docs(
        [normalize_doc({"id": i, "text": t, "domain": "web"}, "t") for i, t in texts.items()]))
    res = run_dedup(DedupSpec(inputs=[str(tmp_path / "in")], output=str(tmp_path / "out"), exact=False))
    removed = {r["id"] for r in pq.read_table(tmp_path / "out/.k2forge/removed.parquet").to_pylist()}
    assert removed == {"huge"} and res["near_removed"] == 1  # the copy is longer (spaced periods): it is kept
    assert res["peak_rss_mb"]["signatures"] < 2500
