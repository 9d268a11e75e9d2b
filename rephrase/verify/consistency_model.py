"""The consistency model's weights (a Spec, so a calibrated model lives in the VerifierSpec) and the packaged
default (rephrase/verify/consistency.json). The check that applies it and `fit` are in rephrase.verify.consistency;
this module imports no check code, so the spec can hold a model without an import cycle.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

from corpus.spec import Spec
from rephrase.verify.features import NAMES

DEFAULT_PATH = Path(__file__).with_name("consistency.json")


class ConsistencyModel(Spec):
    """Weights of the logistic head; `threshold` bounds P(unfaithful) (above it the rewrite is rejected)."""
    features: list[str] = Field(default_factory=lambda: list(NAMES), description="feature names, model order")
    center: list[float] = Field(default_factory=lambda: [0.0] * len(NAMES), description="standardisation means")
    scale: list[float] = Field(default_factory=lambda: [1.0] * len(NAMES), description="standardisation scales")
    weights: list[float] = Field(default_factory=lambda: [0.0] * len(NAMES), description="logistic weights")
    bias: float = Field(0.0, description="logistic bias")
    threshold: float = Field(0.5, gt=0, lt=1, description="reject when P(unfaithful) exceeds this")
    fitted_on: str = Field("", description="what the model was fitted on (file, rows, objective)")

    @model_validator(mode="after")
    def _shapes(self) -> "ConsistencyModel":
        n = len(self.features)
        unknown = [f for f in self.features if f not in NAMES]
        if unknown:
            raise ValueError(f"unknown consistency feature(s) {unknown}; known: {list(NAMES)}")
        for name in ("center", "scale", "weights"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} features")
        if any(s <= 0 for s in self.scale):
            raise ValueError("scale entries must be > 0")
        return self

    def prob(self, x: np.ndarray) -> np.ndarray:
        """P(unfaithful) for feature rows x [n, len(features)] (in this model's feature order)."""
        z = (x - np.asarray(self.center)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.weights) + self.bias)))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        return (x - np.asarray(self.center)) / np.asarray(self.scale) * np.asarray(self.weights)


@functools.lru_cache(maxsize=1)
def default_model() -> ConsistencyModel:
    """The packaged model (fitted on rephrase/data/dev.jsonl)."""
    return ConsistencyModel.model_validate(json.loads(DEFAULT_PATH.read_text(encoding="utf-8")))
