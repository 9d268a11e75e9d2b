"""Readers: every input format, field mapping, and every bad-input case (error naming file+line+field, or a
counted skip)."""
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.readers import FieldMap, ReadOptions, SkipCounter, detect_format, read_docs
from corpus.schema import SchemaError, doc_id


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _read(path, fmt, **kw):
    skips = SkipCounter()
    docs = list(read_docs(path, fmt, ReadOptions(**kw), skips))
    return docs, skips


def test_jsonl_plain_and_gz_with_defaults(tmp_path):
    rows = [{"id": "a", "text": "Alpha text.", "domain": "web", "source": "s1", "lang": "en", "meta": {"u": 1}},
            {"text": "Beta text.", "domain": "math"}]
    plain = _jsonl(tmp_path / "d.jsonl", rows + [""])  # a blank line is not a record
    gz = tmp_path / "d.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    for p in (plain, gz):
        assert detect_format(p) == "jsonl"
        docs, skips = _read(p, "jsonl", fields=FieldMap(default_source="crawl", default_lang="fr"))
        assert skips.total == 0
        assert docs[0] == {"id": "a", "text": "Alpha text.", "domain": "web", "source": "s1", "lang": "en",
                           "meta": '{"u": 1}'}
        assert docs[1]["id"] == doc_id("Beta text.") and docs[1]["source"] == "crawl" and docs[1]["lang"] == "fr"


def test_field_mapping_nested_and_default_domain(tmp_path):
    p = _jsonl(tmp_path / "m.jsonl", [{"uid": 7, "payload": {"body": "Mapped body."}, "origin": "forum"}])
    fm = FieldMap(text="payload.body", id="uid", source="origin", default_domain="knowledge")
    docs, _ = _read(p, "jsonl", fields=fm)
    assert docs == [{"id": "7", "text": "Mapped body.", "domain": "knowledge", "source": "forum", "lang": "",
                     "meta": "{}"}]


def test_parquet_rows(tmp_path):
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"body": ["one", "two", "three"], "domain": ["web", "code", "web"]}), p)
    assert detect_format(p) == "parquet"
    docs, _ = _read(p, "parquet", fields=FieldMap(text="body"))
    assert [d["text"] for d in docs] == ["one", "two", "three"] and docs[1]["domain"] == "code"
    pq.write_table(pa.table({"body": ["ok", "  "], "domain": ["web", "web"]}), p)
    with pytest.raises(SchemaError, match=r"t\.parquet:row 2: field 'body' is empty"):
        _read(p, "parquet", fields=FieldMap(text="body"))


def test_text_directory_one_doc_per_file(tmp_path):
    d = tmp_path / "notes"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("First note.")
    (d / "sub" / "b.md").write_text("# Second\n\nnote")
    (d / "skip.bin").write_bytes(b"\x00\x01")
    (d / ".hidden.txt").write_text("not read")
    assert detect_format(d) == "text"
    docs, _ = _read(d, "text", fields=FieldMap(default_domain="web"))
    assert [(x["source"], x["text"]) for x in docs] == [("a.txt", "First note."), ("sub/b.md", "# Second\n\nnote")]
    with pytest.raises(SchemaError, match="pass a default domain"):
        _read(d, "text")


