"""`verify_file` and `calibrate`: the functions behind `k2forge rephrase verify` and `k2forge rephrase calibrate`.

Calibration treats REJECTING an unfaithful rewrite as the positive class: precision = share of rejected rows that
were unfaithful, recall = share of unfaithful rows rejected. It reports these for the whole verifier and per check,
recall per corruption type, AUROC of the embedding cosine alone vs the combined verifier, and (optionally) sweeps
each check's threshold over its grid, replaying pass/fail from the recorded scores (no model reruns), to suggest
thresholds. The combined verifier's continuous score for AUROC is `checks passed + (cosine + 1) / 2.01`: the
number of passed checks orders rows first, the cosine only breaks ties.

Labelled rows (JSONL): {"id", "source", "rewrite", "faithful": bool, "corruption": str | null, "style", "base"};
"label" is accepted in place of "faithful" (true = faithful).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rephrase.verify.base import CHECKS, CheckResult
from rephrase.verify.spec import VerifierSpec

LABELLED = Path(__file__).resolve().parent.parent / "data" / "labelled.jsonl"
#: written after the default thresholds were chosen on LABELLED (see rephrase/data/labelled.md)
HELDOUT = LABELLED.with_name("heldout.jsonl")


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
    from corpus.shards import atomic_path
    from rephrase.verify.verifier import Verifier
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
class CalibrationReport:
    n: int
    n_faithful: int
    verifier: dict[str, float]
    per_check: dict[str, dict[str, float]]
    per_corruption: dict[str, dict[str, Any]]
    auroc_cosine: float
    auroc_combined: float
    thresholds: dict[str, float]
    suggested: dict[str, float] = field(default_factory=dict)
    suggested_verifier: dict[str, float] = field(default_factory=dict)
    sweeps: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    spec: VerifierSpec | None = None   # the spec with the suggested thresholds (or the input spec)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = json.loads(self.spec.model_dump_json()) if self.spec else None
        return d

    def format(self) -> str:
        v = self.verifier
        lines = [f"rows {self.n} ({self.n_faithful} faithful, {self.n - self.n_faithful} unfaithful)",
                 f"verifier: precision {v['precision']:.3f} recall {v['recall']:.3f} f1 {v['f1']:.3f} "
                 f"faithful accepted {v['faithful_accepted']:.3f}",
                 f"AUROC cosine alone {self.auroc_cosine:.3f} vs combined verifier {self.auroc_combined:.3f}",
                 "per check (rejecting unfaithful):"]
        for name, m in self.per_check.items():
            lines.append(f"  {name:<10} precision {m['precision']:.3f} recall {m['recall']:.3f} "
                         f"faithful accepted {m['faithful_accepted']:.3f}")
        lines.append("recall per corruption:")
        for name, m in sorted(self.per_corruption.items()):
            lines.append(f"  {name:<10} {m['rejected']}/{m['n']}  caught by {m['caught_by']}")
        if self.suggested:
            lines.append(f"suggested thresholds: {self.suggested} -> verifier {self.suggested_verifier}")
        return "\n".join(lines)


def _replay(results: list[list[CheckResult]], thresholds: dict[str, float]) -> list[list[bool]]:
    """Pass/fail of each check per row under `thresholds` (by Thresholds field), from the recorded scores."""
    out = []
    for checks in results:
        row = []
        for c in checks:
            d = CHECKS.get(c.name)
            row.append(d.passes(c.score, thresholds[d.threshold]) if d and d.threshold else c.passed)
        out.append(row)
    return out


def _per_check(results, passes, unfaithful) -> dict[str, dict[str, float]]:
    names = [c.name for c in results[0]] if results else []
    return {name: prf([not p[k] for p in passes], unfaithful) for k, name in enumerate(names)}


def _per_corruption(rows, results, unfaithful) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row, checks, u in zip(rows, results, unfaithful):
        if not u:
            continue
        kind = str(row.get("corruption") or "unlabelled")
        m = out.setdefault(kind, {"n": 0, "rejected": 0, "caught_by": {}})
        m["n"] += 1
        m["rejected"] += not all(c.passed for c in checks)
        for c in checks:
            if not c.passed:
                m["caught_by"][c.name] = m["caught_by"].get(c.name, 0) + 1
    return out


def _sweep(spec: VerifierSpec, results, unfaithful, enabled: list[str]) -> tuple[dict, dict]:
    """One coordinate-descent round over each enabled check's grid, keeping the best verifier F1 (ties: keep
    the current value). Returns (sweeps per check, suggested thresholds)."""
    thr = spec.thresholds.model_dump()
    sweeps: dict[str, list[dict[str, float]]] = {}
    for name in enabled:
        d = CHECKS[name]
        if not d.threshold or not d.grid:
            continue
        rows, best = [], (prf_score(results, thr, unfaithful, enabled), thr[d.threshold])
        for value in d.grid:
            m = _verifier_metrics(results, {**thr, d.threshold: value}, unfaithful, enabled)
            rows.append({"value": value, **m})
            if m["f1"] > best[0] + 1e-9:
                best = (m["f1"], value)
        thr[d.threshold] = best[1]
        sweeps[name] = rows
    return sweeps, thr


def _verifier_metrics(results, thresholds, unfaithful, enabled) -> dict[str, float]:
    passes = _replay(results, thresholds)
    idx = [k for k, c in enumerate(results[0]) if c.name in enabled]
    return prf([not all(p[k] for k in idx) for p in passes], unfaithful)


def prf_score(results, thresholds, unfaithful, enabled) -> float:
    return _verifier_metrics(results, thresholds, unfaithful, enabled)["f1"]


def calibrate(labelled: str | Path | VerifierSpec = LABELLED, spec: VerifierSpec | list | None = None,
              labels: list[bool] | None = None, *, sweep: bool = True) -> CalibrationReport:
    """Measure the verifier on a labelled JSONL file and suggest thresholds.

    `calibrate(labelled_jsonl, spec)` is the main form; `calibrate(spec, pairs, labels)` (pairs of
    (source, rewrite), labels True = faithful) is accepted too, as rephrase/cli.py calls it. The report's
    `spec` carries the suggested thresholds when `sweep` is on.
    """
    if isinstance(labelled, VerifierSpec):  # the (spec, pairs, labels) form
        spec, pairs = labelled, spec
        if labels is None or len(labels) != len(pairs):
            raise ValueError("calibrate(spec, pairs, labels): labels must have one entry per pair")
        rows = [{"source": s, "rewrite": r, "faithful": bool(y), "_line": i + 1}
                for i, ((s, r), y) in enumerate(zip(pairs, labels))]
    else:
        rows = read_jsonl(labelled)
        for row in rows:
            row["faithful"] = _label(row, labelled)
    return _calibrate_rows(rows, spec or VerifierSpec(), sweep)


def _calibrate_rows(rows: list[dict[str, Any]], spec: VerifierSpec, sweep: bool) -> CalibrationReport:
    from rephrase.verify.verifier import Verifier
    enabled = list(spec.checks) + (["judge"] if spec.judge else [])
    # the embedding check is always measured, for the cosine-only baseline, even when it is not enabled
    eval_spec = spec if "embedding" in spec.checks else spec.model_copy(update={"checks": spec.checks + ["embedding"]})
    verdicts = Verifier(eval_spec).verify_batch([(r["source"], r["rewrite"]) for r in rows])
    results = [v.checks for v in verdicts]
    unfaithful = [not r["faithful"] for r in rows]
    thr = spec.thresholds.model_dump()
    cosine = [next(c.score for c in v.checks if c.name == "embedding") for v in verdicts]
    enabled_results = [[c for c in checks if c.name in enabled] for checks in results]
    combined = [sum(c.passed for c in checks) + (cos + 1) / 2.01 for checks, cos in zip(enabled_results, cosine)]
    report = CalibrationReport(
        n=len(rows), n_faithful=sum(r["faithful"] for r in rows),
        verifier=_verifier_metrics(results, thr, unfaithful, enabled),
        per_check=_per_check(results, _replay(results, thr), unfaithful),
        per_corruption=_per_corruption(rows, enabled_results, unfaithful),
        auroc_cosine=round(auroc(cosine, [not u for u in unfaithful]), 4),
        auroc_combined=round(auroc(combined, [not u for u in unfaithful]), 4),
        thresholds=thr, spec=spec,
        rows=[{"id": r.get("id", r["_line"]), "faithful": r["faithful"], "corruption": r.get("corruption"),
               **v.to_fidelity()} for r, v in zip(rows, verdicts)])
    if sweep:
        report.sweeps, suggested = _sweep(spec, results, unfaithful, enabled)
        report.suggested = {k: v for k, v in suggested.items() if not _same(v, thr[k])}
        report.suggested_verifier = _verifier_metrics(results, suggested, unfaithful, enabled)
        report.spec = spec.with_thresholds(**suggested)
    return report


def _same(a: float, b: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
