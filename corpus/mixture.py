"""`corpus mix`: resolve a mixture spec over packed token shards into a manifest JSON and a Megatron blend.

Mixture spec (YAML file or inline):
```yaml
total_tokens: 2_000_000      # budget; required with weights, optional with tokens targets (= their sum)
seq_len: 4096
tokenizer: null              # name, sha256, tokenizer.json or model dir the shards must have; null = any one
seed: 0
shortfall: redistribute      # or report (see below)
eval_fraction: 0.05          # held-out tail of each shard's documents (0: no eval split)
sources:
  - {name: wiki_synth, paths: [synth], domain: knowledge, weight: 0.6, max_epochs: 1}
  - {name: web, paths: ["raw/web-*"], domain: web, weight: 0.4}   # or tokens: 800000 instead of weight
```
`paths` are packed shard prefixes, globs of prefixes or their .bin/.idx files, or pack output dirs (all shards of
its .k2forge/index.json). Relative paths resolve against each `MixSpec.packed` dir, or, without those, against the
mixture file's directory (an inline mixture: the working directory).

Eval split: with `eval_fraction` f > 0, the last max(1, round(f * docs)) documents of every shard with two or
more documents are held out for evaluation (`eval_docs`, `eval_tokens` per shard). They are never training
data: `available_tokens`, the caps, the epochs and the blend count only each shard's `train_tokens`, so the
allotment is what the trainer really reads (trainer/data.py consumes exactly these numbers).

Allotment: target_k = weight_k * total_tokens (or tokens_k); cap_k = floor(max_epochs_k * available_k).
A source whose target exceeds its cap gets its cap and a warning. With `shortfall: redistribute` (default) the
missing tokens go to the uncapped sources in proportion to their targets, repeatedly, until the budget is met
or every source is capped; whatever is still missing, or everything missing under `shortfall: report`, is the
manifest's `shortfall_tokens`, with a warning. Allotments are integers (largest remainder rounding).

Manifest (format "k2forge-mixture/1"; read by the trainer):
```
{"format", "seed", "seq_len", "budget_tokens", "allotted_tokens", "shortfall_tokens", "shortfall_policy",
 "num_samples" (allotted // seq_len), "eval_fraction", "tokenizer": {...}, "dtype", "blend" (file name),
 "warnings": [...],
 "mixture": {the resolved spec},
 "sources": [{"name", "domain", "weight" (target share), "target_tokens", "available_tokens", "max_epochs",
              "cap_tokens", "allotted_tokens", "epochs" (allotted / available), "fraction" (of allotted),
              "capped", "samples", "seed", "shard_order" (seeded permutation of shards),
              "provenance": {"kind": raw|synthetic|mixed, "summary": "3 rephrasings x 1 epoch" | "raw x 10 epochs",
                             "raw_docs", "raw_tokens", "synthetic_docs", "synthetic_tokens", "tokens_by_task",
                             "parents", "rephrasings_per_parent", "exposures_per_parent",
                             "parents_in_sources": {other source: parents found among its doc ids}},
              "eval_tokens", "eval_docs",
              "shards": [{"prefix" (absolute, no extension), "tokens", "docs", "train_tokens", "eval_tokens",
                          "eval_docs", "bin_sha256", "idx_sha256", "blend_weight"}]}]}
```
The blend `{manifest stem}.blend.txt` holds `weight prefix` pairs, one shard per line, weight = its share of
the allotted tokens, for Megatron's `--data-path $(cat mix.blend.txt)` (Megatron reads whole shards: hold its
eval documents out with its own `--split`).
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from corpus.events import Log, OnEvent, Progress
from corpus.fields import PathIn, PathOut
from corpus.indexed import IndexedDataset
from corpus.schema import DOMAINS
from corpus.layout import INDEX, find_meta
from corpus.pack import PACK_FORMAT
from corpus.shards import INDEX_NAME, atomic_write_json, atomic_write_text, file_sha256
from corpus.spec import Spec, format_validation_error, parse_spec, read_yaml_mapping, save_spec
from corpus.tokenizer import load_tokenizer

log = logging.getLogger(__name__)
MIX_FORMAT = "k2forge-mixture/1"
WEIGHT_TOL = 1e-6


class MixSource(Spec):
    name: str = Field(..., min_length=1)
    paths: list[PathIn] = Field(..., min_length=1, description="packed shard prefixes, globs or pack dirs")
    domain: str
    weight: float | None = Field(None, ge=0)
    tokens: int | None = Field(None, ge=0, description="absolute token target instead of a weight")
    max_epochs: float | None = Field(None, gt=0, description="cap on passes over this source; none = no cap")

    @field_validator("domain")
    @classmethod
    def _known_domain(cls, v: str) -> str:
        if v not in DOMAINS:
            raise ValueError(f"unknown domain {v!r}, expected one of {', '.join(DOMAINS)}")
        return v

    @model_validator(mode="after")
    def _one_target(self):
        if (self.weight is None) == (self.tokens is None):
            raise ValueError(f"source {self.name!r}: give exactly one of 'weight' or 'tokens'")
        return self


class MixtureConfig(Spec):
    sources: list[MixSource] = Field(..., min_length=1)
    total_tokens: int | None = Field(None, gt=0, description="token budget")
    seq_len: int = Field(4096, ge=1)
    tokenizer: PathIn | None = Field(None, description="tokenizer the shards must have been packed with")
    seed: int = 0
    shortfall: Literal["redistribute", "report"] = "redistribute"
    eval_fraction: float = Field(0.05, ge=0, lt=1, description="held-out tail of each shard's documents "
                                 "(never allotted to training); 0 = no eval split")

    @model_validator(mode="after")
    def _consistent(self):
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"sources: duplicate name(s) {dup}")
        by_weight = [s.weight is not None for s in self.sources]
        if any(by_weight) and not all(by_weight):
            raise ValueError("sources: use 'weight' on every source or 'tokens' on every source, not both")
        if all(by_weight):
            total = sum(s.weight for s in self.sources)
            if abs(total - 1.0) > WEIGHT_TOL:
                raise ValueError(f"sources[*].weight: weights sum to {total:.9g}, expected 1 (within {WEIGHT_TOL})")
            if self.total_tokens is None:
                raise ValueError("total_tokens: required when sources use weights")
        elif self.total_tokens is not None and self.total_tokens != sum(s.tokens for s in self.sources):
            raise ValueError(f"total_tokens: {self.total_tokens} differs from the sum of sources[*].tokens "
                             f"({sum(s.tokens for s in self.sources)}); drop it or make them agree")
        return self

    def budget(self) -> int:
        return self.total_tokens if self.total_tokens is not None else sum(s.tokens for s in self.sources)

    def targets(self) -> list[float]:
        return [s.weight * self.budget() if s.weight is not None else float(s.tokens) for s in self.sources]


class MixSpec(Spec):
    mixture: PathIn | MixtureConfig = Field(..., description="mixture YAML path, or the mixture inline")
    output: PathOut = Field(..., description="manifest JSON path; the blend and spec are written next to it")
    packed: list[PathIn] = Field(default_factory=list, description="dirs that relative source paths resolve against")
    verify_checksums: bool = Field(False, description="re-hash every .bin/.idx against the pack index")

    @field_validator("mixture", mode="before")
    @classmethod
    def _inline(cls, v: Any) -> Any:
        # validate an inline mixture here so errors read "sources.0.domain: ...", not pydantic's union paths
        if isinstance(v, dict):
            from pydantic import ValidationError

            try:
                return MixtureConfig.model_validate(v)
            except ValidationError as e:
                raise ValueError(format_validation_error(e, "inline mixture")) from None
        return v


def load_mixture(mixture: str | MixtureConfig) -> tuple[MixtureConfig, Path]:
    """The validated mixture and the directory its relative paths default to."""
    if isinstance(mixture, MixtureConfig):
        return mixture, Path.cwd()
    path = Path(mixture)
    data = read_yaml_mapping(path, "mixture file", "a mixture must be a mapping with 'sources'")
    return parse_spec(MixtureConfig, data, str(path)), path.parent


def allot(targets: list[float], caps: list[float], redistribute: bool) -> list[int]:
    """Integer allotments: min(target, cap), then (optionally) water-fill the missing tokens by target share."""
    alloc = [min(t, c) for t, c in zip(targets, caps)]
    missing = sum(targets) - sum(alloc)
    while redistribute and missing > 1e-9:
        open_ = [i for i, (a, c) in enumerate(zip(alloc, caps)) if a < c and targets[i] > 0]
        if not open_:
            break
        share = sum(targets[i] for i in open_)
        for i in open_:
            alloc[i] = min(caps[i], alloc[i] + missing * targets[i] / share)
        missing = sum(targets) - sum(alloc)
    return _round_preserving_sum(alloc, caps)


def _round_preserving_sum(values: list[float], caps: list[float]) -> list[int]:
    floors = [math.floor(v + 1e-9) for v in values]
    extra = round(sum(values)) - sum(floors)
    # ties broken by index, so the result is deterministic
    order = sorted(range(len(values)), key=lambda i: (-(values[i] - floors[i]), i))
    for i in order:
        if extra <= 0:
            break
        if floors[i] + 1 <= caps[i]:
            floors[i] += 1
            extra -= 1
    return floors


def split_documents(num_docs: int, eval_fraction: float) -> int:
    """Number of leading documents of a shard that are training data; the rest (its tail) are held out."""
    if eval_fraction <= 0 or num_docs < 2:
        return num_docs
    return num_docs - max(1, int(round(num_docs * eval_fraction)))


def _stable_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "little")


def run_mix(spec: MixSpec, on_event: OnEvent | None = None) -> dict[str, Any]:
    """Resolve the mixture, write the manifest, the Megatron blend and the spec; return a summary."""
    emit = on_event or (lambda e: None)
    cfg, default_base = load_mixture(spec.mixture)
    bases = [Path(p) for p in spec.packed] or [default_base]
    warnings: list[str] = []
    resolved = resolve_shards(cfg, bases, spec.verify_checksums, warnings)
    tokenizer, dtype = check_tokenizer(cfg, resolved)
    for r in resolved:
        for sh in r["shards"]:
            _split_shard(sh, cfg.eval_fraction)
    avail = [sum(s["train_tokens"] for s in r["shards"]) for r in resolved]
    # a source with no tokens can take none, whatever its max_epochs
    caps = [math.floor(s.max_epochs * a + 1e-9) if s.max_epochs is not None and a else (math.inf if a else 0)
            for s, a in zip(cfg.sources, avail)]
    targets = cfg.targets()
    alloc = allot(targets, caps, cfg.shortfall == "redistribute")
    total = sum(alloc)
    shortfall = cfg.budget() - total
    warnings += _cap_warnings(cfg, targets, caps, avail, shortfall)
    sources = [_source_entry(cfg, i, resolved, avail[i], caps[i], targets[i], alloc[i], total)
               for i in range(len(cfg.sources))]
    out = Path(spec.output)
    blend = out.with_name(f"{out.stem}.blend.txt")
    manifest = {"format": MIX_FORMAT, "seed": cfg.seed, "seq_len": cfg.seq_len, "budget_tokens": cfg.budget(),
                "allotted_tokens": total, "shortfall_tokens": shortfall, "shortfall_policy": cfg.shortfall,
                "num_samples": total // cfg.seq_len, "eval_fraction": cfg.eval_fraction, "tokenizer": tokenizer,
                "dtype": dtype, "blend": blend.name, "warnings": warnings, "sources": sources,
                "mixture": json.loads(cfg.model_dump_json())}
    atomic_write_json(out, manifest)
    atomic_write_text(blend, "".join(f"{sh['blend_weight']:.12g} {sh['prefix']}\n" for s in sources
                                     for sh in s["shards"] if sh["blend_weight"] > 0))
    spec_path = out.with_name(f"{out.stem}.spec.yaml")
    save_spec(spec, spec_path, "mix")
    for w in warnings:
        log.warning("%s", w)
        emit(Log(w, "warning"))
    emit(Progress(1, 1))
    return {"outputs": [str(out), str(blend), str(spec_path)], "allotted_tokens": total,
            "shortfall_tokens": shortfall, "warnings": warnings,
            "sources": {s["name"]: {"allotted_tokens": s["allotted_tokens"], "epochs": s["epochs"]}
                        for s in sources}}


def _cap_warnings(cfg, targets, caps, avail, shortfall) -> list[str]:
    out = []
    fate = "redistributed to the other sources" if cfg.shortfall == "redistribute" else "reported as shortfall"
    for s, t, c, a in zip(cfg.sources, targets, caps, avail):
        if a == 0:
            out.append(f"source {s.name!r}: its shards hold no tokens; its target of {t:.0f} tokens is {fate}")
        elif t > c + 1e-9:
            out.append(f"source {s.name!r}: target {t:.0f} tokens exceeds max_epochs {s.max_epochs:g} x "
                       f"{a} available = {c} tokens; capped, {t - c:.0f} tokens {fate}")
    if shortfall > 0:
        out.append(f"mixture: shortfall of {shortfall} of {cfg.budget()} budget tokens "
                   f"({'every source is at its max_epochs cap' if cfg.shortfall == 'redistribute' else 'shortfall: report'})")
    return out


def _source_entry(cfg, i, resolved, avail, cap, target, got, total) -> dict[str, Any]:
    import numpy as np
    s, shards = cfg.sources[i], resolved[i]["shards"]
    epochs = got / avail if avail else 0.0
    seed = _stable_seed(cfg.seed, s.name)
    order = np.random.default_rng(seed).permutation(len(shards)).tolist()
    for sh in shards:
        sh["blend_weight"] = (got * sh["train_tokens"] / avail / total) if avail and total else 0.0
    return {"name": s.name, "domain": s.domain, "weight": target / sum(cfg.targets()) if sum(cfg.targets()) else 0,
            "target_tokens": round(target), "available_tokens": avail, "max_epochs": s.max_epochs,
            "cap_tokens": None if cap == math.inf else cap, "allotted_tokens": got, "epochs": round(epochs, 6),
            "fraction": round(got / total, 9) if total else 0.0, "capped": target > cap + 1e-9,
            "samples": got // cfg.seq_len, "seed": seed, "shard_order": order,
            "eval_tokens": sum(sh["eval_tokens"] for sh in shards),
            "eval_docs": sum(sh["eval_docs"] for sh in shards),
            "provenance": provenance(resolved, i, epochs), "shards": shards}


def _split_shard(sh: dict, eval_fraction: float) -> None:
    """Record the shard's train/eval split (its tail documents are held out) from its .idx lengths."""
    lengths = IndexedDataset(sh["prefix"]).sequence_lengths
    n_train = split_documents(len(lengths), eval_fraction)
    sh["train_tokens"] = int(lengths[:n_train].sum(dtype="int64"))
    sh["eval_tokens"] = sh["tokens"] - sh["train_tokens"]
    sh["eval_docs"] = len(lengths) - n_train


