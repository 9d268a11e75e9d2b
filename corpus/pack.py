"""`corpus pack`: tokenize document shards into Megatron indexed token shards (see corpus.indexed).

One unit per input parquet shard `.../{stem}.parquet` -> in the output directory:
- `{stem}.bin` / `{stem}.idx`: MMIDIDX dataset, one sequence per document = its tokens (no special tokens added
  by the tokenizer) followed by the EOS id when `append_eos` (so EOS separates documents and every sequence
  length counts its EOS). Documents keep their order in the input shard.
- `{stem}.meta.json`: what the mixture and the trainer need without reading parquet again:
  ```
  {"input": str, "prefix": stem, "docs": int, "tokens": int (EOS included), "eos_tokens": int,
   "doc_ids": [id of sequence 0, 1, ...],
   "tokens_by": {"source"|"domain"|"task"|"style": {value: tokens}},  task is "raw" for raw rows
   "docs_by":   {same keys: {value: docs}},
   "raw": {"docs", "tokens"}, "synthetic": {"docs", "tokens"},   synthetic = the row has a parent_id
   "parents": {parent_id: number of synthetic docs from it in this shard}}
  ```
When two inputs share a stem (e.g. `raw/part-00000` and `synth/part-00000`), every stem becomes
`{parent dir}__{stem}`. The driver writes `.k2forge/index.json` (format "k2forge-packed/1"):
```
{"format", "layout": "megatron-mmidx", "tokenizer": {name, path, sha256, eos_id, eos_token, vocab_size},
 "dtype": "uint16"|"int32", "append_eos", "total_docs", "total_tokens",
 "tokens_by_source", "tokens_by_domain", "tokens_by_task", "raw": {...}, "synthetic": {...},
 "shards": [{"prefix", "input", "docs", "tokens", "bin_bytes", "bin_sha256", "idx_sha256",
             "tokens_by_domain", "tokens_by_source"}]}
```
and `.k2forge/spec.yaml` (corpus.layout). A rerun skips units whose done-marker exists; the unit id hashes the
input file's identity (path, size, mtime) and the tokenizer/EOS settings, so a changed input or tokenizer is
redone, not skipped.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from itertools import chain
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import Field

from corpus.events import Log, OnEvent, Progress
from corpus.executor import Stage, Unit, forget_stale
from corpus.fields import PathIn, PathOut
from corpus.indexed import IndexedWriter, optimal_dtype
from corpus.layout import SPEC, meta_path, prepare_output
from corpus.shards import INDEX_NAME, atomic_write_json, atomic_write_text, expand_inputs, file_sha256, read_shard
from corpus.spec import ExecutorSpec, Spec, save_spec
from corpus.tokenizer import load_tokenizer

log = logging.getLogger(__name__)
PACK_FORMAT = "k2forge-packed/1"
_BY_KEYS = ("source", "domain", "task", "style")


class PackSpec(Spec):
    inputs: list[PathIn] = Field(..., min_length=1, description="document shard dirs, globs or parquet files")
    output: PathOut = Field(..., description="output directory for {stem}.bin/.idx/.meta.json and "
                                             ".k2forge/index.json")
    tokenizer: PathIn | None = Field(None, description="tokenizer.json or HF model dir; none = embedded SmolLM2")
    eos_token: str | None = Field(None, description="document separator token; none = <|endoftext|> when the "
                                  "vocabulary has it, else the tokenizer_config eos_token")
    append_eos: bool = Field(True, description="append the EOS id after every document")
    batch_size: int = Field(1024, ge=1, description="documents per encode_batch call")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)


def flatten(ids: Sequence[Sequence[int]], eos_id: int | None, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(flat tokens, per-document lengths) for a batch of id lists, with `eos_id` after each when not None.

    No per-document numpy calls: one fromiter over the chained lists, EOS slots filled by a mask.
    """
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    n_tok = int(lengths.sum())
    body = np.fromiter(chain.from_iterable(ids), dtype=dtype, count=n_tok)
    if eos_id is None:
        return body, lengths
    lengths += 1
    out = np.empty(n_tok + len(ids), dtype=dtype)
    ends = np.cumsum(lengths) - 1
    keep = np.ones(out.size, dtype=bool)
    keep[ends] = False
    out[keep] = body
    out[ends] = eos_id
    return out, lengths