def test_hf_saved_dataset_and_dataset_dict(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    ds = datasets.Dataset.from_dict({"content": ["Doc A.", "Doc B."], "domain": ["code", "code"]})
    ds.save_to_disk(str(tmp_path / "ds"))
    assert detect_format(tmp_path / "ds") == "hf"
    docs, _ = _read(tmp_path / "ds", "hf", fields=FieldMap(text="content"))
    assert [d["text"] for d in docs] == ["Doc A.", "Doc B."]
    dd = datasets.DatasetDict({"train": ds, "test": datasets.Dataset.from_dict({"content": [""], "domain": ["code"]})})
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(SchemaError, match=r"dd\[test\]:row 1: field 'content' is empty"):
        _read(tmp_path / "dd", "hf", fields=FieldMap(text="content"))


BAD_CASES = [  # (line content, reason, message pattern)
    ('{"text": "x", "domain": "web"', "malformed_json", r"bad\.jsonl:2: malformed JSON"),
    ('[1, 2]', "not_an_object", r"bad\.jsonl:2: expected a JSON object"),
    ('{"domain": "web"}', "missing_text", r"bad\.jsonl:2: missing field 'text'"),
    ('{"text": 5, "domain": "web"}', "bad_text_type", r"bad\.jsonl:2: field 'text' must be a string"),
    ('{"text": " \\n\\t", "domain": "web"}', "empty_text", r"bad\.jsonl:2: field 'text' is empty"),
    ('{"text": "x"}', "missing_domain", r"bad\.jsonl:2: missing field 'domain'"),
    ('{"text": "x", "domain": "poetry"}', "unknown_domain", r"bad\.jsonl:2: field 'domain' is 'poetry'"),
    ('{"text": "x", "domain": "web", "meta": "{oops"}', "invalid_meta", r"bad\.jsonl:2: field 'meta' is not valid"),
    ('{"text": "a \\ud800 b", "domain": "web"}', "not_utf8", r"bad\.jsonl:2: field 'text' is not valid Unicode"),
]


@pytest.mark.parametrize("line,reason,pattern", BAD_CASES, ids=[c[1] for c in BAD_CASES])
def test_bad_record_errors_or_is_counted(tmp_path, line, reason, pattern):
    p = _jsonl(tmp_path / "bad.jsonl", ['{"text": "good", "domain": "web"}', line, '{"text": "also", "domain": "code"}'])
    with pytest.raises(SchemaError, match=pattern):
        _read(p, "jsonl")
    docs, skips = _read(p, "jsonl", on_error="skip")
    assert [d["text"] for d in docs] == ["good", "also"]
    assert dict(skips.reasons) == {reason: 1} and "bad.jsonl:2" in skips.examples[0]


def test_non_utf8_bytes_name_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"text": "fine", "domain": "web"}\n{"text": "caf\xe9", "domain": "web"}\n')
    with pytest.raises(SchemaError, match=r"bad\.jsonl:2: not valid UTF-8"):
        _read(p, "jsonl")
    docs, skips = _read(p, "jsonl", on_error="skip")
    assert len(docs) == 1 and dict(skips.reasons) == {"not_utf8": 1}
    d = tmp_path / "txt"
    d.mkdir()
    (d / "x.txt").write_bytes(b"line one\nline \xff two\n")
    with pytest.raises(SchemaError, match=r"txt/x\.txt:2: not valid UTF-8"):
        _read(d, "text", fields=FieldMap(default_domain="web"))


def test_corrupt_gzip_and_parquet_are_clear_errors(tmp_path):
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"text": "a", "domain": "web"}\n' * 100)[:40])
    with pytest.raises(SchemaError, match=r"c\.jsonl\.gz:\d+: cannot read compressed data"):
        _read(gz, "jsonl", on_error="skip")  # a broken file is not a skippable record
    pqf = tmp_path / "c.parquet"
    pqf.write_bytes(b"PAR1 not really")
    with pytest.raises(SchemaError, match=r"c\.parquet: not a readable parquet file"):
        _read(pqf, "parquet")


def test_large_document_streams_and_limit_refuses(tmp_path):
    big = "lorem ipsum " * (50 * 1024 * 1024 // 12)  # ~50 MB in one JSONL line
    p = tmp_path / "big.jsonl"
    with open(p, "w") as f:
        f.write(json.dumps({"text": big, "domain": "web"}) + "\n")
        f.write(json.dumps({"text": "after", "domain": "web"}) + "\n")
    docs, _ = _read(p, "jsonl")
    assert len(docs) == 2 and len(docs[0]["text"]) == len(big) and docs[1]["text"] == "after"
    del docs
    with pytest.raises(SchemaError, match=r"big\.jsonl:1: line is larger than max_doc_bytes=1048576"):
        _read(p, "jsonl", max_doc_bytes=1 << 20)
    docs, skips = _read(p, "jsonl", max_doc_bytes=1 << 20, on_error="skip")
    assert [d["text"] for d in docs] == ["after"] and dict(skips.reasons) == {"too_large": 1}


def test_unknown_format_is_named(tmp_path):
    p = tmp_path / "data.csv"
    p.write_text("a,b\n")
    with pytest.raises(SchemaError, match=r"data\.csv: cannot tell the input format"):
        detect_format(p)