# ---- resolving source paths to finished pack shards -------------------------------------------------------

def _pack_index(d: Path, cache: dict[Path, dict]) -> dict:
    d = d.resolve()
    if d not in cache:
        path = find_meta(d, INDEX)   # an older pack output keeps it in _index.json
        if not path.exists():
            raise FileNotFoundError(f"{d}: no {INDEX_NAME}; run `corpus pack` into it to completion first")
        index = json.loads(path.read_text(encoding="utf-8"))
        if index.get("format") != PACK_FORMAT:
            raise ValueError(f"{path}: format {index.get('format')!r} is not a pack index ({PACK_FORMAT})")
        index["by_prefix"] = {sh["prefix"]: sh for sh in index["shards"]}
        cache[d] = index
    return cache[d]


def _match(pattern: str, bases: list[Path], cache: dict) -> set[Path]:
    """Shard prefixes named by one source path: a pack dir, a prefix, a .bin/.idx file, or a glob of those."""
    cands = [Path(pattern)] if Path(pattern).is_absolute() else [b / pattern for b in bases]
    found: set[Path] = set()
    for c in cands:
        hits = [Path(h) for h in sorted(glob.glob(str(c)))] if glob.has_magic(str(c)) else [c]
        for h in hits:
            if h.name.startswith(("_", ".")):
                continue  # .k2forge/, temp files, an older layout's _index.json, _done/
            if h.is_dir():
                found.update(h.resolve() / p for p in _pack_index(h, cache)["by_prefix"])
            elif h.suffix in (".bin", ".idx"):
                found.add(h.resolve().with_suffix(""))
            elif Path(f"{h}.idx").exists():
                found.add(h.resolve())
    return found


