"""The yield policy on mathnotes' tasks: a translation never gets a source (foreign) chunk spliced in, a learning
note may; run-level yield counts only the rows the run writes. Uses rephrase's FAULT-INJECTING scripted engine
(chunk 1 answered with an unfaithful text 4x the source, rejected by the `length` check) and a verifier with the
`length` check only."""
import asyncio

import pytest

from mathnotes.tasks import LearningNoteTask, TranslateTask
from rephrase.generate import GenerationSpec, Rewriter
from rephrase.stats import merge_stats, unit_stats
from rephrase.verify import Verifier, VerifierSpec
from tests.rephrase.scripted_engine import ScriptedEngine, fail_chunks

FR = ["Le triangle a des côtés de 3, 4 et 5 centimètres.", "Son aire vaut donc 6 centimètres carrés."]
EN = ["The triangle has sides of 3, 4 and 5 centimetres.", "Its area is therefore 6 square centimetres."]
DOC = {"id": "tri", "domain": "math", "lang": "fr", "text": "\n\n".join(FR), "_mathnotes": {"lang": "fr"}}


def rewrite(task, policy: str):
    engine = ScriptedEngine({"tri": EN}, fail_chunks(1))
    cfg = GenerationSpec(attempts=1, chunk_target_tokens=8, chunk_max_tokens=12, max_new_tokens=200,
                         on_chunk_failure=policy)
    verifier = Verifier(VerifierSpec(checks=["length"]))
    return asyncio.run(Rewriter(task, engine, verifier, cfg).rewrite_all([DOC]))[0]


def test_translation_is_never_spliced_with_its_foreign_source():
    res = rewrite(TranslateTask(), "keep_source_chunk")
    assert res.n_chunks == 2 and res.status == "rejected" and res.failed_chunk == 1
    prefix = rewrite(TranslateTask(), "keep_prefix")
    assert prefix.status == "accepted" and prefix.text == EN[0] and prefix.policy == "keep_prefix"


def test_learning_note_may_splice_its_source_chunk():
    res = rewrite(LearningNoteTask(), "keep_source_chunk")
    assert res.status == "accepted" and res.text == EN[0] + "\n\n" + FR[1] and res.source_chunks == [1]


@pytest.mark.parametrize("keep_translation", [True, False])
def test_run_yield_counts_only_written_rows(keep_translation):
    tr = rewrite(TranslateTask(), "keep_prefix")
    note_doc = {**DOC, "text": tr.text, "lang": "en"}
    note = asyncio.run(Rewriter(LearningNoteTask(), ScriptedEngine({"tri": [EN[0]]}, fail_chunks()),
                                Verifier(VerifierSpec(checks=["length"])), GenerationSpec())
                       .rewrite_all([note_doc]))[0]
    assert note.status == "accepted"
    st = merge_stats([unit_stats([tr, note], docs_in=1, docs_skipped=0, wall_s=1, cpu_s=1,
                                 unwritten_tasks=() if keep_translation else ("translate",))])
    n = len(EN[0].split())
    src = sum(len(p.split()) for p in FR)
    assert st["source_tokens"] == src, "the run's source is the French document, once"
    assert st["source_tokens_by_task"] == {"translate": src, "learning_note": n}
    assert st["yield_by_task"] == {"translate": n / src, "learning_note": 1.0}
    assert st["synthetic_tokens"] == (2 * n if keep_translation else n)
    assert st["yield"] == st["synthetic_tokens"] / src
