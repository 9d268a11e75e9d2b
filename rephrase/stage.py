"""The rewriting Stage: one engine + one verifier per worker (process or Ray actor), one input shard per unit.

`RewriteStage` is task-agnostic: the task (rephrase here, learning notes in mathnotes) comes from the registry
`rephrase.prompts.TASKS` by name, so another package reuses this stage and the loop with its own task.
`process(unit)` is a template: it reads the unit's documents (a slice of one document shard,
rephrase.run.plan_units), calls the hook `rewrite(docs) -> Rewritten` and writes, each atomically, the synthetic
rows (SYNTH_SCHEMA) and, beside them, the rejects (REJECT_SCHEMA: every rejected or failed variant with its
reasons) and any other side table the stage declares in `side_tables`; the driver assembles a shard from its units.
Its stats become the done-marker. A stage for another task (mathnotes) overrides `rewrite` only, building rows
with `row`/`reject_row`; `row_id` is the one id of a synthetic row.
A row that the yield policy shaped (a prefix, or source chunks spliced in) says so in `meta` (policy,
failed_chunk / source_chunks and source_spans, failed_reasons) and in `fidelity.reasons`.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from corpus.executor import Stage, Unit
from corpus.layout import REJECTS, meta_path
from corpus.schema import SCORES_TYPE, doc_id, scores_list, table_from_docs
from corpus.shards import read_shard, write_table
from rephrase.engines import make_engine
from rephrase.generate import Rewriter, VariantResult
from rephrase.prompts import TASKS, Task
from rephrase.stats import unit_stats
from rephrase.verify import Verifier

REJECT_SCHEMA = pa.schema([
    pa.field("parent_id", pa.string(), nullable=False),
    pa.field("task", pa.string()),
    pa.field("style", pa.string()),
    pa.field("prompt_sha", pa.string()),
    pa.field("status", pa.string()),                 # rejected (a chunk failed verification) | error
    pa.field("reasons", pa.list_(pa.string())),
    pa.field("chunk", pa.int32()),                   # index of the failing chunk (null: before any chunk)
    pa.field("attempts", pa.int32()),
    pa.field("source", pa.string()),                 # the failing chunk's source text (or the document's)
    pa.field("rewrite", pa.string()),                # the last attempt's rewrite of that chunk
    pa.field("scores", SCORES_TYPE),                 # [{name, value}] (corpus.schema)
    pa.field("engine", pa.string()),
    pa.field("model", pa.string()),
])


def side_path(output: str | Path, kind: str) -> Path:
    """Where a unit whose synthetic rows go to `output` writes its side table `kind` (rejects, routing)."""
    output = Path(output)
    return output.with_name(f"{output.stem}.{kind}.parquet")


def read_unit_docs(unit: Unit) -> list[dict[str, Any]]:
    """The documents of a unit: rows [start, stop) of its input shard."""
    table = read_shard(unit.inputs[0])
    start, stop = unit.params.get("start", 0), unit.params.get("stop", table.num_rows)
    return table.slice(start, max(0, stop - start)).to_pylist()


def rejects_path(output: str | Path) -> Path:
    """Where the rejects of the synthetic shard `output` go: `.k2forge/rejects/` of its folder (corpus.layout)."""
    output = Path(output)
    return meta_path(output.parent, REJECTS) / output.name


def row_id(r: VariantResult) -> str:
    """The id of the synthetic row of an accepted variant: a hash of its parent, task, variant and text."""
    return doc_id(f"{r.doc['id']}\x00{r.task}\x00{r.variant.label}\x00{r.text}")


@dataclass
class Rewritten:
    """What `RewriteStage.rewrite(docs)` makes of a unit's documents; process() writes it and counts it."""
    rows: list[dict[str, Any]]                   # synthetic rows (corpus.schema)
    rejects: list[dict[str, Any]]                # REJECT_SCHEMA rows
    results: list[VariantResult]                 # every variant, in the order the stats count them
    verify_calls: int = 0
    docs_skipped: int = 0                        # documents not rewritten (domain, routing)
    #: the side tables beyond rejects that the stage declares in `side_tables` (mathnotes: routing)
    side: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)     # more counters for the unit's stats
    unwritten_tasks: tuple[str, ...] = ()        # tasks whose accepted variants are not rows (rephrase.stats)