def _shard_record(prefix: Path, verify: bool, cache: dict) -> tuple[dict, dict, dict]:
    index = _pack_index(prefix.parent, cache)
    entry = index["by_prefix"].get(prefix.name)
    if entry is None:
        raise ValueError(f"{prefix}: not listed in {prefix.parent / INDEX_NAME} (unfinished or stale pack output)")
    bin_, idx, meta = (Path(f"{prefix}{e}") for e in (".bin", ".idx", ".meta.json"))
    for p in (bin_, idx, meta):
        if not p.exists():
            raise FileNotFoundError(f"{p}: missing, but listed in {prefix.parent / INDEX_NAME}")
    if bin_.stat().st_size != entry["bin_bytes"]:
        raise ValueError(f"{bin_}: {bin_.stat().st_size} bytes, pack index says {entry['bin_bytes']}")
    if verify:
        for p, key in ((bin_, "bin_sha256"), (idx, "idx_sha256")):
            if file_sha256(p) != entry[key]:
                raise ValueError(f"{p}: sha256 differs from {prefix.parent / INDEX_NAME} (file changed after packing)")
    rec = {"prefix": str(prefix), "tokens": entry["tokens"], "docs": entry["docs"],
           "bin_sha256": entry["bin_sha256"], "idx_sha256": entry["idx_sha256"]}
    return rec, json.loads(meta.read_text(encoding="utf-8")), index


