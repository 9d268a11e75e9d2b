"""DedupSpec: the dedup job's parameters (job kind "dedup"; the stages are in corpus/dedup.py).

Its own module so that the stage modules (corpus.dedup_clusters, corpus.lsh) can take the spec without importing
corpus.dedup, which imports them. `corpus.dedup.DedupSpec` is the same class.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from corpus.fields import PathIn, PathOut
from corpus.minhash import MinHasher
from corpus.spec import ExecutorSpec, Spec
from corpus.textnorm import TextNorm


class DedupSpec(Spec):
    """The dedup job. Defaults: word 5-shingles of the normalised text, 128 permutations as 32 bands x 4 rows
    (LSH S-curve midpoint (1/32)^(1/4) = 0.42, so pairs at the 0.7 threshold become candidates with
    probability 0.9998), verified at Jaccard 0.7."""
    inputs: list[PathIn] = Field(..., min_length=1, description="document shards: directories, globs or files")
    output: PathOut = Field(..., description="directory for kept shards, reports and state")
    exact: bool = Field(True, description="remove exact duplicates (same normalised text)")
    near: bool = Field(True, description="remove near duplicates (MinHash LSH)")
    text_norm: TextNorm = Field(default_factory=TextNorm, description="normalisation before keys and shingles")
    empty: Literal["keep", "drop"] = Field(
        "keep", description="documents whose normalised text is empty: keep them all, or drop them all")
    shingle_size: int = Field(5, ge=1, description="units per shingle")
    shingle_unit: Literal["word", "char"] = Field("word", description="shingle unit: words or characters")
    shingle_hash: Literal["fast", "sha1"] = Field(
        "fast", description="fast: vectorised polynomial hash; sha1: datasketch's default hash (slower)")
    scheme: Literal["affine32", "legacy"] = Field("affine32", description="datasketch permutation scheme")
    num_perm: int = Field(128, ge=1, le=4096, description="MinHash permutations (= bands * rows)")
    bands: int = Field(32, ge=1, description="LSH bands")
    rows: int = Field(4, ge=1, description="signature values per band")
    threshold: float = Field(0.7, gt=0.0, le=1.0, description="Jaccard a candidate pair must reach")
    exact_recheck: bool = Field(
        True, description="re-check candidates whose estimate is within 3 standard errors of the threshold "
                          "against the exact Jaccard of their shingle sets (reads those documents again)")
    seed: int = Field(1, ge=0, lt=2 ** 32, description="permutation seed (datasketch semantics)")
    batch_size: int = Field(1024, ge=1, description="documents per signature batch")
    lsh: Literal["bounded", "memory"] = Field(
        "bounded", description="bounded: band-partitioned units on the executor; memory: all signatures in the "
                               "driver (reference)")
    band_group: int = Field(8, ge=1, description="bands per LSH unit (bounded)")
    partition_docs: int = Field(4_000_000, ge=1, description="documents per band-unit hash partition (bounded)")
    index: list[PathIn] = Field(default_factory=list, description="earlier dedup outputs with a saved index: "
                             "dedup against them too, removing only documents of these inputs (bounded)")
    save_index: bool = Field(False, description="save the kept documents' signatures and band keys as an "
                                                "index for later incremental runs")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)

    @model_validator(mode="after")
    def _check(self) -> "DedupSpec":
        if self.bands * self.rows != self.num_perm:
            raise ValueError(f"bands * rows must equal num_perm: bands={self.bands} * rows={self.rows} = "
                             f"{self.bands * self.rows}, num_perm={self.num_perm}")
        if not (self.exact or self.near):
            raise ValueError("nothing to do: at least one of exact and near must be true")
        if self.index and self.lsh != "bounded":
            raise ValueError("index (incremental dedup) needs lsh: bounded")
        return self

    def hasher(self) -> MinHasher:
        """The signature computer these parameters describe."""
        return MinHasher(self.num_perm, self.seed, self.shingle_size, self.shingle_unit, self.shingle_hash,
                         self.scheme, norm=self.text_norm)
