"""The demo's configuration: sizes (pipeline/demo/sizes.yaml) and the demo mixture (pipeline/demo/mixture.yaml).

A size holds the fields of each job's own spec (rephrase, mathnotes, train), passed through unchanged, plus the
generation sample; `--docs` and `--steps` override the number of documents rewritten and the training steps.
`rephrase_docs` / `mathnotes_docs` pick the sample documents to rewrite (short ones, and the non-English math
ones so that translation shows), which is what keeps the embedded model's CPU generation within budget.
The mixture names the stage each source comes from (`from: raw | rephrase | mathnotes`) instead of shard paths;
`resolve_mixture` turns it into an ordinary `corpus mix` mixture once the packed shards exist.
The config becomes the parameters of the demo pipeline (pipeline/definitions/demo.yaml): `${params.train}` etc.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from corpus.layout import INDEX, STATS, find_meta
from corpus.spec import SpecError, read_yaml_mapping

HERE = Path(__file__).resolve().parent
SIZES_YAML = HERE / "sizes.yaml"
MIXTURE_YAML = HERE / "mixture.yaml"
ORIGINS = ("raw", "rephrase", "mathnotes")


class SampleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field("The Danube is", min_length=1)
    max_new_tokens: int = Field(40, ge=1)


class DemoConfig(BaseModel):
    """Everything that decides the demo's outputs: the demo pipeline's parameters (a rerun into the same folder
    must have the same)."""
    model_config = ConfigDict(extra="forbid")
    size: str
    #: ids of the sample documents to rewrite (none = every document of the domain); budgets CPU generation
    rephrase_docs: list[str] | None = None
    mathnotes_docs: list[str] | None = None
    rephrase: dict[str, Any] = Field(default_factory=dict)
    mathnotes: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    mixture: dict[str, Any] = Field(default_factory=dict)


def _read_yaml(path: Path) -> dict[str, Any]:
    return read_yaml_mapping(path)


def load_config(size: str = "full", docs: int | None = None, steps: int | None = None,
                engine_url: str | None = None, engine_model: str | None = None,
                sizes_yaml: Path = SIZES_YAML, mixture_yaml: Path = MIXTURE_YAML) -> DemoConfig:
    """The config of one size with the --docs/--steps/--engine-url overrides applied."""
    all_sizes = _read_yaml(sizes_yaml).get("sizes") or {}
    if size not in all_sizes:
        raise SpecError(f"{sizes_yaml}: unknown size {size!r}, expected one of {', '.join(all_sizes)}")
    data = json.loads(json.dumps(all_sizes[size]))  # deep copy
    if docs is not None:
        if docs < 1:
            raise SpecError(f"--docs must be >= 1, got {docs}")
        for job in ("rephrase", "mathnotes"):
            if data.get(f"{job}_docs") is not None:
                data[f"{job}_docs"] = data[f"{job}_docs"][:docs]
            else:
                data.setdefault(job, {})["limit"] = docs
    if steps is not None:
        if steps < 1:
            raise SpecError(f"--steps must be >= 1, got {steps}")
        train = data.setdefault("train", {})
        train["steps"] = steps
        # keep warm-up and checkpoints inside a shortened schedule
        train["warmup_steps"] = min(int(train.get("warmup_steps", 0)), steps // 10)
        if train.get("ckpt_every") and train["ckpt_every"] >= steps:
            train["ckpt_every"] = 0
    if engine_url is not None:       # rewrite with a real model behind any OpenAI-compatible server
        for job in ("rephrase", "mathnotes"):
            section = data.setdefault(job, {})
            conc = (section.get("engine") or {}).get("max_concurrency", 8)
            section["engine"] = {"kind": "openai", "base_url": engine_url, "model": engine_model,
                                 "max_concurrency": conc}
    elif engine_model is not None:
        raise SpecError("--engine-model needs --engine-url (the embedded model is used otherwise)")
    mixture = _read_yaml(mixture_yaml)
    _check_mixture(mixture, mixture_yaml)
    from pydantic import ValidationError
    try:
        return DemoConfig(size=size, mixture=mixture, **data)
    except ValidationError as e:
        from corpus.spec import format_validation_error
        raise SpecError(format_validation_error(e, f"{sizes_yaml} sizes.{size}")) from None


def _check_mixture(mixture: dict[str, Any], where: Path) -> None:
    for i, src in enumerate(mixture.get("sources") or []):
        origin = src.get("from") if isinstance(src, dict) else None
        if origin not in ORIGINS:
            raise SpecError(f"{where}: sources.{i}.from: expected one of {', '.join(ORIGINS)}, got {origin!r}")
        if "paths" in src:
            raise SpecError(f"{where}: sources.{i}.paths: the demo mixture names `from`, not paths")


def packed_origins(packed_dir: Path, dedup_dir: Path) -> list[dict[str, Any]]:
    """Per packed shard: its prefix, tokens per domain and the stage its documents came from (via dedup)."""
    index = json.loads(find_meta(packed_dir, INDEX).read_text())
    dedup = json.loads(find_meta(dedup_dir, STATS).read_text())
    origin_of = {s["output"]: Path(s["input"]).parent.name for s in dedup["shards"]}
    out = []
    for sh in index["shards"]:
        part = Path(sh["input"]).name
        if part not in origin_of:
            raise RuntimeError(f"{packed_dir}: shard {sh['prefix']} comes from {sh['input']}, which "
                               f"{find_meta(dedup_dir, STATS)} does not list")
        prefix = Path(sh["prefix"])     # the pack index names prefixes relative to its folder
        prefix = prefix if prefix.is_absolute() else packed_dir / prefix
        out.append({"prefix": str(prefix), "origin": origin_of[part], "tokens": sh["tokens"],
                    "tokens_by_domain": sh.get("tokens_by_domain") or {}})
    return out


def resolve_mixture(mixture: dict[str, Any], shards: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """(corpus-mix mixture with absolute shard prefixes, notes). A source with no tokens is dropped and the
    remaining weights are renormalised (a run whose rewrites were all rejected still trains, and says so)."""
    sources, notes = [], []
    for src in mixture["sources"]:
        paths = [str(s["prefix"]) for s in shards
                 if s["origin"] == src["from"] and s["tokens_by_domain"].get(src["domain"], 0) > 0]
        if not paths:
            notes.append(f"source {src['name']!r}: no {src['domain']} documents from {src['from']} "
                         f"(nothing accepted or all removed), dropped from the mixture")
            continue
        sources.append({k: v for k, v in src.items() if k != "from"} | {"paths": paths})
    if not sources:
        raise RuntimeError("demo mixture: no source has any tokens")
    total = sum(s["weight"] for s in sources)
    if abs(total - 1.0) > 1e-9:
        for s in sources:
            s["weight"] = s["weight"] / total
        notes.append(f"weights of the remaining sources renormalised to sum to 1 (they summed to {total:.3f})")
    resolved = {k: v for k, v in mixture.items() if k != "sources"} | {"sources": sources}
    return resolved, notes
