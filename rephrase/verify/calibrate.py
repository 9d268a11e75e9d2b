"""`verify_file` and `calibrate`: the functions behind `k2forge rephrase verify` and `k2forge rephrase calibrate`.

Calibration is a method, not a constant. On a DEV file it (1) computes every row's check results and consistency
features once, (2) fits the consistency model (rephrase.verify.consistency.fit) on the dev rows, (3) chooses its
threshold by a stated objective: the largest rejection of unfaithful rows subject to accepting at least
`min_faithful_accept` of the faithful ones, with every other enabled check as it is, and (4) reports, on a TEST
file it never tuned on, faithful acceptance, unfaithful rejection, precision/recall/F1 of rejecting, per
corruption type, per style and per check, and the AUROC of the consistency score next to the embedding cosine
alone. Pass/fail under a new model is replayed from the recorded features, so nothing is run twice.

REJECTING an unfaithful rewrite is the positive class: precision = share of rejected rows that were unfaithful,
recall = share of unfaithful rows rejected. Verbatim copies (corruption "near_copy") are rejected by the
near_copy check and are left out of the model's fit (their facts are right; what is wrong is that nothing was
rewritten).

Labelled rows (JSONL): {"id", "source", "rewrite", "faithful": bool, "corruption": str | null, "style", ...};
"label" is accepted in place of "faithful" (true = faithful).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from corpus.shards import atomic_path
from rephrase.verify.consistency import default_model, features_of
from rephrase.verify.consistency import fit as fit_model
from rephrase.verify.features import NAMES
from rephrase.verify.spec import VerifierSpec
from rephrase.verify.verifier import Verifier

DATA = Path(__file__).resolve().parent.parent / "data"
#: the split, made once (rephrase/data/README.md): tune on DEV only, report TEST
DEV = DATA / "dev.jsonl"
TEST = DATA / "test.jsonl"


def read_jsonl(path: str | Path, required: tuple[str, ...] = ("source", "rewrite")) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a bad line raises ValueError naming file, line and field."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
            for k in required:
                if not isinstance(row.get(k), str) or not row[k].strip():
                    raise ValueError(f"{path}:{n}: field {k!r} is missing, empty or not a string")
            row["_line"] = n
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def _label(row: dict[str, Any], path: str | Path) -> bool:
    v = row.get("faithful", row.get("label"))
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "faithful", "unfaithful"):
        return v.lower() in ("true", "faithful")
    raise ValueError(f"{path}:{row['_line']}: field 'faithful' must be true/false, got {v!r}")


def verify_file(input_jsonl: str | Path, output_jsonl: str | Path, spec: VerifierSpec | None = None,
                batch_size: int = 256) -> dict[str, Any]:
    """Verify {"id"?, "source", "rewrite"} rows; write {"id", "accepted", "reasons", "scores"} per row, atomically.

    Rows without an id get their 1-based line number. Returns {"rows", "accepted", "outputs"}.
    """
    rows = read_jsonl(input_jsonl)
    verifier = Verifier(spec or VerifierSpec())
    accepted = 0
    with atomic_path(output_jsonl) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            for row, v in zip(batch, verifier.verify_batch([(r["source"], r["rewrite"]) for r in batch])):
                accepted += v.accepted
                out.write(json.dumps({"id": row.get("id", row["_line"]), **v.to_fidelity()},
                                     ensure_ascii=False) + "\n")
    return {"rows": len(rows), "accepted": accepted, "outputs": [str(output_jsonl)]}


# ---------------------------------------------------------------- metrics
def prf(rejected: list[bool], unfaithful: list[bool]) -> dict[str, float]:
    """Precision/recall/F1 of rejecting unfaithful rows, plus the faithful acceptance rate."""
    tp = sum(r and u for r, u in zip(rejected, unfaithful))
    fp = sum(r and not u for r, u in zip(rejected, unfaithful))
    fn = sum(u and not r for r, u in zip(rejected, unfaithful))
    n_faithful = sum(not u for u in unfaithful)
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4),
            "faithful_accepted": round(1 - fp / n_faithful, 4) if n_faithful else 1.0, "rejected": tp + fp}


def auroc(scores: list[float], positive: list[bool]) -> float:
    """Area under the ROC curve of `scores` ranking positives above negatives (ties count half)."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    if not pos or not neg:
        return float("nan")
    order = sorted(scores)
    ranks: dict[float, float] = {}
    i = 0
    while i < len(order):  # average rank of each tied block
        j = i
        while j < len(order) and order[j] == order[i]:
            j += 1
        ranks[order[i]] = (i + j + 1) / 2
        i = j
    rank_sum = sum(ranks[s] for s in pos)
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


