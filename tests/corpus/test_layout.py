"""Output folders load with Hugging Face `datasets` (data_dir= and a glob), and old-layout folders resume.

`datasets` reads every file under data_dir except hidden ones, so all bookkeeping sits in `.k2forge/`
(corpus.layout); the fidelity scores are a list of {name, value} structs (an Arrow map has no datasets type).
"""
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.dedup import DedupSpec, run_dedup
from corpus.dedup_stages import SignatureStage
from corpus.ingest import IngestSpec, IngestStage, run_ingest
from corpus.layout import META_DIR, find_meta, meta_path
from corpus.schema import SCORES_TYPE, scores_dict, table_from_docs
from corpus.shards import read_index, read_shard, write_table

datasets = pytest.importorskip("datasets")   # the hf extra; `make install` installs it


def load_both_ways(folder: Path, cache: Path) -> list:
    """Rows of `folder` through load_dataset("parquet", data_dir=...) and data_files="folder/*.parquet"."""
    by_dir = datasets.load_dataset("parquet", data_dir=str(folder), cache_dir=str(cache), split="train")
    by_glob = datasets.load_dataset("parquet", data_files=f"{folder}/*.parquet", cache_dir=str(cache),
                                    split="train")
    assert by_dir.num_rows == by_glob.num_rows
    return sorted(by_dir.to_list(), key=lambda r: json.dumps(r, sort_keys=True, default=str))


def _inputs(root: Path, n: int = 30) -> Path:
    root.mkdir(parents=True)
    docs = [{"text": f"Document {i % 20} talks about topic {i % 20} at some length. " * 8, "domain": "web"}
            for i in range(n)]
    for k in range(3):
        (root / f"in{k}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[k::3]))
    return root


def test_ingest_and_dedup_outputs_load_with_datasets(tmp_path):
    src = _inputs(tmp_path / "in")
    run_ingest(IngestSpec(inputs=[str(src / "*.jsonl")], output=str(tmp_path / "raw")))
    res = run_dedup(DedupSpec(inputs=[str(tmp_path / "raw")], output=str(tmp_path / "dedup"), save_index=True))
    for out, rows in ((tmp_path / "raw", 30), (tmp_path / "dedup", res["docs_out"])):
        got = load_both_ways(out, tmp_path / "cache")
        assert len(got) == rows == read_index(out)["total_rows"]
        assert {r["id"] for r in got} == {i for p in out.glob("*.parquet") for i in read_shard(p)["id"].to_pylist()}
        assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".parquet")) == [META_DIR]
    removed = datasets.load_dataset("parquet", data_files=str(meta_path(tmp_path / "dedup", "removed.parquet")),
                                    cache_dir=str(tmp_path / "cache"), split="train")
    assert removed.num_rows == res["docs_in"] - res["docs_out"] > 0


def test_synthetic_scores_load_with_datasets_and_old_map_shards_still_read(tmp_path):
    docs = [{"id": f"s{i}", "text": f"rewrite {i}", "domain": "knowledge", "parent_id": f"p{i}", "task": "rephrase",
             "fidelity": {"accepted": True, "reasons": [], "scores": {"numbers": 1.0, "cosine": 0.5 + i / 10}}}
            for i in range(3)]
    out = tmp_path / "synth"
    write_table(out / "part-00000.parquet", table_from_docs(docs, synthetic=True))
    got = load_both_ways(out, tmp_path / "cache")
    assert got[1]["fidelity"]["scores"] == [{"name": "cosine", "value": 0.6}, {"name": "numbers", "value": 1.0}]
    assert scores_dict(got[1]["fidelity"]["scores"]) == {"cosine": 0.6, "numbers": 1.0}
    # a shard written before: scores as map<string, double>; it reads as the current type
    table = table_from_docs(docs, synthetic=True)
    old_type = pa.struct([("accepted", pa.bool_()), ("reasons", pa.list_(pa.string())),
                          ("scores", pa.map_(pa.string(), pa.float64()))])
    fid = pa.array([{**d["fidelity"], "scores": list(d["fidelity"]["scores"].items())} for d in docs], old_type)
    pq.write_table(table.set_column(table.schema.get_field_index("fidelity"), "fidelity", fid),
                   tmp_path / "old.parquet")
    back = read_shard(tmp_path / "old.parquet")
    assert back.schema.field("fidelity").type.field("scores").type == SCORES_TYPE
    assert scores_dict(back.column("fidelity")[2].as_py()["scores"]) == {"cosine": 0.7, "numbers": 1.0}
    assert scores_dict([("a", 1)]) == {"a": 1.0} and scores_dict(None) == {}


def _to_old_layout(out: Path, done_under: str) -> None:
    """Rename a folder's .k2forge/ contents to the names the previous version wrote."""
    meta = out / META_DIR
    for new, old in (("index.json", "_index.json"), ("spec.yaml", "_spec.yaml"), ("stats.json", "_stats.json"),
                     ("state", "_state"), ("clusters.parquet", "_clusters.parquet"),
                     ("removed.parquet", "_removed.parquet"), ("done", done_under)):
        if (meta / new).exists():
            (out / old).parent.mkdir(parents=True, exist_ok=True)
            os.replace(meta / new, out / old)
    shutil.rmtree(meta)


def test_an_old_layout_folder_resumes_without_redoing_units(tmp_path, monkeypatch):
    src = _inputs(tmp_path / "in")
    ingest_spec = IngestSpec(inputs=[str(src / "*.jsonl")], output=str(tmp_path / "raw"))
    run_ingest(ingest_spec)
    dedup_spec = DedupSpec(inputs=[str(tmp_path / "raw")], output=str(tmp_path / "dedup"))
    first = run_dedup(dedup_spec)
    _to_old_layout(tmp_path / "raw", "_done")
    _to_old_layout(tmp_path / "dedup", "_state/_done")    # dedup kept its markers in _state/_done/
    assert find_meta(tmp_path / "raw", "index.json") == tmp_path / "raw" / "_index.json"  # readers fall back
    assert read_index(tmp_path / "raw")["total_rows"] == 30
    calls = []
    for cls in (IngestStage, SignatureStage):
        orig = cls.process
        monkeypatch.setattr(cls, "process", lambda self, u, orig=orig: calls.append(u.id) or orig(self, u))
    assert run_ingest(ingest_spec)["units_cached"] == 3
    second = run_dedup(dedup_spec)
    assert calls == [] and second["docs_out"] == first["docs_out"]
    for out in (tmp_path / "raw", tmp_path / "dedup"):
        assert not [p.name for p in out.iterdir() if p.name.startswith("_")]     # moved into .k2forge/
        assert len(load_both_ways(out, tmp_path / "cache")) == read_index(out)["total_rows"]
