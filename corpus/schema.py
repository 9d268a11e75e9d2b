"""The one document schema used by every stage (DESIGN.md), as pyarrow schemas plus a validator.

Raw rows:        id, text, domain, source, lang, meta (JSON string)
Synthetic rows:  the above plus parent_id, task, style, engine, model, prompt_sha, fidelity, attempts

Scores (fidelity.scores, and the rejects' scores) are a list of {name, value} structs sorted by name: an
Arrow map has no Hugging Face `datasets` equivalent, so a map column made `load_dataset` fail. Shards written
with the former map<string, double> still read (validate_table casts them). `scores_dict` reads any of these.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping

import pyarrow as pa

DOMAINS = ("web", "code", "math", "knowledge")
TASKS = ("rephrase", "learning_note", "translate")

SCORES_TYPE = pa.list_(pa.struct([pa.field("name", pa.string()), pa.field("value", pa.float64())]))
FIDELITY_TYPE = pa.struct(
    [
        pa.field("accepted", pa.bool_()),
        pa.field("reasons", pa.list_(pa.string())),
        pa.field("scores", SCORES_TYPE),
    ]
)

DOC_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("domain", pa.string(), nullable=False),
    pa.field("source", pa.string()),
    pa.field("lang", pa.string()),
    pa.field("meta", pa.string()),
]
SYNTH_FIELDS = [
    pa.field("parent_id", pa.string()),
    pa.field("task", pa.string()),
    pa.field("style", pa.string()),
    pa.field("engine", pa.string()),
    pa.field("model", pa.string()),
    pa.field("prompt_sha", pa.string()),
    pa.field("fidelity", FIDELITY_TYPE),
    pa.field("attempts", pa.int32()),
]
DOC_SCHEMA = pa.schema(DOC_FIELDS)
SYNTH_SCHEMA = pa.schema(DOC_FIELDS + SYNTH_FIELDS)


class SchemaError(ValueError):
    """A document or table does not follow the schema; the message names where (file, line, field)."""


def doc_id(text: str) -> str:
    """Stable content hash used as the id when the input gives none."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def is_synthetic(schema: pa.Schema) -> bool:
    return "parent_id" in schema.names


def normalize_doc(raw: dict[str, Any], where: str, default_domain: str | None = None,
                  default_source: str = "", synthetic: bool = False) -> dict[str, Any]:
    """Validate one document dict and fill defaults; raise SchemaError naming `where` and the field."""
    text = raw.get("text")
    if text is None:
        raise SchemaError(f"{where}: missing field 'text'")
    if not isinstance(text, str):
        raise SchemaError(f"{where}: field 'text' must be a string, got {type(text).__name__}")
    if not text.strip():
        raise SchemaError(f"{where}: field 'text' is empty or whitespace-only")
    domain = raw.get("domain") or default_domain
    if domain is None:
        raise SchemaError(f"{where}: missing field 'domain' (one of {', '.join(DOMAINS)}; or pass a default domain)")
    if domain not in DOMAINS:
        raise SchemaError(f"{where}: field 'domain' is {domain!r}, expected one of {', '.join(DOMAINS)}")
    meta = raw.get("meta")
    if meta is None:
        meta = "{}"
    elif not isinstance(meta, str):
        try:
            meta = json.dumps(meta, sort_keys=True, ensure_ascii=False)
        except (TypeError, ValueError) as e:   # e.g. a timestamp in a parquet/HF meta column
            raise SchemaError(f"{where}: field 'meta' holds a value that is not JSON ({e})") from None
    else:
        try:
            json.loads(meta)
        except json.JSONDecodeError as e:
            raise SchemaError(f"{where}: field 'meta' is not valid JSON ({e.msg})") from None
    rid = raw.get("id")
    out = {
        "id": str(rid) if rid not in (None, "") else doc_id(text),
        "text": text,
        "domain": domain,
        "source": str(raw.get("source") or default_source),
        "lang": str(raw.get("lang") or ""),
        "meta": meta,
    }
    if synthetic:
        for f in SYNTH_FIELDS:
            out[f.name] = raw.get(f.name)
    return out


def validate_table(table: pa.Table, where: str) -> pa.Table:
    """Check a table read from disk against the schema; return it cast to the canonical field order."""
    target = SYNTH_SCHEMA if is_synthetic(table.schema) else DOC_SCHEMA
    missing = [n for n in target.names if n not in table.schema.names]
    if missing:
        raise SchemaError(f"{where}: missing column(s) {', '.join(missing)}")
    table = table.select(target.names)
    try:
        table = table.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise SchemaError(f"{where}: column types do not match the document schema: {e}") from None
    for name in ("id", "text", "domain"):
        if table.column(name).null_count:
            raise SchemaError(f"{where}: column {name!r} has null values")
    bad = set(table.column("domain").unique().to_pylist()) - set(DOMAINS)
    if bad:
        raise SchemaError(f"{where}: unknown domain(s) {sorted(bad)}, expected one of {', '.join(DOMAINS)}")
    return table


def table_from_docs(docs: Iterable[dict[str, Any]], synthetic: bool = False) -> pa.Table:
    schema = SYNTH_SCHEMA if synthetic else DOC_SCHEMA
    docs = list(docs)
    cols = {f.name: [d.get(f.name) for d in docs] for f in schema}
    if synthetic:
        cols["fidelity"] = [_fidelity_row(v) for v in cols["fidelity"]]
    return pa.Table.from_pydict(cols, schema=schema)


def scores_list(scores: Mapping[str, float] | Iterable | None) -> list[dict[str, Any]]:
    """Scores as stored (SCORES_TYPE): [{"name", "value"}] sorted by name, from a dict or any stored form; values
    to 4 decimals (see rephrase.verify.base.Verdict.to_fidelity: a resumed run writes the same rows)."""
    return [{"name": k, "value": v if v is None else round(float(v), 4)} for k, v in sorted(scores_dict(scores).items())]


def scores_dict(scores: Mapping[str, float] | Iterable | None) -> dict[str, float]:
    """Scores as a dict, from a dict, a stored list of {name, value}, or the former map's (key, value) pairs."""
    if not scores:
        return {}
    if isinstance(scores, Mapping):
        return {str(k): float(v) for k, v in scores.items()}
    out = {}
    for item in scores:
        k, v = (item["name"], item["value"]) if isinstance(item, Mapping) else item
        out[str(k)] = float(v)
    return out


def _fidelity_row(v: dict[str, Any] | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"accepted": bool(v.get("accepted")), "reasons": list(v.get("reasons") or []),
            "scores": scores_list(v.get("scores"))}
