"""Readers: raw documents from JSONL (plain or .gz), parquet, text/markdown directories and HF `datasets` dirs.

Every record becomes one schema document (corpus.schema.normalize_doc) with a `where` such as `data.jsonl:12` or
`data.parquet:row 7`, so an error names the file and the line or row and the field. With `on_error="skip"` a bad
record is counted under a reason (`SkipCounter`) instead; the reasons end up in the ingest stats.

Streaming matters: a JSONL line is read with a byte limit (`max_doc_bytes`) so a 50 MB document costs one linear
read, and an oversized one is refused (or skipped) without holding it in memory.
"""
from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from corpus.schema import DOMAINS, SchemaError, normalize_doc

FORMATS = ("jsonl", "parquet", "text", "hf")
TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json", ".json.gz")
HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
DEFAULT_MAX_DOC_BYTES = 64 << 20
_SKIP_EXAMPLES = 5


@dataclass(frozen=True)
class FieldMap:
    """Which input field holds each schema field (dotted names reach into nested objects), plus defaults."""
    text: str = "text"
    id: str = "id"
    domain: str = "domain"
    source: str = "source"
    lang: str = "lang"
    meta: str = "meta"
    default_domain: str | None = None
    default_source: str = ""
    default_lang: str = ""


@dataclass
class SkipCounter:
    """Counts skipped records by reason and keeps the first few messages so a user can find them."""
    reasons: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, reason: str, message: str) -> None:
        self.reasons[reason] += 1
        if len(self.examples) < _SKIP_EXAMPLES:
            self.examples.append(message)

    @property
    def total(self) -> int:
        return sum(self.reasons.values())