@dataclass
class Evaluation:
    """One labelled file run once through the verifier: per row the other checks' pass/fail, the consistency
    features and the embedding cosine; `verdicts(model)` replays the decision under any consistency model."""
    rows: list[dict[str, Any]]
    others_pass: list[bool]          # every enabled check except consistency passed
    reasons: list[list[str]]         # their reasons
    x: np.ndarray                    # [n, F] consistency features (NAMES order)
    cosine: list[float]
    uses_model: bool
    per_check_pass: dict[str, list[bool]]

    @property
    def unfaithful(self) -> list[bool]:
        return [not r["faithful"] for r in self.rows]

    def subset(self, idx: list[int]) -> "Evaluation":
        return Evaluation([self.rows[i] for i in idx], [self.others_pass[i] for i in idx],
                          [self.reasons[i] for i in idx], self.x[idx], [self.cosine[i] for i in idx],
                          self.uses_model, {c: [v[i] for i in idx] for c, v in self.per_check_pass.items()})

    def probs(self, model) -> np.ndarray:
        cols = [NAMES.index(f) for f in model.features]
        return model.prob(self.x[:, cols]) if self.uses_model else np.zeros(len(self.rows))

    def rejected(self, model) -> list[bool]:
        p = self.probs(model)
        return [bool(not ok or (self.uses_model and pk > model.threshold)) for ok, pk in zip(self.others_pass, p)]


def evaluate(rows: list[dict[str, Any]], spec: VerifierSpec) -> Evaluation:
    """Run the verifier once over labelled rows (all of them in one batch)."""
    checks = spec.checks if "embedding" in spec.checks else spec.checks + ["embedding"]  # the cosine baseline
    verifier = Verifier(spec.model_copy(update={"checks": checks}))
    out = verifier.run_checks_with_contexts([(r["source"], r["rewrite"]) for r in rows])
    uses_model = "consistency" in spec.checks
    enabled = [c for c in checks if c in spec.checks and c != "consistency"]
    x = np.array([[f.value for f in features_of(ctx)] for _, ctx in out]) if uses_model \
        else np.zeros((len(rows), len(NAMES)))
    per_check = {c: [next(r.passed for r in res if r.name == c) for res, _ in out] for c in spec.checks}
    return Evaluation(rows, [all(r.passed for r in res if r.name in enabled) for res, _ in out],
                      [[f"{r.name}: {r.reason}" for r in res if r.name in enabled and not r.passed] for res, _ in out],
                      x, [next(r.score for r in res if r.name == "embedding") for res, _ in out], uses_model,
                      per_check)


def choose_threshold(ev: Evaluation, model, min_faithful_accept: float):
    """The objective: max unfaithful rejection subject to faithful acceptance >= target; among equal rejections
    the most lenient threshold. Returns the model with its threshold set."""
    p = ev.probs(model)
    faithful = np.array([not u for u in ev.unfaithful])
    others = np.array(ev.others_pass)
    cands = sorted({float(v) for v in p} | {0.999})
    best = None
    for t in cands:
        t = min(max(t, 1e-6), 0.999)
        rejected = ~others | (p > t)
        acc = float((~rejected & faithful).sum() / max(faithful.sum(), 1))
        rej = float((rejected & ~faithful).sum() / max((~faithful).sum(), 1))
        key = (acc >= min_faithful_accept, rej if acc >= min_faithful_accept else acc, t)
        if best is None or key > best[0]:
            best = (key, t)
    # halfway to the next score above: a row whose features equal a dev row's that sits exactly at the threshold
    # (same counts, so the same P up to float rounding) must not flip from run to run
    above = [c for c in cands if c > best[1]]
    t = best[1] if not above else min((best[1] + above[0]) / 2, 0.999)
    return model.model_copy(update={"threshold": t})


