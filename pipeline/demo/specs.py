"""Spec classes of the demo's registered steps (pipeline/registry.py), importable without their heavy code."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from corpus.fields import PathIn, PathOut
from corpus.spec import Spec


class SelectSpec(Spec):
    """The documents of one domain to rewrite, in the given order, as one shard."""
    raw: PathIn = Field(description="folder of ingested document shards")
    domain: str
    ids: list[str] | None = Field(None, description="document ids, in order (none = every document of domain)")
    output: PathOut = Field(description="the shard to write")


class VerifySampleSpec(Spec):
    output: PathOut = Field(description="folder for sample.jsonl and verdicts.jsonl")


class DemoMixSpec(Spec):
    """A demo mixture (sources name `from: raw|rephrase|mathnotes`) resolved to the packed shards, then mixed."""
    mixture: dict[str, Any]
    packed: PathIn
    dedup: PathIn = Field(description="dedup output: says which stage each packed shard's documents came from")
    seq_len: int | None = Field(None, ge=1, description="the trainer's (samples of the manifest = samples drawn)")
    resolved_file: PathOut = Field(description="where the resolved `corpus mix` mixture is written")
    output: PathOut = Field(description="the manifest (mixture.json)")


class EvalSpec(Spec):
    train_dir: PathIn = Field(description="a training run: its latest checkpoint is evaluated")
    manifest: PathIn
    batch_size: int = Field(4, ge=1)
    max_batches: int = Field(4, ge=1)
    seq_len: int | None = Field(None, ge=1)
    output: PathOut = Field(description="eval.json")


class ExportSpec(Spec):
    train_dir: PathIn = Field(description="a training run: its latest checkpoint is exported")
    output: PathOut = Field(description="the Hugging Face model folder")


class SampleSpec(Spec):
    export_dir: PathIn
    prompt: str = Field("The Danube is", min_length=1)
    max_new_tokens: int = Field(40, ge=1)
    output: PathOut = Field(description="sample.json")


class ReportSpec(Spec):
    """The demo report over the pipeline's output folder (the demo's layout) and the records of its steps."""
    output: PathOut = Field(description="report folder")
    size: str
    train: dict[str, Any] = Field(default_factory=dict, description="the train step's fields (qk_clip_tau)")