class PackStage(Stage):
    """Tokenize one document shard into `{prefix}.bin/.idx/.meta.json`."""
    name = "pack"

    def __init__(self, tokenizer: str | None, eos_token: str | None, append_eos: bool, batch_size: int,
                 dtype: str):
        self.tokenizer, self.eos_token = tokenizer, eos_token
        self.append_eos, self.batch_size, self.dtype = append_eos, batch_size, np.dtype(dtype)
        self._tok = None

    def __getstate__(self):
        # the loaded tokenizer is rebuilt in each worker by setup(), not shipped
        return {**self.__dict__, "_tok": None}

    def setup(self) -> None:
        if self._tok is None:
            self._tok = load_tokenizer(self.tokenizer, self.eos_token)

    def process(self, unit: Unit) -> dict[str, Any]:
        self.setup()
        tok = self._tok
        table = read_shard(unit.inputs[0])
        texts = table.column("text").to_pylist()
        eos = tok.eos_id if self.append_eos else None
        prefix = Path(unit.output)
        parts = []
        with IndexedWriter(prefix, self.dtype) as w:
            for s in range(0, len(texts), self.batch_size):
                flat, lengths = flatten(tok.encode_batch(texts[s:s + self.batch_size]), eos, self.dtype)
                w.add(flat, lengths)
                parts.append(lengths)
        lengths = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        meta = shard_meta(table, lengths, unit.inputs[0], prefix.name, eos is not None)
        # compact (no indent): doc_ids dominate its size
        atomic_write_text(f"{prefix}.meta.json", json.dumps(meta, sort_keys=True, separators=(",", ":")))
        bp, ip = Path(f"{prefix}.bin"), Path(f"{prefix}.idx")
        return {"prefix": prefix.name, "input": unit.inputs[0], "docs": meta["docs"], "tokens": meta["tokens"],
                "bin_bytes": bp.stat().st_size, "bin_sha256": file_sha256(bp), "idx_sha256": file_sha256(ip),
                "tokens_by_domain": meta["tokens_by"]["domain"], "tokens_by_source": meta["tokens_by"]["source"],
                "tokens_by_task": meta["tokens_by"]["task"], "raw": meta["raw"], "synthetic": meta["synthetic"]}


def _sum_by(column, lengths: np.ndarray, fill: str) -> tuple[dict[str, int], dict[str, int]]:
    """(tokens per value, docs per value) of a string column, via dictionary encoding + bincount."""
    import pyarrow.compute as pc
    enc = pc.fill_null(column, fill).combine_chunks().dictionary_encode()
    codes = enc.indices.to_numpy(zero_copy_only=False)
    values = enc.dictionary.to_pylist()
    tok = np.bincount(codes, weights=lengths, minlength=len(values)) if len(codes) else np.zeros(len(values))
    docs = np.bincount(codes, minlength=len(values))
    return ({v: int(t) for v, t in zip(values, tok)}, {v: int(d) for v, d in zip(values, docs)})


def shard_meta(table, lengths: np.ndarray, src: str, prefix: str, eos: bool) -> dict[str, Any]:
    """The `{stem}.meta.json` record (see module docstring)."""
    import pyarrow as pa
    n = table.num_rows
    names = table.schema.names
    synth = (np.asarray(table.column("parent_id").is_valid().to_numpy(zero_copy_only=False), dtype=bool)
             if "parent_id" in names else np.zeros(n, dtype=bool))
    tokens_by, docs_by = {}, {}
    for key in _BY_KEYS:
        col = table.column(key) if key in names else pa.chunked_array([pa.nulls(n, pa.string())])
        tokens_by[key], docs_by[key] = _sum_by(col, lengths, "raw" if key == "task" else "")
    parents: dict[str, int] = {}
    if synth.any():
        pids = table.column("parent_id").to_pylist()
        parents = dict(sorted(Counter(p for p in pids if p is not None).items()))
    return {"input": str(src), "prefix": prefix, "docs": n, "tokens": int(lengths.sum()),
            "eos_tokens": n if eos else 0, "doc_ids": table.column("id").to_pylist(),
            "tokens_by": tokens_by, "docs_by": docs_by,
            "raw": {"docs": int((~synth).sum()), "tokens": int(lengths[~synth].sum())},
            "synthetic": {"docs": int(synth.sum()), "tokens": int(lengths[synth].sum())},
            "parents": parents}


