"""Statistics of a rewriting run: per unit (one input shard) and merged over the run.

Reasons are counted by category, the part before the first ':' of a reason string ("numbers: 3.5 missing" ->
"numbers"), so verifier checks, engine errors and truncations all become comparable rates. Cost is reported as
CPU-hours (or GPU-hours when the engine is on a GPU) per billion generated tokens, the number that decides
whether rephrasing a corpus ten times is affordable.

Yield is accepted synthetic tokens / source tokens, both counted by the engine's tokenizer (not words):
- `yield` (per run): tokens of the accepted outputs the run writes, over the source tokens of the documents it
  rewrote (each document once, skipped-by-domain documents excluded), so with N variants a perfect run of
  same-length rewrites yields about N;
- `yield_by_task`: the same per task (each document once per task; a learning note of a translation has the
  translation as its source);
- `yield_by_style`: a style's accepted tokens over the source tokens of the variants drawn in that style (a
  document counted once per variant), comparable between styles however often each was drawn.
Source chunks spliced in by `keep_source_chunk` are never synthetic: they are counted apart
(`spliced_source_tokens`) and excluded from every yield.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from rephrase.generate import VariantResult, reason_key


def unit_stats(results: Iterable[VariantResult], *, docs_in: int, docs_skipped: int, wall_s: float,
               cpu_s: float, gpus: float = 0.0, unwritten_tasks: Iterable[str] = ()) -> dict[str, Any]:
    """Counts for one unit; every field is additive so that `merge_stats` can sum units.

    `unwritten_tasks`: tasks whose accepted outputs are not written as rows (mathnotes without
    keep_translation); their tokens count in their task's and style's yield but not in the run's.
    """
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
    prefix = [r for r in accepted if r.policy == "keep_prefix"]
    return {
        "docs_in": docs_in,
        "docs_skipped_domain": docs_skipped,
        "docs_with_output": len({r.doc["id"] for r in accepted}),
        "variants": len(results),
        "variants_accepted": status["accepted"],
        "variants_rejected": status["rejected"],
        "variants_error": status["error"],
        "variants_prefix": len(prefix),
        "variants_source_spliced": sum(r.policy == "keep_source_chunk" for r in accepted),
        "chunks_in": sum(r.n_chunks for r in results if r.variant is not None),
        "chunks_out": sum(c.accepted for r in accepted for c in r.chunks),
        "chunks_dropped_prefix": sum(r.n_chunks - (r.prefix_chunks or 0) for r in prefix),
        "chunks_source_spliced": sum(len(r.source_chunks) for r in accepted),
        "chunk_attempts": sum(c.attempts for r in results for c in r.chunks),
        "attempts_hist": dict(attempts_hist),
        "rejected_by_reason": dict(rejected_by),
        "failed_attempts_by_reason": dict(failed_by),
        "tokens_in": sum(r.prompt_tokens for r in results),
        "tokens_out": sum(r.completion_tokens for r in results),
        "tokens_out_accepted": sum(r.completion_tokens for r in accepted),
        **_yield_counts(results, set(unwritten_tasks)),
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "gpu_s": wall_s * gpus,
    }


def _yield_counts(results: list[VariantResult], unwritten: set[str]) -> dict[str, Any]:
    """Source, synthetic and spliced engine tokens: for the run, by task and by style (see the module doc)."""
    run_src: dict[str, int] = {}
    task_src: dict[tuple[str, str], int] = {}
    style_src: Counter[str] = Counter()
    task_syn: Counter[str] = Counter()
    style_syn: Counter[str] = Counter()
    syn = spliced = 0
    for r in results:
        # A document is the run's source once, even when a later task (a note of its translation) sees it again.
        run_src.setdefault(r.doc["id"], r.source_tokens)
        if r.variant is None:
            continue
        task_src.setdefault((r.task, r.doc["id"]), r.source_tokens)
        style_src[r.variant.style.name] += r.source_tokens
        if r.status != "accepted":
            continue
        task_syn[r.task] += r.synthetic_tokens
        style_syn[r.variant.style.name] += r.synthetic_tokens
        if r.task not in unwritten:
            syn += r.synthetic_tokens
            spliced += r.spliced_tokens
    by_task: Counter[str] = Counter()
    for (task, _), n in task_src.items():
        by_task[task] += n
    return {"source_tokens": sum(run_src.values()), "synthetic_tokens": syn, "spliced_source_tokens": spliced,
            "source_tokens_by_task": dict(by_task), "synthetic_tokens_by_task": dict(task_syn),
            "source_tokens_by_style": dict(style_src), "synthetic_tokens_by_style": dict(style_syn)}


_COUNTERS = ("attempts_hist", "rejected_by_reason", "failed_attempts_by_reason", "source_tokens_by_task",
             "synthetic_tokens_by_task", "source_tokens_by_style", "synthetic_tokens_by_style")


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
    src = t.get("source_tokens", 0)
    return {
        "yield": t.get("synthetic_tokens", 0) / src if src else None,
        "yield_by_task": _ratios(t["synthetic_tokens_by_task"], t["source_tokens_by_task"]),
        "yield_by_style": _ratios(t["synthetic_tokens_by_style"], t["source_tokens_by_style"]),
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


def _ratios(num: dict[str, int], den: dict[str, int]) -> dict[str, float]:
    return {k: num.get(k, 0) / v for k, v in den.items() if v}


def _fmt_yields(ys: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in ys.items()) or "-"


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
        _yield_line(stats),
    ]
    if stats.get("variants_prefix") or stats.get("variants_source_spliced"):
        lines.append(f"yield policy: {stats.get('variants_prefix', 0)} variant(s) kept as a prefix "
                     f"({stats.get('chunks_dropped_prefix', 0)} chunk(s) dropped), "
                     f"{stats.get('variants_source_spliced', 0)} with source chunks spliced in "
                     f"({stats.get('chunks_source_spliced', 0)} chunk(s))")
    cost = stats.get("gpu_hours_per_billion_output_tokens") or stats.get("cpu_hours_per_billion_output_tokens")
    if cost:
        kind = "GPU" if stats.get("gpu_hours_per_billion_output_tokens") else "CPU"
        lines.append(f"cost: {cost:,.0f} {kind}-hours per billion output tokens")
    return "\n".join(lines)


def _yield_line(stats: dict[str, Any]) -> str:
    y = stats.get("yield")
    spliced = stats.get("spliced_source_tokens", 0)
    return (f"yield: {'n/a' if y is None else f'{y:.2f}'} accepted synthetic tokens per source token "
            f"({stats.get('synthetic_tokens', 0)} / {stats.get('source_tokens', 0)} engine tokens"
            + (f"; {spliced} spliced source tokens not counted" if spliced else "") + "); "
            f"by task: {_fmt_yields(stats.get('yield_by_task') or {})}; "
            f"by style: {_fmt_yields(stats.get('yield_by_style') or {})}")
