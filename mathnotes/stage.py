"""MathNotesStage: rephrase's RewriteStage with routing, translation and learning notes, run by rephrase's loop.

Per unit (one input shard): route every document (mathnotes.routing), then run rephrase's `Rewriter` for the
"learning_note" task on English documents and, at the same time, for the "translate" task on the others; each
accepted translation then goes through the learning-note Rewriter as an English document (its parent stays the
original document). Nothing here generates or verifies by itself: the loop, the chunking, the retries and the
verifier batching are rephrase's, and so is process(): MathNotesStage overrides only RewriteStage's `rewrite(docs)`
hook, and its rows and ids are RewriteStage.row's and rephrase.stage.row_id. The unit writes, each atomically:
synthetic rows (translations with task "translate", notes with task "learning_note", `lang` "en" and the source
language in `meta.source_lang`), the rejects (with the task of the failing step) and the routing decisions, beside
its rows (rephrase.stage.side_path); the driver assembles them per shard into `.k2forge/rejects/` and
`.k2forge/routing/part-NNNNN.parquet`.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import mathnotes.checks  # noqa: F401  (workers unpickling this stage get the math checks registered)
import mathnotes.tasks  # noqa: F401  (and the tasks)
from corpus.layout import REJECTS, ROUTING, meta_path
from mathnotes.routing import ROUTING_SCHEMA, Route, route, routing_stats
from rephrase.prompts import Task
from rephrase.stage import REJECT_SCHEMA, RewriteStage, Rewritten, row_id


def routing_path(output: str | Path) -> Path:
    """Where the routing decisions of the synthetic shard `output` go: `.k2forge/routing/` of its folder."""
    output = Path(output)
    return meta_path(output.parent, ROUTING) / output.name


class MathNotesStage(RewriteStage):
    """One engine and two verifiers (notes, translations) per worker; its rewrite(docs) routes, translates and
    writes notes, and RewriteStage.process writes the result of one shard's unit."""

    name = "mathnotes"
    side_tables = {REJECTS: REJECT_SCHEMA, ROUTING: ROUTING_SCHEMA}

    def __init__(self, spec: Any):
        super().__init__(spec, "learning_note")
        self.name = "mathnotes"        # the done-marker folder

    def _forget(self) -> None:
        super()._forget()
        self._tr_task = self._tr_verifier = None

    def setup(self) -> None:
        if self.engine is not None:
            return
        super().setup()                # engine, the learning-note task and its verifier, the event loop
        self._tr_task = self.build_task("translate")
        self._tr_verifier = self.build_verifier(self.spec.translate_verifier)

    def rewrite(self, docs: list[dict[str, Any]]) -> Rewritten:
        self.setup()
        routes = [route(d, self.spec) for d in docs]
        notes, translations, calls = self.run(self._rewrite(docs, routes))
        by_id = {r.id: r for r in routes}
        rows, rejects = [], []
        for task, results in ((self._tr_task, translations), (self.task, notes)):
            for r in results:
                if r.status != "accepted":
                    rejects.append(self.reject_row(r, task))
                elif task is self.task or self.spec.keep_translation:
                    rows.append(self._math_row(r, task, by_id[r.doc["id"]]))
        # translations come first, so a document's run-level source tokens are its own text's, not its translation's
        return Rewritten(rows, rejects, translations + notes, verify_calls=calls,
                         docs_skipped=len(docs) - sum(r.routed for r in routes),
                         side={ROUTING: [r.row() for r in routes]},
                         stats={**routing_stats(routes), **_task_counts(translations, notes)},
                         unwritten_tasks=() if self.spec.keep_translation else ("translate",))

    async def _rewrite(self, docs: list[dict], routes: list[Route]) -> tuple[list, list, int]:
        """Notes of English documents and translations of the others concurrently, then notes of translations."""
        notes_rw = self.rewriter(self.task, self.verifier)
        trans_rw = self.rewriter(self._tr_task, self._tr_verifier)
        english = [d for d, r in zip(docs, routes) if r.plan == "note"]
        foreign = [{**d, "_mathnotes": {"lang": r.lang}} for d, r in zip(docs, routes)
                   if r.plan.startswith("translate")]
        notes, translations = await asyncio.gather(notes_rw.rewrite_all(english), trans_rw.rewrite_all(foreign))
        if self.spec.note_after_translate:
            translated = [{**t.doc, "text": t.text, "lang": "en",
                           "_mathnotes": {**t.doc["_mathnotes"], "translation_id": row_id(t)}}
                          for t in translations if t.status == "accepted"]
            notes = notes + await notes_rw.rewrite_all(translated)
        return notes, translations, notes_rw.batcher.calls + trans_rw.batcher.calls

    def _math_row(self, r, task: Task, rt: Route) -> dict[str, Any]:
        """rephrase's synthetic row, with English `lang` and routing facts in `meta`."""
        row = self.row(r, task)
        info = r.doc.get("_mathnotes") or {}
        meta = json.loads(row["meta"])
        meta.update(source_lang=rt.lang, route=rt.decision, format=self.spec.format if task is self.task else None)
        if rt.math_score is not None:
            meta["math_score"] = round(rt.math_score, 4)
        if "translation_id" in info:
            meta["translation_id"] = info["translation_id"]
        row.update(lang="en", meta=json.dumps({k: v for k, v in meta.items() if v is not None}, sort_keys=True))
        return row


def _task_counts(translations: list, notes: list) -> dict[str, int]:
    via = [n for n in notes if "translation_id" in (n.doc.get("_mathnotes") or {})]
    return {"translate_variants": len(translations),
            "translate_accepted": sum(t.status == "accepted" for t in translations),
            "note_variants": len(notes), "note_accepted": sum(n.status == "accepted" for n in notes),
            "notes_from_translations": len(via),
            "notes_from_translations_accepted": sum(n.status == "accepted" for n in via)}
