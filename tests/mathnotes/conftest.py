"""Fixtures of the mathnotes tests: sample math documents written as input shards."""
from __future__ import annotations

import json

import pytest

from corpus.samples import SAMPLES_DIR
from corpus.schema import normalize_doc, table_from_docs
from corpus.shards import write_table


def sample_docs(domain: str = "math") -> dict[str, dict]:
    path = SAMPLES_DIR / f"{domain}.jsonl"
    docs = [normalize_doc(json.loads(line), f"{path}:{i}") for i, line in
            enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    return {d["id"]: d for d in docs}


@pytest.fixture
def write_input(tmp_path):
    """write_input([doc ids...]) -> the input directory holding one shard of those sample documents."""
    def make(ids: list[str], name: str = "in"):
        pool = {**sample_docs("math"), **sample_docs("web")}
        write_table(tmp_path / name / "docs-00000.parquet", table_from_docs([pool[i] for i in ids]))
        return tmp_path / name
    return make