def output_stems(inputs: list[Path]) -> list[str]:
    """Output prefix names for inputs; `{parent}__{stem}` for all when plain stems collide."""
    stems = [p.stem for p in inputs]
    if len(set(stems)) == len(stems):
        return stems
    stems = [f"{p.parent.name}__{p.stem}" for p in inputs]
    dup = [s for s, c in Counter(stems).items() if c > 1]
    if dup:
        clash = [str(p) for p, s in zip(inputs, stems) if s in dup]
        raise ValueError(f"pack: inputs {clash} would write the same output prefix {dup[0]!r}; rename them")
    return stems


def _unit_id(stem: str, src: Path, tok_info: dict, spec: PackSpec) -> str:
    st = src.stat()
    key = f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}|{tok_info['sha256']}|{tok_info['eos_id']}|" \
          f"{spec.append_eos}"
    return f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _drop_stale_markers(units: list[Unit], out: Path) -> None:
    """Forget finished units whose outputs were deleted or altered since, so the executor redoes them."""
    def stale(u: Unit, stats: dict) -> bool:
        files = [Path(f"{u.output}{e}") for e in (".bin", ".idx", ".meta.json")]
        if all(f.exists() for f in files) and files[0].stat().st_size == stats["bin_bytes"]:
            return False
        log.warning("pack: %s: outputs missing or changed since it finished; redoing it", u.output)
        return True
    forget_stale(out, PackStage.name, units, stale)


def _merge(dicts: list[dict[str, int]]) -> dict[str, int]:
    total: Counter = Counter()
    for d in dicts:
        total.update(d)
    return dict(sorted(total.items()))


def run_pack(spec: PackSpec, on_event: OnEvent | None = None) -> dict[str, Any]:
    """Tokenize every input shard (skipping finished ones), then write the index and the spec (.k2forge/)."""
    emit = on_event or (lambda e: None)
    out = Path(spec.output)
    inputs = [p for p in expand_inputs(spec.inputs) if p.suffix == ".parquet"]
    if not inputs:
        raise FileNotFoundError(f"pack: inputs {spec.inputs} match no .parquet shards")
    tok = load_tokenizer(spec.tokenizer, spec.eos_token)
    info = tok.info()
    dtype = optimal_dtype(tok.vocab_size)
    stems = output_stems(inputs)
    units = [Unit(_unit_id(s, p, info, spec), (str(p),), str(out / s)) for s, p in zip(stems, inputs)]
    prepare_output(out)
    save_spec(spec, meta_path(out, SPEC), "pack")
    emit(Log(f"pack: {len(units)} shard(s) with tokenizer {tok.name} ({dtype})"))
    stage = PackStage(spec.tokenizer, spec.eos_token, spec.append_eos, spec.batch_size, dtype.name)
    _drop_stale_markers(units, out)
    stats = spec.executor.build().run(stage, units, out, desc="pack", on_event=on_event)
    index = {"format": PACK_FORMAT, "layout": "megatron-mmidx", "tokenizer": info, "dtype": dtype.name,
             "append_eos": spec.append_eos, "total_docs": sum(s["docs"] for s in stats),
             "total_tokens": sum(s["tokens"] for s in stats),
             "tokens_by_source": _merge([s["tokens_by_source"] for s in stats]),
             "tokens_by_domain": _merge([s["tokens_by_domain"] for s in stats]),
             "tokens_by_task": _merge([s["tokens_by_task"] for s in stats]),
             "raw": _merge([s["raw"] for s in stats]), "synthetic": _merge([s["synthetic"] for s in stats]),
             "shards": [{k: s[k] for k in ("prefix", "input", "docs", "tokens", "bin_bytes", "bin_sha256",
                                           "idx_sha256", "tokens_by_domain", "tokens_by_source")}
                        for s in sorted(stats, key=lambda s: s["prefix"])]}
    atomic_write_json(out / INDEX_NAME, index)
    emit(Progress(len(units), len(units)))
    outputs = [str(out / INDEX_NAME)] + [str(out / f"{s}{ext}") for s in stems
                                         for ext in (".bin", ".idx", ".meta.json")]
    return {"outputs": outputs, "shards": len(units), "total_docs": index["total_docs"],
            "total_tokens": index["total_tokens"], "tokenizer": tok.name, "dtype": dtype.name}