class BadRecord(SchemaError):
    """A SchemaError that also carries a short machine-readable reason for the skip statistics."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # travels back from worker processes and Ray actors intact
        return (type(self), (str(self), self.reason))


@dataclass
class ReadOptions:
    fields: FieldMap = field(default_factory=FieldMap)
    on_error: Literal["error", "skip"] = "error"
    max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES


# --------------------------------------------------------------------------------------------- format detection

def is_hf_dataset_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in HF_MARKERS)


def detect_format(path: Path) -> str:
    """Format of one input (a file or a directory) from its name or contents."""
    name = path.name.lower()
    if path.is_dir():
        return "hf" if is_hf_dataset_dir(path) else "text"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(TEXT_SUFFIXES):
        return "text"
    raise SchemaError(f"{path}: cannot tell the input format from the name; pass --format "
                      f"({'|'.join(FORMATS)})")


# --------------------------------------------------------------------------------------------- record mapping

def _get(record: dict[str, Any], dotted: str) -> Any:
    cur: Any = record
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def map_record(record: Any, where: str, fm: FieldMap, max_doc_bytes: int) -> dict[str, Any]:
    """Map one input record to a schema document; raise BadRecord naming `where` and the input field."""
    if not isinstance(record, dict):
        raise BadRecord(f"{where}: expected a JSON object, got {type(record).__name__}", "not_an_object")
    text = _get(record, fm.text)
    if text is None:
        raise BadRecord(f"{where}: missing field {fm.text!r}", "missing_text")
    if not isinstance(text, str):
        raise BadRecord(f"{where}: field {fm.text!r} must be a string, got {type(text).__name__}", "bad_text_type")
    if not text.strip():
        raise BadRecord(f"{where}: field {fm.text!r} is empty or whitespace-only", "empty_text")
    if len(text) > max_doc_bytes or _utf8_len(text, where, fm.text) > max_doc_bytes:
        raise BadRecord(f"{where}: field {fm.text!r} is larger than max_doc_bytes={max_doc_bytes}", "too_large")
    domain = _get(record, fm.domain) or fm.default_domain
    if domain is None:
        raise BadRecord(f"{where}: missing field {fm.domain!r} (one of {', '.join(DOMAINS)}; or pass a default "
                        f"domain)", "missing_domain")
    if domain not in DOMAINS:
        raise BadRecord(f"{where}: field {fm.domain!r} is {domain!r}, expected one of {', '.join(DOMAINS)}",
                        "unknown_domain")
    raw = {"text": text, "domain": domain, "id": _get(record, fm.id),
           "source": _get(record, fm.source) or fm.default_source,
           "lang": _get(record, fm.lang) or fm.default_lang, "meta": _get(record, fm.meta)}
    try:
        doc = normalize_doc(raw, where)
    except SchemaError as e:
        raise BadRecord(str(e), "invalid_meta" if "'meta'" in str(e) else "invalid") from None
    for key in ("id", "source", "lang", "meta"):
        _utf8_len(doc[key], where, key)
    return doc


def _utf8_len(s: str, where: str, field_name: str) -> int:
    """UTF-8 length; JSON escapes can smuggle in lone surrogates, which no UTF-8 file (or Arrow) can hold."""
    try:
        return len(s.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise BadRecord(f"{where}: field {field_name!r} is not valid Unicode (lone surrogate "
                        f"{s[e.start]!r} at character {e.start})", "not_utf8") from None


# --------------------------------------------------------------------------------------------- per-format readers

RawIter = Iterator[tuple[str, Callable[[], Any]]]


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _read_line(f, limit: int) -> tuple[bytes, bool]:
    """One line of at most `limit` bytes; if longer, drain the rest in blocks and report it as too long."""
    line = f.readline(limit + 1)
    if len(line) <= limit or line.endswith(b"\n"):
        return line, False
    while True:  # drain without keeping it: memory stays bounded whatever the line length
        rest = f.readline(1 << 20)
        if not rest or rest.endswith(b"\n"):
            return b"", True


def iter_jsonl(path: Path, label: str, max_doc_bytes: int) -> RawIter:
    """(where, thunk) per non-blank line; the thunk decodes and parses, raising BadRecord on bad bytes/JSON."""
    # The line may carry JSON escapes and other fields besides the text: allow some headroom over the text limit.
    limit = max_doc_bytes + max(1 << 16, max_doc_bytes // 4)
    with _open_bytes(path) as f:
        lineno = 0
        while True:
            lineno += 1
            where = f"{label}:{lineno}"
            try:
                line, too_long = _read_line(f, limit)
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                raise SchemaError(f"{where}: cannot read compressed data ({e})") from None
            if too_long:
                yield where, _raiser(BadRecord(f"{where}: line is larger than max_doc_bytes={max_doc_bytes}",
                                               "too_large"))
                continue
            if not line:
                return
            if line.strip():
                yield where, _jsonl_thunk(line, where, lineno)


def _raiser(exc: Exception) -> Callable[[], Any]:
    def f():
        raise exc
    return f


def _jsonl_thunk(line: bytes, where: str, lineno: int) -> Callable[[], Any]:
    def parse():
        try:
            s = line.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise BadRecord(f"{where}: not valid UTF-8 (byte {e.start} of the line: {line[e.start:e.start + 1]!r})",
                            "not_utf8") from None
        try:
            return json.loads(s)
        except json.JSONDecodeError as e:
            raise BadRecord(f"{where}: malformed JSON ({e.msg} at column {e.colno})", "malformed_json") from None
    return parse


def iter_parquet(path: Path, label: str, batch_rows: int = 1024) -> RawIter:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise SchemaError(f"{label}: not a readable parquet file ({e})") from None
    row = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for rec in batch.to_pylist():
            row += 1
            yield f"{label}:row {row}", (lambda r=rec: r)


def iter_hf(path: Path, label: str) -> RawIter:
    try:
        import datasets
    except ImportError:
        raise SchemaError(f"{label}: reading HF datasets needs the 'datasets' package (pip install k2forge[hf])") \
            from None
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise SchemaError(f"{label}: not a dataset saved with save_to_disk ({e})") from None
    splits = [(name, ds[name]) for name in sorted(ds)] if isinstance(ds, datasets.DatasetDict) else [(None, ds)]
    for split, d in splits:
        tag = f"{label}[{split}]" if split else label
        row = 0
        for batch in d.iter(batch_size=1024):  # columnar batches: much faster than row-by-row access
            for values in zip(*batch.values()):
                row += 1
                yield f"{tag}:row {row}", (lambda r=dict(zip(batch, values)): r)


def text_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(TEXT_SUFFIXES)
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def iter_text(path: Path, label: str, max_doc_bytes: int) -> RawIter:
    """One record per .txt/.md file: {text, source = path relative to the directory}."""
    files = [path] if path.is_file() else text_files(path)
    for p in files:
        rel = p.name if path.is_file() else p.relative_to(path).as_posix()
        where = f"{label}/{rel}" if path.is_dir() else label
        yield where, _text_thunk(p, where, rel, max_doc_bytes)


def _text_thunk(p: Path, where: str, rel: str, max_doc_bytes: int) -> Callable[[], Any]:
    def load():
        if p.stat().st_size > max_doc_bytes:
            raise BadRecord(f"{where}: file is larger than max_doc_bytes={max_doc_bytes}", "too_large")
        data = p.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            raise BadRecord(f"{where}:{line}: not valid UTF-8 (byte offset {e.start})", "not_utf8") from None
        return {"text": text, "source": rel}
    return load


# --------------------------------------------------------------------------------------------- entry point

def read_docs(path: Path, fmt: str, opts: ReadOptions, skips: SkipCounter | None = None,
              label: str | None = None) -> Iterator[dict[str, Any]]:
    """Schema documents from one input; bad records raise (on_error=error) or are counted in `skips`."""
    label = label or str(path)
    if fmt not in FORMATS:
        raise SchemaError(f"{label}: unknown format {fmt!r}, expected one of {', '.join(FORMATS)}")
    fm = opts.fields
    if fmt == "text":
        if fm.default_domain is None:
            raise SchemaError(f"{label}: text files carry no domain field; pass a default domain "
                              f"(--default-domain, one of {', '.join(DOMAINS)})")
        # text files carry no fields: the file's relative path is its source unless a default is given
        fm = FieldMap(text="text", id="\0", domain="\0", source="source", lang="\0", meta="\0",
                      default_domain=fm.default_domain, default_source=fm.default_source,
                      default_lang=fm.default_lang)
    raw = {"jsonl": lambda: iter_jsonl(path, label, opts.max_doc_bytes),
           "parquet": lambda: iter_parquet(path, label),
           "hf": lambda: iter_hf(path, label),
           "text": lambda: iter_text(path, label, opts.max_doc_bytes)}[fmt]()
    for where, thunk in raw:
        try:
            yield map_record(thunk(), where, fm, opts.max_doc_bytes)
        except BadRecord as e:
            if opts.on_error != "skip":
                raise
            if skips is not None:
                skips.add(e.reason, str(e))
