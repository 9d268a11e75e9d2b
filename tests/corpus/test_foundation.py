"""Schema validation, atomic shard writes, the shard index and the local executor's skip-finished behaviour."""
import json

import pyarrow as pa
import pytest

from corpus.executor import LocalExecutor, Stage, Unit
from corpus.schema import SchemaError, normalize_doc, table_from_docs, validate_table
from corpus.shards import read_index, read_shard, write_index, write_shards


def test_normalize_doc_errors_name_the_field():
    with pytest.raises(SchemaError, match=r"f.jsonl:3: missing field 'text'"):
        normalize_doc({"domain": "web"}, "f.jsonl:3")
    with pytest.raises(SchemaError, match="empty or whitespace-only"):
        normalize_doc({"text": "  \n", "domain": "web"}, "x")
    with pytest.raises(SchemaError, match="'domain' is 'poetry'"):
        normalize_doc({"text": "hi", "domain": "poetry"}, "x")
    d = normalize_doc({"text": "hi", "domain": "web", "meta": {"b": 1}}, "x")
    assert d["id"] and d["meta"] == '{"b": 1}'
    assert normalize_doc({"text": "hi", "domain": "web"}, "x")["id"] == d["id"]  # stable content hash


def test_validate_table_rejects_unknown_domain():
    t = table_from_docs([normalize_doc({"text": "a", "domain": "web"}, "x")])
    t = t.set_column(2, "domain", pa.array(["poetry"]))
    with pytest.raises(SchemaError, match="unknown domain"):
        validate_table(t, "s.parquet")


def test_write_shards_index_and_roundtrip(tmp_out):
    docs = [normalize_doc({"text": f"doc {i} " * 50, "domain": "web"}, "x") for i in range(20)]
    entries = write_shards(tmp_out, "part", table_from_docs(docs), target_bytes=1000)
    assert len(entries) > 1 and [e["path"] for e in entries] == sorted(e["path"] for e in entries)
    write_index(tmp_out, entries)
    idx = read_index(tmp_out)
    assert idx["total_rows"] == 20
    back = [r for e in idx["shards"] for r in read_shard(tmp_out / e["path"]).to_pylist()]
    assert [r["id"] for r in back] == [d["id"] for d in docs]
    assert not list(tmp_out.glob(".*.tmp"))


class _Upper(Stage):
    name = "upper"

    def __init__(self):
        self.calls = 0

    def process(self, unit):
        self.calls += 1
        text = open(unit.inputs[0]).read().upper()
        with open(unit.output, "w") as f:
            f.write(text)
        return {"chars": len(text)}


def test_local_executor_skips_finished_units(tmp_out):
    units = []
    for i in range(3):
        p = tmp_out / f"in{i}.txt"
        p.write_text(f"unit {i}")
        units.append(Unit(id=f"u{i}", inputs=(str(p),), output=str(tmp_out / f"out{i}.txt")))
    st = _Upper()
    stats = LocalExecutor().run(st, units, tmp_out)
    assert [s["chars"] for s in stats] == [6, 6, 6] and st.calls == 3
    st2 = _Upper()
    assert LocalExecutor().run(st2, units, tmp_out) == stats and st2.calls == 0
    assert json.loads((tmp_out / ".k2forge/done/upper/u1.json").read_text()) == {"chars": 6}
