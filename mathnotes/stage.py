"""MathNotesStage: rephrase's RewriteStage with routing, translation and learning notes, run by rephrase's loop.

Per unit (one input shard): route every document (mathnotes.routing), then run rephrase's `Rewriter` for the
"learning_note" task on English documents and, at the same time, for the "translate" task on the others; each
accepted translation then goes through the learning-note Rewriter as an English document (its parent stays the
original document). Nothing here generates or verifies by itself: the loop, the chunking, the retries and the
verifier batching are rephrase's. The unit writes, each atomically: synthetic rows (translations with task
"translate", notes with task "learning_note", `lang` "en" and the source language in `meta.source_lang`), the
rejects (with the task of the failing step) and the routing decisions, beside its rows (rephrase.stage.side_path);
the driver assembles them per shard into `.k2forge/rejects/` and `.k2forge/routing/part-NNNNN.parquet`.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

import mathnotes.checks  # noqa: F401  (workers unpickling this stage get the math checks registered)
import mathnotes.tasks  # noqa: F401  (and the tasks)
from corpus.executor import Unit
from corpus.schema import doc_id, table_from_docs
from corpus.layout import REJECTS, ROUTING, meta_path
from corpus.shards import write_table
from mathnotes.routing import ROUTING_SCHEMA, Route, route, routing_stats
from rephrase.stage import REJECT_SCHEMA, RewriteStage, read_unit_docs, side_path


def routing_path(output: str | Path) -> Path:
    """Where the routing decisions of the synthetic shard `output` go: `.k2forge/routing/` of its folder."""
    output = Path(output)
    return meta_path(output.parent, ROUTING) / output.name


class MathNotesStage(RewriteStage):
    """One engine and two verifiers (notes, translations) per worker; process(unit) handles one shard."""

    name = "mathnotes"
    side_tables = {REJECTS: REJECT_SCHEMA, ROUTING: ROUTING_SCHEMA}

    def __init__(self, spec: Any):
        super().__init__(spec, "learning_note")
        self.name = "mathnotes"        # the done-marker folder
        self._tr_task = self._tr_verifier = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._tr_task = self._tr_verifier = None

    def setup(self) -> None:
        if self._engine is not None:
            return
        super().setup()                # engine, the learning-note task and its verifier, the event loop
        from rephrase.prompts import TASKS
        from rephrase.verify import Verifier
        self._tr_task = TASKS["translate"](self.spec)
        self._tr_verifier = Verifier(self.spec.translate_verifier)

    def close(self) -> None:
        super().close()                # engine and event loop
        self._tr_task = self._tr_verifier = None

    def process(self, unit: Unit) -> dict[str, Any]:
        from rephrase.stats import unit_stats
        self.setup()
        docs = read_unit_docs(unit)
        routes = [route(d, self.spec) for d in docs]
        t0, c0 = time.perf_counter(), time.process_time()
        notes, translations, calls = self._loop.run_until_complete(self._rewrite(docs, routes))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        by_id = {r.id: r for r in routes}
        rows, rejects = [], []
        for task, results in (("translate", translations), ("learning_note", notes)):
            for r in results:
                if r.status == "accepted":
                    if task == "learning_note" or self.spec.keep_translation:
                        rows.append(self._math_row(r, task, by_id[r.doc["id"]]))
                else:
                    rejects.append({**self._reject(r), "task": task,
                                    "style": r.variant.style.name if r.variant else None})
        write_table(unit.output, table_from_docs(rows, synthetic=True))
        write_table(side_path(unit.output, REJECTS), pa.Table.from_pylist(rejects, schema=REJECT_SCHEMA))
        write_table(side_path(unit.output, ROUTING), pa.Table.from_pylist([r.row() for r in routes],
                                                                          schema=ROUTING_SCHEMA))
        routed = sum(r.routed for r in routes)
        # translations come first, so a document's run-level source tokens are its own text's, not its translation's
        stats = unit_stats(translations + notes, docs_in=len(docs), docs_skipped=len(docs) - routed, wall_s=wall,
                           cpu_s=cpu, gpus=self.resources.get("num_gpus", 0),
                           unwritten_tasks=() if self.spec.keep_translation else ("translate",))
        stats.update(routing_stats(routes), **_task_counts(translations, notes))
        stats.update(unit=unit.id, output=Path(unit.output).name, rows=len(rows), rejects=len(rejects),
                     verify_calls=calls)
        return stats

    async def _rewrite(self, docs: list[dict], routes: list[Route]) -> tuple[list, list, int]:
        """Notes of English documents and translations of the others concurrently, then notes of translations."""
        from rephrase.generate import Rewriter
        cfg = self.spec.gen_config()
        notes_rw = Rewriter(self._task, self._engine, self._verifier, cfg)
        trans_rw = Rewriter(self._tr_task, self._engine, self._tr_verifier, cfg)
        english = [d for d, r in zip(docs, routes) if r.plan == "note"]
        foreign = [{**d, "_mathnotes": {"lang": r.lang}} for d, r in zip(docs, routes)
                   if r.plan.startswith("translate")]
        notes, translations = await asyncio.gather(notes_rw.rewrite_all(english), trans_rw.rewrite_all(foreign))
        if self.spec.note_after_translate:
            translated = [{**t.doc, "text": t.text, "lang": "en",
                           "_mathnotes": {**t.doc["_mathnotes"], "translation_id": self._row_id(t, "translate")}}
                          for t in translations if t.status == "accepted"]
            notes = notes + await notes_rw.rewrite_all(translated)
        return notes, translations, notes_rw.batcher.calls + trans_rw.batcher.calls

    def _row_id(self, r, task: str) -> str:
        return doc_id(f"{r.doc['id']}\x00{task}\x00{r.variant.label}\x00{r.text}")

    def _math_row(self, r, task: str, rt: Route) -> dict[str, Any]:
        """rephrase's synthetic row, with the right task, English `lang`, and routing facts in `meta`."""
        row = self._row(r)
        info = r.doc.get("_mathnotes") or {}
        meta = json.loads(row["meta"])
        meta.update(source_lang=rt.lang, route=rt.decision, format=self.spec.format if task == "learning_note"
                    else None)
        if rt.math_score is not None:
            meta["math_score"] = round(rt.math_score, 4)
        if "translation_id" in info:
            meta["translation_id"] = info["translation_id"]
        row.update(id=self._row_id(r, task), task=task, style=r.variant.style.name, lang="en",
                   meta=json.dumps({k: v for k, v in meta.items() if v is not None}, sort_keys=True))
        return row


def _task_counts(translations: list, notes: list) -> dict[str, int]:
    via = [n for n in notes if "translation_id" in (n.doc.get("_mathnotes") or {})]
    return {"translate_variants": len(translations),
            "translate_accepted": sum(t.status == "accepted" for t in translations),
            "note_variants": len(notes), "note_accepted": sum(n.status == "accepted" for n in notes),
            "notes_from_translations": len(via),
            "notes_from_translations_accepted": sum(n.status == "accepted" for n in via)}
