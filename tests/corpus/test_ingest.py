"""Ingest stage: planning, shards, stats, rerun skips finished units with identical bytes, no partial output."""
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

import corpus.ingest as ingest
from corpus.ingest import IngestSpec, plan_units, run_ingest
from corpus.schema import SchemaError
from corpus.shards import read_index, read_shard
from corpus.spec import SpecError, load_spec, parse_spec


def _write_inputs(root: Path) -> Path:
    """Two JSONL files (one with a bad line), a parquet file and a text directory."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"text": f"Web document number {i}. " * 30, "domain": "web", "source": "crawl"} for i in range(40)]
    (root / "web.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (root / "mixed.jsonl").write_text('{"text": "A math doc: $1+1=2$.", "domain": "math"}\n'
                                      '{"text": "", "domain": "math"}\n'
                                      '{"text": "Code: print(1)", "domain": "code"}\n')
    import pyarrow as pa
    pq.write_table(pa.table({"text": ["Knowledge one.", "Knowledge two."], "domain": ["knowledge"] * 2}),
                   root / "facts.parquet")
    (root / "notes").mkdir(exist_ok=True)
    (root / "notes" / "n1.txt").write_text("A plain text note.")
    return root


def _tree_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_ingest_writes_shards_index_stats_and_spec(tmp_path):
    src = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    spec = IngestSpec(inputs=[str(src / "*.jsonl"), str(src / "facts.parquet")], output=str(out),
                      on_error="skip", shard_bytes=2000)
    res = run_ingest(spec)
    assert res["rows_in"] == 45 and res["rows_out"] == 44 and res["skipped"] == {"empty_text": 1}
    idx = read_index(out)
    names = [e["path"] for e in idx["shards"]]
    assert names[0] == "facts-00000.parquet" and "mixed-00000.parquet" in names
    assert sum(n.startswith("web-") for n in names) > 1  # shard_bytes splits the big input
    assert idx["total_rows"] == 44 == sum(read_shard(out / n).num_rows for n in names)
    stats = json.loads((out / ".k2forge/stats.json").read_text())
    assert stats["skipped"] == {"empty_text": 1} and "mixed.jsonl:2" in stats["units"][1]["skip_examples"][0]
    saved = yaml.safe_load((out / ".k2forge/spec.yaml").read_text())
    assert saved["kind"] == "ingest" and parse_spec(IngestSpec, saved["spec"]) == spec
    assert all(str(out / n) in res["outputs"] for n in names)


def test_rerun_skips_finished_units_and_is_byte_identical(tmp_path, monkeypatch):
    src = _write_inputs(tmp_path / "in")
    spec = IngestSpec(inputs=[str(src), str(src / "notes")], output=str(tmp_path / "a"), on_error="skip",
                      default_domain="web")
    run_ingest(spec)
    first = _tree_bytes(tmp_path / "a")
    calls = []
    orig = ingest.IngestStage.process
    monkeypatch.setattr(ingest.IngestStage, "process", lambda self, u: calls.append(u) or orig(self, u))
    res = run_ingest(spec)
    assert calls == [] and res["units_cached"] == 4
    assert _tree_bytes(tmp_path / "a") == first
    # a fresh output directory gets the very same bytes (deterministic ids, names and parquet files)
    run_ingest(spec.model_copy(update={"output": str(tmp_path / "b")}))
    second = _tree_bytes(tmp_path / "b")
    assert {k: v for k, v in second.items() if k != ".k2forge/spec.yaml"} == \
        {k: v for k, v in first.items() if k != ".k2forge/spec.yaml"}
    # a deleted shard makes its unit run again
    (tmp_path / "a" / "facts-00000.parquet").unlink()
    calls.clear()
    res = run_ingest(spec)
    assert len(calls) == 1 and res["units_cached"] == 3 and _tree_bytes(tmp_path / "a") == first


def test_changed_input_is_redone_and_stale_shards_removed(tmp_path):
    src = _write_inputs(tmp_path / "in")
    spec = IngestSpec(inputs=[str(src / "web.jsonl")], output=str(tmp_path / "o"), shard_bytes=2000)
    assert run_ingest(spec)["shards"] > 2
    (src / "web.jsonl").write_text('{"text": "now short", "domain": "web"}\n')
    res = run_ingest(spec)
    assert res["units_cached"] == 0 and res["rows_out"] == 1
    assert sorted(p.name for p in (tmp_path / "o").glob("*.parquet")) == ["web-00000.parquet"]


def test_bad_record_mid_file_leaves_no_partial_output(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    lines = [json.dumps({"text": f"doc {i} " * 200, "domain": "web"}) for i in range(30)]
    lines[25] = '{"text": "broken", "domain": "web"'
    (src / "x.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "o"
    with pytest.raises(SchemaError, match=r"x\.jsonl:26: malformed JSON"):
        run_ingest(IngestSpec(inputs=[str(src / "x.jsonl")], output=str(out), shard_bytes=1000))
    # shards before the bad line were written in staging only: nothing of this input is visible
    assert sorted(p.name for p in out.iterdir()) == [".k2forge"]


def test_crash_while_writing_a_shard_leaves_no_partial_file(tmp_path, monkeypatch):
    src = _write_inputs(tmp_path / "in")
    out = tmp_path / "o"
    real = pq.write_table

    def write_then_fail(table, where, **kw):  # fault injection: half a file on disk, then an I/O error
        real(table, where, **kw)
        Path(where).write_bytes(Path(where).read_bytes()[:100])
        raise OSError("injected disk failure")

    monkeypatch.setattr("corpus.shards.pq.write_table", write_then_fail)
    with pytest.raises(OSError, match="injected"):
        run_ingest(IngestSpec(inputs=[str(src / "web.jsonl")], output=str(out)))
    assert [p.name for p in out.rglob("*") if p.is_file()] == ["spec.yaml"]
    monkeypatch.setattr("corpus.shards.pq.write_table", real)
    assert run_ingest(IngestSpec(inputs=[str(src / "web.jsonl")], output=str(out)))["rows_out"] == 40


def test_plan_units_ids_depend_on_content_not_location(tmp_path):
    a, b = _write_inputs(tmp_path / "a"), _write_inputs(tmp_path / "b")
    ua = plan_units(IngestSpec(inputs=[str(a / "*.jsonl")], output="x"))
    ub = plan_units(IngestSpec(inputs=[str(b / "*.jsonl")], output="x"))
    assert [u.id for u in ua] == [u.id for u in ub] and [u.params["rel"] for u in ua] == ["mixed.jsonl", "web.jsonl"]
    uc = plan_units(IngestSpec(inputs=[str(a / "*.jsonl")], output="x", text_field="body"))
    assert not {u.id for u in uc} & {u.id for u in ua}  # read options are part of the id
    # same file name in two directories: stems stay unique
    both = plan_units(IngestSpec(inputs=[str(a / "web.jsonl"), str(b / "web.jsonl")], output="x"))
    assert len(both) == 1  # identical content under the same name: the same unit, ingested once
    (b / "web.jsonl").write_text('{"text": "other", "domain": "web"}\n')
    both = plan_units(IngestSpec(inputs=[str(tmp_path / "*" / "web.jsonl")], output="x"))
    assert len({u.params["stem"] for u in both}) == 2


def test_missing_inputs_and_bad_spec_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl: no such file"):
        plan_units(IngestSpec(inputs=[str(tmp_path / "nope.jsonl")], output="x"))
    with pytest.raises(FileNotFoundError, match="no files match"):
        plan_units(IngestSpec(inputs=[str(tmp_path / "*.jsonl")], output="x"))
    with pytest.raises(SpecError, match="default_domain"):
        load_spec(IngestSpec, overrides={"inputs": ["a"], "output": "o", "default_domain": "poetry"})
    with pytest.raises(SpecError, match="shard_bytess"):
        load_spec(IngestSpec, overrides={"inputs": ["a"], "output": "o", "shard_bytess": 5})


def test_bundled_samples_ingest_cleanly_and_cover_the_brief(tmp_path):
    from corpus.samples import sample_files
    res = run_ingest(IngestSpec(inputs=[str(p) for p in sample_files()], output=str(tmp_path / "s")))
    assert res["rows_out"] == res["rows_in"] >= 40 and res["skipped"] == {}
    docs = [r for p in sorted((tmp_path / "s").glob("*.parquet")) for r in read_shard(p).to_pylist()]
    by = lambda key, val: [d for d in docs if d[key] == val]  # noqa: E731
    assert {d["domain"] for d in docs} == {"web", "code", "math", "knowledge"}
    math_docs = by("domain", "math")
    assert len({d["lang"] for d in math_docs} - {"en"}) >= 3
    assert any("\\begin{align}" in d["text"] for d in math_docs) and any("$$" in d["text"] for d in math_docs)
    long_knowledge = [d for d in by("domain", "knowledge") if 150 <= len(d["text"].split()) <= 400
                      and d["text"].count("\n\n") >= 2]
    assert len(long_knowledge) >= 5
    texts = [d["text"] for d in docs]
    assert len(texts) - len(set(texts)) == 1  # exactly one planted exact duplicate
    assert len({d["id"] for d in docs}) == len(docs)


def test_output_inside_an_input_directory_is_not_read_back(tmp_path):
    src = _write_inputs(tmp_path / "in")
    spec = IngestSpec(inputs=[str(src)], output=str(src / "out"), on_error="skip")
    first = run_ingest(spec)
    again = run_ingest(spec)  # out/*.parquet now sits under the input directory
    assert again["units_cached"] == again["inputs"] == first["inputs"] == 3
    assert again["rows_out"] == first["rows_out"]
