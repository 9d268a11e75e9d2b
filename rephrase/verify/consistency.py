"""The consistency model: a logistic head over the pair features (rephrase.verify.features) that gives
P(unfaithful), fitted on labelled pairs by `fit` and registered as the `consistency` check.

Method (documented, not hand-tuned): features are standardised on the training rows; the weights are fitted by
L2-regularised logistic regression with every weight constrained to be >= 0, because each feature is oriented so
that more of it is more evidence of an unfaithful rewrite — the constraint keeps a feature from being used
"backwards" on a small training set, which is what makes such a head transfer to text written differently.
Classes are weighted equally. The decision threshold is then chosen on the same (dev) rows by a stated objective:
the largest rejection of unfaithful rows subject to accepting at least `min_faithful_accept` of faithful ones
(rephrase.verify.calibrate). The fitted model lives in the VerifierSpec (so `calibrate --output` writes a spec
that `run` and `verify` use); the packaged default is rephrase/verify/consistency.json, rebuilt by
`k2forge rephrase calibrate --input rephrase/data/dev.jsonl --write-default`.
"""
from __future__ import annotations

import numpy as np

from rephrase.verify.base import CheckContext, CheckResult, register_check
from rephrase.verify.consistency_model import DEFAULT_PATH, ConsistencyModel, default_model
from rephrase.verify.features import NAMES, Feature, pair_features

__all__ = ["DEFAULT_PATH", "ConsistencyModel", "check_consistency", "default_model", "features_of", "fit"]

def fit(x: np.ndarray, unfaithful: np.ndarray, features: list[str] | None = None, l2: float = 1.0,
        steps: int = 4000) -> ConsistencyModel:
    """Non-negative, class-balanced, L2-regularised logistic regression (projected gradient descent with a fixed
    step; deterministic). x: [n, F] features; unfaithful: [n] booleans."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(unfaithful, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y) or y.min() == y.max():
        raise ValueError("fit needs a 2-D feature matrix and labels of both classes, one per row")
    center, scale = x.mean(0), x.std(0)
    scale[scale < 1e-6] = 1.0
    z = (x - center) / scale
    sw = np.where(y > 0, 0.5 / y.sum(), 0.5 / (1 - y).sum())  # each class weighs one half
    w, b = np.zeros(z.shape[1]), 0.0
    lr = 1.0 / (0.25 * (z ** 2).sum(1).max() + l2 / len(y) + 1e-9)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        g = sw * (p - y)
        w = np.maximum(w - lr * (z.T @ g + l2 / len(y) * w), 0.0)
        b -= lr * g.sum()
    return ConsistencyModel(features=list(features or NAMES), center=center.tolist(), scale=scale.tolist(),
                            weights=w.tolist(), bias=float(b))


def features_of(ctx: CheckContext) -> list[Feature]:
    """The pair's features (computed once per context; calibration reads them from the cache too)."""
    if "features" not in ctx.cache:
        ctx.cache["features"] = pair_features(ctx.src_sents, ctx.rw_sents, ctx.src_clean, ctx.rw_clean,
                                              ctx.labels, ctx.titles, ctx.src_best, ctx.rw_best, ctx.sent_sim,
                                              ctx.doc_cos)
    return ctx.cache["features"]


def _row(feats: list[Feature], model: ConsistencyModel) -> np.ndarray:
    by = {f.name: f.value for f in feats}
    return np.array([by[n] for n in model.features], dtype=np.float64)


def check_consistency(source: str, rewrite: str, ctx: CheckContext) -> CheckResult:
    """P(unfaithful) from the consistency model; the reason names the features that weighed most."""
    feats = features_of(ctx)
    model = ctx.spec.consistency or default_model()
    x = _row(feats, model)
    p = float(model.prob(x[None])[0])
    if p <= model.threshold:
        return CheckResult("consistency", p, True)
    contrib = model.contributions(x)
    by = {f.name: f for f in feats}
    top = [by[model.features[k]] for k in np.argsort(-contrib)[:3] if contrib[k] > 0]
    detail = "; ".join(f"{f.name}: {f.detail}" for f in top if f.detail) or "no single feature stands out"
    return CheckResult("consistency", p, False,
                       f"P(unfaithful) {p:.2f} > {model.threshold:.2f}: {detail}")


register_check("consistency", check_consistency, needs=("doc", "sentences"),
               help="logistic model over number, entity, negation, support/coverage and lexical features")