def resolve_shards(cfg: MixtureConfig, bases: list[Path], verify: bool, warnings: list[str]) -> list[dict]:
    """Per source: its shard records (sorted), their metadata, and the pack indexes they come from."""
    cache: dict[Path, dict] = {}
    owner: dict[Path, str] = {}
    out = []
    for i, s in enumerate(cfg.sources):
        prefixes = sorted(set().union(*(_match(p, bases, cache) for p in s.paths)))
        if not prefixes:
            raise FileNotFoundError(f"sources[{i}] {s.name!r}: paths {s.paths} match no packed token shards "
                                    f"(looked under {', '.join(map(str, bases))})")
        for p in prefixes:
            if p in owner:
                raise ValueError(f"shard {p} is in both source {owner[p]!r} and source {s.name!r}")
            owner[p] = s.name
        recs = [_shard_record(p, verify, cache) for p in prefixes]
        other = sorted({d for _, m, _ in recs for d in m["tokens_by"]["domain"]} - {s.domain})
        if other:
            warnings.append(f"source {s.name!r} is declared {s.domain!r} but its shards also hold domain(s) {other}")
        out.append({"name": s.name, "shards": [r for r, _, _ in recs], "metas": [m for _, m, _ in recs],
                    "indexes": [ix for _, _, ix in recs]})
    return out


