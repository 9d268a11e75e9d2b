"""Statistics of a rewriting run: per unit (one input shard) and merged over the run.

Reasons are counted by category, the part before the first ':' of a reason string ("numbers: 3.5 missing" ->
"numbers"), so verifier checks, engine errors and truncations all become comparable rates. Cost is reported as
CPU-hours (or GPU-hours when the engine is on a GPU) per billion generated tokens, the number that decides
whether rephrasing a corpus ten times is affordable.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from rephrase.generate import VariantResult, reason_key


def unit_stats(results: Iterable[VariantResult], *, docs_in: int, docs_skipped: int, wall_s: float,
               cpu_s: float, gpus: float = 0.0) -> dict[str, Any]:
    """Counts for one unit; every field is additive so that `merge_stats` can sum units."""
    results = list(results)
    attempts_hist: Counter[str] = Counter()
    rejected_by: Counter[str] = Counter()
    failed_by: Counter[str] = Counter()
    status: Counter[str] = Counter(r.status for r in results)
    for r in results:
        for c in r.chunks:
            attempts_hist[str(c.attempts)] += 1
        if r.status != "accepted":
            rejected_by.update({reason_key(x) for x in r.reasons} or {"unknown"})
        failed_by.update(reason_key(x) for x in r.failed_attempt_reasons)
    accepted = [r for r in results if r.status == "accepted"]
    return {
        "docs_in": docs_in,
        "docs_skipped_domain": docs_skipped,
        "docs_with_output": len({r.doc["id"] for r in accepted}),
        "variants": len(results),
        "variants_accepted": status["accepted"],
        "variants_rejected": status["rejected"],
        "variants_error": status["error"],
        "chunks_in": sum(r.n_chunks for r in results if r.variant is not None),
        "chunks_out": sum(len(r.chunks) for r in accepted),
        "chunk_attempts": sum(c.attempts for r in results for c in r.chunks),
        "attempts_hist": dict(attempts_hist),
        "rejected_by_reason": dict(rejected_by),
        "failed_attempts_by_reason": dict(failed_by),
        "tokens_in": sum(r.prompt_tokens for r in results),
        "tokens_out": sum(r.completion_tokens for r in results),
        "tokens_out_accepted": sum(r.completion_tokens for r in accepted),
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "gpu_s": wall_s * gpus,
    }


_COUNTERS = ("attempts_hist", "rejected_by_reason", "failed_attempts_by_reason")


def merge_stats(units: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum unit stats and derive rates (acceptance by reason, tokens/s, cost per billion output tokens)."""
    units = list(units)
    total: dict[str, Any] = {k: Counter() for k in _COUNTERS}
    for u in units:
        for k, v in u.items():
            if k in _COUNTERS:
                total[k].update(v)
            elif isinstance(v, (int, float)):
                total[k] = total.get(k, 0) + v
    for k in _COUNTERS:
        total[k] = dict(sorted(total[k].items(), key=lambda kv: (len(kv[0]), kv[0])))
    total["units"] = len(units)
    return {**total, **_rates(total)}


def _rates(t: dict[str, Any]) -> dict[str, Any]:
    variants = t.get("variants", 0)
    attempts = t.get("chunk_attempts", 0)
    out_tok = t.get("tokens_out", 0)
    # Units run in parallel on several workers, so tokens/s is per worker-second of unit time.
    wall = t.get("wall_s", 0.0)
    billions = out_tok / 1e9
    return {
        "acceptance_rate": t.get("variants_accepted", 0) / variants if variants else None,
        "rejection_rate_by_reason": {k: v / variants for k, v in t["rejected_by_reason"].items()} if variants else {},
        "attempt_failure_rate_by_reason": ({k: v / attempts for k, v in t["failed_attempts_by_reason"].items()}
                                           if attempts else {}),
        "tokens_per_s": out_tok / wall if wall else None,
        "accepted_tokens_per_s": t.get("tokens_out_accepted", 0) / wall if wall else None,
        "cpu_hours_per_billion_output_tokens": (t.get("cpu_s", 0.0) / 3600 / billions) if billions else None,
        "gpu_hours_per_billion_output_tokens": ((t.get("gpu_s", 0.0) / 3600 / billions)
                                                if billions and t.get("gpu_s") else None),
    }


def format_summary(stats: dict[str, Any]) -> str:
    """A few human lines for the CLI."""
    acc = stats.get("acceptance_rate")
    tps = stats.get("tokens_per_s")
    lines = [
        f"documents: {stats.get('docs_in', 0)} in, {stats.get('docs_skipped_domain', 0)} skipped (domain), "
        f"{stats.get('docs_with_output', 0)} with output",
        f"variants: {stats.get('variants_accepted', 0)} accepted / {stats.get('variants', 0)} "
        f"({'n/a' if acc is None else f'{acc:.1%}'}); rejected by reason: {stats.get('rejected_by_reason', {})}",
        f"chunks: {stats.get('chunks_in', 0)} in, {stats.get('chunks_out', 0)} out; attempts: "
        f"{stats.get('attempts_hist', {})}",
        f"tokens: {stats.get('tokens_in', 0)} in, {stats.get('tokens_out', 0)} out"
        + ("" if tps is None else f" ({tps:.1f} tokens/s per worker)"),
    ]
    cost = stats.get("gpu_hours_per_billion_output_tokens") or stats.get("cpu_hours_per_billion_output_tokens")
    if cost:
        kind = "GPU" if stats.get("gpu_hours_per_billion_output_tokens") else "CPU"
        lines.append(f"cost: {cost:,.0f} {kind}-hours per billion output tokens")
    return "\n".join(lines)