def metrics(ev: Evaluation, model) -> dict[str, Any]:
    """Overall, per corruption type, per style and per check figures of one evaluation under `model`."""
    rejected, unfaithful = ev.rejected(model), ev.unfaithful
    out: dict[str, Any] = {"rows": len(ev.rows), "faithful": sum(not u for u in unfaithful), **prf(rejected, unfaithful)}
    out["unfaithful_rejected"] = out["recall"]
    kinds: dict[str, dict[str, int]] = {}
    styles: dict[str, dict[str, int]] = {}
    for row, rej, u in zip(ev.rows, rejected, unfaithful):
        if u:
            k = kinds.setdefault(str(row.get("corruption") or "unlabelled"), {"n": 0, "rejected": 0})
            k["n"] += 1
            k["rejected"] += rej
        st = styles.setdefault(str(row.get("style") or "-"), {"faithful": 0, "accepted": 0, "unfaithful": 0,
                                                               "rejected": 0})
        st["unfaithful" if u else "faithful"] += 1
        st["rejected" if u else "accepted"] += int(rej if u else not rej)
    out["per_corruption"] = {k: {**v, "rate": round(v["rejected"] / v["n"], 4)} for k, v in sorted(kinds.items())}
    out["per_style"] = dict(sorted(styles.items()))
    positive = [not u for u in unfaithful]
    out["auroc_cosine"] = round(auroc(ev.cosine, positive), 4)
    if ev.uses_model:
        out["auroc_consistency"] = round(auroc([-float(v) for v in ev.probs(model)], positive), 4)
    out["per_check"] = {c: prf([not x for x in passes], unfaithful) for c, passes in ev.per_check_pass.items()}
    return out


@dataclass
class CalibrationReport:
    spec: VerifierSpec                        # the calibrated spec (consistency model + threshold)
    dev: dict[str, Any]
    test: dict[str, Any] | None = None
    objective: str = ""
    grouped_cv: dict[str, float] = field(default_factory=dict)  # dev target -> leave-one-group-out acceptance
    rows: list[dict[str, Any]] = field(default_factory=list)   # per test (or dev) row: verdict and reasons

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = json.loads(self.spec.model_dump_json())
        return d

    def format(self) -> str:
        lines = [f"objective: {self.objective}"]
        if self.grouped_cv:
            lines.append("leave-one-author-out faithful acceptance per dev target: " + ", ".join(
                f"{k} -> {v:.3f}" for k, v in self.grouped_cv.items()))
        for name, m in (("dev", self.dev), ("test", self.test)):
            if m is None:
                continue
            lines.append(f"{name}: {m['rows']} rows ({m['faithful']} faithful): faithful accepted "
                         f"{m['faithful_accepted']:.3f}, unfaithful rejected {m['unfaithful_rejected']:.3f} "
                         f"(precision {m['precision']:.3f}, F1 {m['f1']:.3f}); AUROC consistency "
                         f"{m.get('auroc_consistency', float('nan')):.3f} vs cosine alone {m['auroc_cosine']:.3f}")
            lines.append("  rejected per corruption: " + ", ".join(
                f"{k} {v['rejected']}/{v['n']}" for k, v in m["per_corruption"].items()))
        m = self.test or self.dev
        lines.append("per style (faithful accepted / unfaithful rejected):")
        for st, v in m["per_style"].items():
            lines.append(f"  {st:<24} {v['accepted']}/{v['faithful']}  {v['rejected']}/{v['unfaithful']}")
        return "\n".join(lines)


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    rows = read_jsonl(path)
    for row in rows:
        row["faithful"] = _label(row, path)
    return rows


def _fit(ev: Evaluation, synth: Evaluation | None, target: float):
    """Fit on the evaluation's rows (verbatim copies left out) plus the synthetic ones; threshold by `target`."""
    keep = [k for k, r in enumerate(ev.rows) if r.get("corruption") != "near_copy"]
    x, y = ev.x[keep], np.array(ev.unfaithful)[keep]
    if synth is not None and len(synth.rows):
        x, y = np.concatenate([x, synth.x]), np.concatenate([y, np.ones(len(synth.rows), dtype=bool)])
    return choose_threshold(ev, fit_model(x, y), target), len(keep), len(y) - len(keep)


