"""The rewriting Stage: one engine + one verifier per worker (process or Ray actor), one input shard per unit.

`RewriteStage` is task-agnostic: the task (rephrase here, learning notes in mathnotes) comes from the registry
`rephrase.prompts.TASKS` by name, so another package reuses this stage and the loop with its own task.
A unit reads its documents (a slice of one document shard, rephrase.run.plan_units) and writes, each atomically,
its synthetic rows (SYNTH_SCHEMA) and, beside them, its rejects (REJECT_SCHEMA: every rejected or failed variant
with its reasons); the driver assembles a shard from its units (`side_tables` names what to assemble). Its stats
become the done-marker.
A row that the yield policy shaped (a prefix, or source chunks spliced in) says so in `meta` (policy,
failed_chunk / source_chunks and source_spans, failed_reasons) and in `fidelity.reasons`.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from corpus.executor import Stage, Unit
from corpus.layout import REJECTS, meta_path
from corpus.schema import SCORES_TYPE, doc_id, scores_list, table_from_docs
from corpus.shards import read_shard, write_table

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


class RewriteStage(Stage):
    """Owns the engine and the verifier of one worker; process(unit) rewrites one shard."""

    name = "rephrase"
    #: side tables a unit writes beside its rows (side_path) and the driver assembles per shard, with schemas
    side_tables = {REJECTS: REJECT_SCHEMA}

    def __init__(self, spec: Any, task: str = "rephrase"):
        self.spec, self.task_name = spec, task
        self.name = task       # names the done-marker folder, so two tasks never share markers
        gpus = spec.engine.gpus()     # vllm: tensor x pipeline size; the Ray actor asks for that many
        self.resources = {"num_gpus": gpus} if gpus else {}
        self._engine = self._verifier = self._task = self._loop = None

    def __getstate__(self) -> dict[str, Any]:
        # Only the spec travels to workers; each builds its own engine and verifier in setup().
        return {"spec": self.spec, "task_name": self.task_name, "name": self.name, "resources": self.resources}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._engine = self._verifier = self._task = self._loop = None

    def setup(self) -> None:
        if self._engine is not None:
            return
        from rephrase.prompts import TASKS
        if self.task_name not in TASKS:
            raise ValueError(f"unknown rewriting task {self.task_name!r}; registered: {', '.join(sorted(TASKS))}")
        self._task = TASKS[self.task_name](self.spec)
        self._engine = self.build_engine()
        self._verifier = self.build_verifier()
        # One loop for the worker's lifetime: engines keep background tasks and clients bound to their loop.
        self._loop = asyncio.new_event_loop()

    def build_engine(self):
        from rephrase.engines import make_engine
        return make_engine(self.spec.engine)

    def build_verifier(self):
        from rephrase.verify import Verifier
        return Verifier(self.spec.verifier)

    @property
    def engine(self):
        return self._engine

    def close(self) -> None:
        """Release the engine and the worker's event loop (idempotent; workers that exit need not call it)."""
        if self._loop is None:
            return
        if self._engine is not None:
            self._loop.run_until_complete(self._engine.aclose())
        self._loop.close()
        self._engine = self._verifier = self._task = self._loop = None

    def set_spec(self, spec: Any) -> None:
        """Swap generation settings (styles, seed, tokens...) keeping the loaded engine and verifier."""
        from rephrase.prompts import TASKS
        self.spec = spec
        if self._task is not None:
            self._task = TASKS[self.task_name](spec)

    def rewrite_docs(self, docs: list[dict[str, Any]]) -> tuple[list[dict], list[dict], list, Any]:
        """Rewrite documents in memory: (synthetic rows, reject rows, raw results, the rewriter).

        The shard path (process) and the service's synchronous endpoint both come through here.
        """
        from rephrase.generate import Rewriter
        self.setup()
        rewriter = Rewriter(self._task, self._engine, self._verifier, self.spec.gen_config())
        results = self._loop.run_until_complete(rewriter.rewrite_all(docs))
        rows = [self._row(r) for r in results if r.status == "accepted"]
        rejects = [self._reject(r) for r in results if r.status != "accepted"]
        return rows, rejects, results, rewriter

    def process(self, unit: Unit) -> dict[str, Any]:
        from rephrase.stats import unit_stats
        self.setup()
        docs = read_unit_docs(unit)
        eligible = [d for d in docs if d["domain"] in self.spec.domains]
        t0, c0 = time.perf_counter(), time.process_time()
        rows, rejects, results, rewriter = self.rewrite_docs(eligible)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        write_table(unit.output, table_from_docs(rows, synthetic=True))
        write_table(side_path(unit.output, REJECTS), pa.Table.from_pylist(rejects, schema=REJECT_SCHEMA))
        stats = unit_stats(results, docs_in=len(docs), docs_skipped=len(docs) - len(eligible), wall_s=wall,
                           cpu_s=cpu, gpus=self.resources.get("num_gpus", 0))
        stats.update(unit=unit.id, output=Path(unit.output).name, rows=len(rows), rejects=len(rejects),
                     verify_calls=rewriter.batcher.calls)
        return stats

    def _row(self, r) -> dict[str, Any]:
        scores: dict[str, float] = {}
        # A variant is as faithful as its worst kept rewrite; a failed chunk (dropped or replaced by its
        # source under the yield policy) is not in the text, so its scores are not the row's.
        for c in r.chunks:
            if not c.accepted:
                continue
            for k, v in c.scores.items():
                scores[k] = min(v, scores.get(k, v))
        label = r.variant.label
        meta = {"variant": r.variant.index, "chunks": r.n_chunks, "seed": self.spec.seed,
                "chunk_attempts": [c.attempts for c in r.chunks], **_policy_meta(r)}
        return {
            "id": doc_id(f"{r.doc['id']}\x00{self.task_name}\x00{label}\x00{r.text}"),
            "text": r.text, "domain": r.doc["domain"], "source": r.doc.get("source") or "",
            "lang": r.doc.get("lang") or "", "meta": json.dumps(meta, sort_keys=True),
            "parent_id": r.doc["id"], **self._task.row_fields(r.variant),
            "engine": self._engine.name, "model": self._engine.model, "prompt_sha": r.prompt_sha,
            "fidelity": {"accepted": True, "reasons": _policy_reasons(r), "scores": scores},
            "attempts": sum(c.attempts for c in r.chunks),
        }

    def _reject(self, r) -> dict[str, Any]:
        failed = [c for c in r.chunks if c.index == r.failed_chunk]
        last = failed[0] if failed else None
        return {
            "parent_id": r.doc["id"], "task": self._task.name,
            "style": r.variant.label if r.variant else None, "prompt_sha": r.prompt_sha or None,
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
