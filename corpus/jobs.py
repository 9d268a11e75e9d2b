"""The Python front door (notebooks, scripts): every job kind as a function on paths OR in-memory data.

    from corpus import jobs
    raw = jobs.ingest([{"text": "Water boils at 100 C at sea level.", "domain": "knowledge"}], output="w/raw")
    kept = jobs.dedup(raw, output="w/dedup")                   # a result is an input of the next job
    synth = jobs.rephrase(kept, output="w/synth", variants=2)
    synth.table().to_pandas(), synth.rejects(), synth.dataset()   # pyarrow / pandas / datasets.Dataset

`inputs` may be a path, a glob, a list of those, a JobResult, a list of dicts, a pyarrow Table, a pandas
DataFrame or a `datasets.Dataset`. In-memory data is written once as a parquet file named by its content hash in
a hidden folder beside the output (`.{output name}.inputs/`), so a rerun of the same call finds the same input
and resumes like any other run. For ingest the rows may have any columns (its field maps apply); for the other
jobs they must be documents (corpus.schema: text, domain, ...; ids are filled in). Everything else is the job's
spec, as keyword fields (`variants=2`, `engine={"kind": "openai", ...}`, `spec={...}` for a whole mapping): the
same validation, defaults and errors as the CLI and the REST API, and the same run functions.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from corpus.spec import JOB_KINDS, job_kind, parse_spec

__all__ = ["JobResult", "run"] + sorted(JOB_KINDS)


@dataclass
class JobResult:
    """What a job returned (`summary`) and where its output is; usable as a path (os.fspath) and as `inputs`."""
    kind: str
    output: Path
    summary: dict[str, Any] = field(repr=False)

    def __fspath__(self) -> str:
        return str(self.output)

    def shards(self) -> list[Path]:
        from corpus.shards import expand_inputs
        return expand_inputs(self.output) if self.output.is_dir() else []

    def table(self) -> pa.Table:
        """The output's documents as one pyarrow Table (`.to_pandas()` for a DataFrame)."""
        from corpus.shards import read_shard
        shards = self.shards()
        if not shards:
            raise ValueError(f"{self.kind} output {self.output}: no document shards")
        return pa.concat_tables([read_shard(p) for p in shards], promote_options="default")

    def rejects(self) -> pa.Table | None:
        """Rejected variants with their reasons (rephrase, mathnotes), else None."""
        from corpus.layout import REJECTS, find_meta
        files = sorted(find_meta(self.output, REJECTS).glob("*.parquet"))
        return pa.concat_tables([pq.read_table(p) for p in files]) if files else None

    def dataset(self):
        """The output as a Hugging Face `datasets.Dataset` (needs the hf extra; an empty output has none)."""
        import datasets
        if not any(pq.ParquetFile(p).metadata.num_rows for p in self.shards()):
            raise ValueError(f"{self.kind} output {self.output}: no rows (datasets cannot hold an empty dataset)")
        return datasets.load_dataset("parquet", data_dir=str(self.output), split="train")


def run(kind: str, inputs: Any = None, *, spec: dict[str, Any] | None = None,
        on_event: Callable[[dict], None] | None = None, **fields: Any) -> JobResult:
    """Validate the job's spec from `spec` + `fields` (+ `inputs`, turned into paths) and run it."""
    spec_cls, fn = job_kind(kind)
    data = {**(spec or {}), **fields}
    if inputs is not None:
        if "output" not in data:
            raise ValueError(f"{kind}: output= is required")
        data["inputs"] = input_paths(inputs, Path(data["output"]), documents=kind != "ingest")
    parsed = parse_spec(spec_cls, data, where=f"{kind} (python)")
    summary = fn(parsed, on_event)
    return JobResult(kind, Path(getattr(parsed, "output")), summary)


def input_paths(inputs: Any, output: Path, documents: bool = True) -> list[str]:
    """Paths for `inputs`: paths and results as they are, in-memory data written beside `output`."""
    items = inputs if isinstance(inputs, (list, tuple)) and not _is_rows(inputs) else [inputs]
    paths: list[str] = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            paths.append(os.fspath(item))
        else:
            paths.append(str(_stage_table(_as_table(item, documents), output)))
    return paths


def _is_rows(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(r, dict) for r in x)


def _as_table(data: Any, documents: bool) -> pa.Table:
    if isinstance(data, pa.Table):
        table = data
    elif _is_rows(data):
        table = None if documents else pa.Table.from_pylist(list(data))
        rows = list(data)
    elif type(data).__module__.startswith("datasets") and hasattr(data, "flatten_indices"):
        table = data.flatten_indices().data.table       # a datasets.Dataset (after select/shuffle too)
    elif type(data).__module__.startswith("pandas"):
        table = pa.Table.from_pandas(data, preserve_index=False)
    else:
        raise TypeError(f"inputs: expected paths, a JobResult, a list of dicts, a pyarrow Table, a pandas "
                        f"DataFrame or a datasets.Dataset, got {type(data).__name__}")
    if not documents:
        return table
    from corpus.schema import is_synthetic, normalize_doc, table_from_docs
    if table is not None:
        rows = table.to_pylist()
    synthetic = any("parent_id" in r for r in rows[:1]) or (table is not None and is_synthetic(table.schema))
    return table_from_docs([normalize_doc(r, f"inputs row {i}", synthetic=synthetic) for i, r in enumerate(rows)],
                           synthetic=synthetic)


def _stage_table(table: pa.Table, output: Path) -> Path:
    """Write `table` once under a name from its content, in `.{output name}.inputs/` beside the output (not in
    it: a job refuses inputs inside its own output)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    digest = hashlib.blake2b(sink.getvalue().to_pybytes(), digest_size=8).hexdigest()
    path = output.parent / f".{output.name}.inputs" / f"input-{digest}.parquet"
    if not path.exists():
        from corpus.shards import write_table
        write_table(path, table)
    return path


def _job_function(kind: str) -> Callable[..., JobResult]:
    @functools.wraps(run)
    def job(inputs: Any = None, **fields: Any) -> JobResult:
        return run(kind, inputs, **fields)
    job.__name__ = job.__qualname__ = kind
    job.__doc__ = f"Run a {kind} job: `jobs.{kind}(inputs, output=..., **spec fields)` (see corpus.jobs.run)."
    return job


for _kind in JOB_KINDS:
    globals()[_kind] = _job_function(_kind)
