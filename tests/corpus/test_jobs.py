"""corpus.jobs: the Python front door on in-memory data (lists of dicts, pyarrow, pandas, datasets) and paths."""
import pyarrow as pa
import pytest

from corpus import jobs
from corpus.schema import SchemaError

DOCS = [{"text": f"Fact {i % 6}: the river floods every spring and the town moves uphill.", "domain": "knowledge",
         "source": "notes"} for i in range(12)]


def test_ingest_rows_then_dedup_the_result_and_read_it_back(tmp_path):
    raw = jobs.ingest([{"body": d["text"], "kind": d["domain"]} for d in DOCS], output=str(tmp_path / "raw"),
                      text_field="body", domain_field="kind")
    assert raw.summary["rows_out"] == 12 and raw.table().num_rows == 12
    kept = jobs.dedup(raw, output=str(tmp_path / "dedup"))          # a result is the next job's input
    assert kept.table().num_rows == kept.summary["docs_out"] == 6
    assert sorted(kept.dataset()["text"]) == sorted(set(d["text"] for d in DOCS))
    again = jobs.ingest([{"body": d["text"], "kind": d["domain"]} for d in DOCS], output=str(tmp_path / "raw"),
                        text_field="body", domain_field="kind")
    assert again.summary["units_cached"] == 1                       # same data -> same staged input -> resumed
    assert len(list((tmp_path / ".raw.inputs").iterdir())) == 1      # written once, beside (not in) the output


@pytest.mark.parametrize("kind", ["table", "pandas", "dataset"])
def test_documents_from_pyarrow_pandas_and_datasets(tmp_path, kind):
    table = pa.Table.from_pylist(DOCS)
    data = {"table": lambda: table, "pandas": table.to_pandas,
            "dataset": lambda: pytest.importorskip("datasets").Dataset.from_list(DOCS).shuffle(seed=0)}[kind]()
    kept = jobs.dedup(data, output=str(tmp_path / "dedup"))
    out = kept.table()
    assert out.num_rows == 6 and set(out.column("source").to_pylist()) == {"notes"}
    assert all(len(i) == 24 for i in out.column("id").to_pylist())   # ids filled in from the text


def test_bad_rows_and_types_name_what_is_wrong(tmp_path):
    with pytest.raises(SchemaError, match="inputs row 1: field 'domain' is 'poetry'"):
        jobs.dedup([DOCS[0], {**DOCS[1], "domain": "poetry"}], output=str(tmp_path / "d"))
    with pytest.raises(TypeError, match="inputs: expected paths, a JobResult, a list of dicts"):
        jobs.dedup(42, output=str(tmp_path / "d"))
    with pytest.raises(ValueError, match="output= is required"):
        jobs.dedup(DOCS)