def grouped_target(ev: Evaluation, synth: Evaluation | None, min_faithful_accept: float,
                   key: str = "author") -> tuple[float, dict[str, float]]:
    """The dev acceptance to ask for so that a NEW author's faithful rows are accepted at `min_faithful_accept`.

    A threshold chosen on some authors accepts fewer faithful rewrites of another author's (their false alarms
    differ). Leave-one-group-out over `key`: for each candidate target, fit and threshold on the other groups,
    count the held-out group's faithful rows accepted; the smallest target whose pooled held-out acceptance meets
    the objective wins (1.0 when none does). Returns (target, {target: pooled held-out acceptance})."""
    groups = sorted({str(r.get(key)) for r in ev.rows})
    if len(groups) < 2:
        return min_faithful_accept, {}
    curve: dict[str, float] = {}
    grid = [min(1.0, round(min_faithful_accept + 0.01 * i, 4))
            for i in range(int(round((1 - min_faithful_accept) / 0.01)) + 1)]
    for target in grid:
        accepted = total = 0
        for g in groups:
            train = [i for i, r in enumerate(ev.rows) if str(r.get(key)) != g]
            held = [i for i, r in enumerate(ev.rows) if str(r.get(key)) == g and r["faithful"]]
            s_train = None if synth is None else synth.subset(
                [i for i, r in enumerate(synth.rows) if str(r.get(key)) != g])
            model, _, _ = _fit(ev.subset(train), s_train, target)
            part = ev.subset(held)
            accepted += sum(not r for r in part.rejected(model))
            total += len(held)
        curve[f"{target:.2f}"] = round(accepted / max(total, 1), 4)
        if accepted / max(total, 1) >= min_faithful_accept:
            return target, curve
    return 1.0, curve


def calibrate(dev: str | Path = DEV, spec: VerifierSpec | None = None, *, test: str | Path | None = None,
              fit: bool = True, min_faithful_accept: float = 0.95, augment: int = 2,
              group_by: str | None = "author") -> CalibrationReport:
    """Fit and threshold the consistency model on `dev` (when `fit` and the spec enables it), report on `test`.

    `augment` rule-made one-fact corruptions per faithful dev row (rephrase.verify.corrupt) join the fit only.
    With `group_by` (a field of the rows, default "author") the dev acceptance asked of the threshold is raised
    until leave-one-group-out acceptance meets the objective (see grouped_target)."""
    if not 0 < min_faithful_accept <= 1:
        raise ValueError(f"min_faithful_accept must be in (0, 1], got {min_faithful_accept}")
    spec = spec or VerifierSpec()
    rows = load_rows(dev)
    ev = evaluate(rows, spec)
    model = spec.consistency or default_model()
    objective, curve = "none (measured as given)", {}
    if fit and ev.uses_model:
        synth = None
        if augment:
            from rephrase.verify.corrupt import corruptions
            synth = evaluate(corruptions(rows, per_row=augment), spec)
        target = min_faithful_accept
        if group_by and any(r.get(group_by) is not None for r in rows):
            target, curve = grouped_target(ev, synth, min_faithful_accept, group_by)
        model, n_real, n_synth = _fit(ev, synth, target)
        objective = (f"max unfaithful rejection s.t. faithful acceptance >= {min_faithful_accept} for a new "
                     f"{group_by or 'row'} (leave-one-{group_by}-out on {Path(dev).name}: dev target {target:.2f})"
                     if curve else f"max unfaithful rejection s.t. faithful acceptance >= {target} on "
                                   f"{Path(dev).name}")
        model = model.model_copy(update={"fitted_on": f"{Path(dev).name}: {n_real} labelled rows + {n_synth} "
                                                      f"rule-made corruptions; {objective}"})
        spec = spec.model_copy(update={"consistency": model})
    report = CalibrationReport(spec, metrics(ev, model), objective=objective, grouped_cv=curve)
    target_ev = ev
    if test is not None:
        target_ev = evaluate(load_rows(test), spec)
        report.test = metrics(target_ev, model)
    probs = target_ev.probs(model)
    report.rows = [{"id": r.get("id", r["_line"]), "faithful": r["faithful"], "corruption": r.get("corruption"),
                    "style": r.get("style"), "rejected": rej, "p_unfaithful": round(float(p), 4),
                    "reasons": reasons}
                   for r, rej, p, reasons in zip(target_ev.rows, target_ev.rejected(model), probs, target_ev.reasons)]
    return report