def check_tokenizer(cfg: MixtureConfig, resolved: list[dict]) -> tuple[dict, str]:
    """The one tokenizer (and dtype) all shards share; error when shards disagree or differ from cfg.tokenizer."""
    infos = {ix["tokenizer"]["sha256"]: (ix["tokenizer"], ix["dtype"]) for r in resolved for ix in r["indexes"]}
    if len(infos) > 1:
        names = sorted(f"{t['name']} ({sha[:12]})" for sha, (t, _) in infos.items())
        raise ValueError(f"mixture: shards were packed with different tokenizers: {', '.join(names)}")
    info, dtype = next(iter(infos.values()))
    want = cfg.tokenizer
    if want is not None:
        if Path(want).exists():
            want = load_tokenizer(want).sha256
        if want not in (info["sha256"], info["name"]):
            raise ValueError(f"tokenizer: mixture asks for {cfg.tokenizer!r} but the shards were packed with "
                             f"{info['name']} ({info['sha256'][:12]})")
    return info, dtype


def provenance(resolved: list[dict], i: int, epochs: float) -> dict[str, Any]:
    """Raw vs synthetic make-up of source i, rephrasings per parent, and which sources hold those parents."""
    from collections import Counter
    metas = resolved[i]["metas"]
    parents: Counter = Counter()
    by_task: Counter = Counter()
    for m in metas:
        parents.update(m["parents"])
        by_task.update(m["tokens_by"]["task"])
    raw_docs, syn_docs = (sum(m[k]["docs"] for m in metas) for k in ("raw", "synthetic"))
    k = syn_docs / len(parents) if parents else 0.0
    found = {}
    if parents:
        for j, r in enumerate(resolved):
            ids = {d for m in r["metas"] for d in m["doc_ids"]}
            n = sum(1 for p in parents if p in ids)
            if n:
                found[j] = n
    kind = "mixed" if raw_docs and syn_docs else ("synthetic" if syn_docs else "raw")
    what = "rephrasings" if set(by_task) <= {"rephrase", "raw"} else "rewrites"
    ep = f"{epochs:.3g} epoch{'' if epochs == 1 else 's'}"
    summary = {"raw": f"raw x {ep}", "synthetic": f"{k:.3g} {what} x {ep} ({k * epochs:.3g} exposures per parent)",
               "mixed": f"raw + {k:.3g} {what} per parent x {ep}"}[kind]
    return {"kind": kind, "summary": summary, "raw_docs": raw_docs, "synthetic_docs": syn_docs,
            "raw_tokens": sum(m["raw"]["tokens"] for m in metas),
            "synthetic_tokens": sum(m["synthetic"]["tokens"] for m in metas),
            "tokens_by_task": dict(sorted(by_task.items())), "parents": len(parents),
            "rephrasings_per_parent": round(k, 6), "max_rephrasings_per_parent": max(parents.values(), default=0),
            "exposures_per_parent": round(k * epochs, 6) if parents else None,
            "parents_in_sources": {resolved[j]["name"]: n for j, n in found.items()}}