class RewriteStage(Stage):
    """Owns the engine and the verifier of one worker; process(unit) reads a unit's documents, calls the
    `rewrite(docs)` hook and writes what it returns (rows, rejects, side tables) with the unit's stats.
    Another task's stage overrides `rewrite` (and `setup`/`_forget` for what else its workers hold)."""

    name = "rephrase"
    #: side tables a unit writes beside its rows (side_path) and the driver assembles per shard, with schemas
    side_tables = {REJECTS: REJECT_SCHEMA}

    def __init__(self, spec: Any, task: str = "rephrase"):
        self.spec, self.task_name = spec, task
        self.name = task       # names the done-marker folder, so two tasks never share markers
        gpus = spec.engine.gpus()     # vllm: tensor x pipeline size; the Ray actor asks for that many
        self.resources = {"num_gpus": gpus} if gpus else {}
        self._forget()

    def _forget(self) -> None:
        """Drop what setup() builds (workers build their own)."""
        self._engine = self._verifier = self._task = self._loop = None

    def __getstate__(self) -> dict[str, Any]:
        # Only the spec travels to workers; each builds its own engine and verifier in setup().
        return {"spec": self.spec, "task_name": self.task_name, "name": self.name, "resources": self.resources}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._forget()

    def setup(self) -> None:
        if self._engine is not None:
            return
        self._task = self.build_task(self.task_name)
        self._engine = self.build_engine()
        self._verifier = self.build_verifier(self.spec.verifier)
        # One loop for the worker's lifetime: engines keep background tasks and clients bound to their loop.
        self._loop = asyncio.new_event_loop()

    def build_task(self, name: str) -> Task:
        if name not in TASKS:
            raise ValueError(f"unknown rewriting task {name!r}; registered: {', '.join(sorted(TASKS))}")
        return TASKS[name](self.spec)

    def build_engine(self):
        return make_engine(self.spec.engine)

    def build_verifier(self, spec: Any):
        return Verifier(spec)

    @property
    def engine(self):
        return self._engine

    @property
    def task(self) -> Task | None:
        return self._task

    @property
    def verifier(self):
        return self._verifier

    def close(self) -> None:
        """Release the engine and the worker's event loop (idempotent; workers that exit need not call it)."""
        if self._loop is None:
            return
        if self._engine is not None:
            self._loop.run_until_complete(self._engine.aclose())
        self._loop.close()
        self._forget()

    def set_spec(self, spec: Any) -> None:
        """Swap generation settings (styles, seed, tokens...) keeping the loaded engine and verifier."""
        self.spec = spec
        if self._task is not None:
            self._task = self.build_task(self.task_name)

    def rewriter(self, task: Task, verifier: Any) -> Rewriter:
        """The loop for `task` on this worker's engine, with the job's generation knobs."""
        return Rewriter(task, self._engine, verifier, self.spec)

    def run(self, coro: Any) -> Any:
        """Run a coroutine on this worker's event loop (the one its engine is bound to)."""
        return self._loop.run_until_complete(coro)

    def rewrite(self, docs: list[dict[str, Any]]) -> Rewritten:
        """Rewrite documents in memory: the shard path (process) and the service's synchronous endpoint both come
        through here. Documents outside the spec's domains are skipped."""
        self.setup()
        eligible = [d for d in docs if d["domain"] in self.spec.domains]
        rewriter = self.rewriter(self._task, self._verifier)
        results = self.run(rewriter.rewrite_all(eligible))
        return Rewritten(rows=[self.row(r, self._task) for r in results if r.status == "accepted"],
                         rejects=[self.reject_row(r, self._task) for r in results if r.status != "accepted"],
                         results=results, verify_calls=rewriter.batcher.calls, docs_skipped=len(docs) - len(eligible))

    def process(self, unit: Unit) -> dict[str, Any]:
        self.setup()
        docs = read_unit_docs(unit)
        t0, c0 = time.perf_counter(), time.process_time()
        out = self.rewrite(docs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        write_table(unit.output, table_from_docs(out.rows, synthetic=True))
        sides = {REJECTS: out.rejects, **out.side}
        for kind, schema in self.side_tables.items():
            write_table(side_path(unit.output, kind), pa.Table.from_pylist(sides[kind], schema=schema))
        stats = unit_stats(out.results, docs_in=len(docs), docs_skipped=out.docs_skipped, wall_s=wall, cpu_s=cpu,
                           gpus=self.resources.get("num_gpus", 0), unwritten_tasks=out.unwritten_tasks)
        stats.update(out.stats)
        stats.update(unit=unit.id, output=Path(unit.output).name, rows=len(out.rows), rejects=len(out.rejects),
                     verify_calls=out.verify_calls)
        return stats

    def row(self, r: VariantResult, task: Task) -> dict[str, Any]:
        """The synthetic row of an accepted variant of `task`."""
        scores: dict[str, float] = {}
        # A variant is as faithful as its worst kept rewrite; a failed chunk (dropped or replaced by its
        # source under the yield policy) is not in the text, so its scores are not the row's.
        for c in r.chunks:
            if not c.accepted:
                continue
            for k, v in c.scores.items():
                scores[k] = min(v, scores.get(k, v))
        meta = {"variant": r.variant.index, "chunks": r.n_chunks, "seed": self.spec.seed,
                "chunk_attempts": [c.attempts for c in r.chunks], **_policy_meta(r)}
        return {
            "id": row_id(r),
            "text": r.text, "domain": r.doc["domain"], "source": r.doc.get("source") or "",
            "lang": r.doc.get("lang") or "", "meta": json.dumps(meta, sort_keys=True),
            "parent_id": r.doc["id"], **task.row_fields(r.variant),
            "engine": self._engine.name, "model": self._engine.model, "prompt_sha": r.prompt_sha,
            "fidelity": {"accepted": True, "reasons": _policy_reasons(r), "scores": scores},
            "attempts": sum(c.attempts for c in r.chunks),
        }

    def reject_row(self, r: VariantResult, task: Task) -> dict[str, Any]:
        """The REJECT_SCHEMA row of a rejected or failed variant of `task`."""
        failed = [c for c in r.chunks if c.index == r.failed_chunk]
        last = failed[0] if failed else None
        return {
            "parent_id": r.doc["id"], "task": task.name,
            "style": task.row_fields(r.variant)["style"] if r.variant else None, "prompt_sha": r.prompt_sha or None,
            "status": r.status, "reasons": list(r.reasons),
            "chunk": r.failed_chunk, "attempts": last.attempts if last else 0,
            "source": last.source if last else (r.doc.get("text") or ""), "rewrite": last.rewrite if last else "",
            "scores": scores_list(last.scores if last else {}),
            "engine": self._engine.name, "model": self._engine.model,
        }


def _policy_meta(r) -> dict[str, Any]:
    """Provenance of a row the yield policy shaped (nothing for a fully rewritten one)."""
    if r.policy == "keep_prefix":
        return {"policy": "keep_prefix", "prefix_chunks": r.prefix_chunks, "failed_chunk": r.failed_chunk,
                "failed_reasons": list(r.reasons)}
    if r.policy == "keep_source_chunk":
        return {"policy": "keep_source_chunk", "source_chunks": list(r.source_chunks),
                "source_spans": [list(s) for s in r.source_spans], "failed_reasons": list(r.reasons)}
    return {}


def _policy_reasons(r) -> list[str]:
    """One line in `fidelity.reasons` saying what of an accepted row is not a verified rewrite."""
    if r.policy == "keep_prefix":
        return [f"keep_prefix: chunks 0-{r.prefix_chunks - 1} of {r.n_chunks} kept; chunk {r.failed_chunk} "
                f"failed verification"]
    if r.policy == "keep_source_chunk":
        return [f"keep_source_chunk: chunk(s) {', '.join(map(str, r.source_chunks))} of {r.n_chunks} are "
                f"source text"]
    return []
