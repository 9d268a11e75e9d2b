"""run_mathnotes: the mathnotes job (JOB_KINDS contract), on rephrase's shared rewriting driver.

Same layout, resumability and bad-input behaviour as rephrase (rephrase.run.run_rewrite): one unit per input
shard writing `part-NNNNN.parquet`, and under `.k2forge/` (corpus.layout) `rejects/part-NNNNN.parquet`,
`routing/part-NNNNN.parquet`, done-markers in `done/mathnotes/`, `stats.json` with acceptance by reason and the
routing/task counters, `spec.yaml`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from corpus.events import OnEvent
from corpus.executor import Stage
from mathnotes.stage import MathNotesStage, routing_path
from rephrase.run import run_rewrite
from rephrase.stats import format_summary as base_summary


def run_mathnotes(spec: Any, on_event: OnEvent | None = None, *, stage: Stage | None = None) -> dict:
    """Run a mathnotes job. `stage` replaces the default MathNotesStage (fault injection in tests)."""
    result = run_rewrite(spec, stage or MathNotesStage(spec), "mathnotes", on_event)
    result["routing"] = [str(routing_path(p)) for p in result["outputs"]]
    return result


def format_summary(result: dict) -> str:
    """rephrase's summary lines plus the routing and per-task counters."""
    s = result["stats"]
    routes = {k[len("route_"):]: v for k, v in s.items() if k.startswith("route_")}
    langs = {k[len("lang_"):]: v for k, v in s.items() if k.startswith("lang_")}
    lines = [base_summary(s),
             f"routing: {routes}; languages: {langs}",
             f"translations: {s.get('translate_accepted', 0)} accepted / {s.get('translate_variants', 0)}; "
             f"notes: {s.get('note_accepted', 0)} accepted / {s.get('note_variants', 0)} "
             f"({s.get('notes_from_translations', 0)} from translations)",
             f"outputs: {len(result['outputs'])} shard(s) in "
             f"{Path(result['outputs'][0]).parent if result['outputs'] else '-'}; stats: {result['stats_path']}"]
    return "\n".join(lines)
