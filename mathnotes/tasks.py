"""The mathnotes tasks, registered in rephrase's task registry so that rephrase's chunk-wise loop runs them.

- "learning_note" (`LearningNoteTask`): one variant per document, in the spec's format (note | structured);
  the `style` column holds the format.
- "translate" (`TranslateTask`): one variant per document whose Style carries the source language (detected by
  the router and passed in the document's `_mathnotes` field), so the prompt can name it; the `style` column
  holds "fr->en".
The math-aware checks run inside the verifier (mathnotes.checks registers them); the tasks add none of their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mathnotes import prompts
from rephrase.prompts import TASKS, Task
from rephrase.styles import Style, Variant

TUTOR = Style("tutor", "Math tutor", "")


def format_style(fmt: str) -> Style:
    if fmt not in prompts.FORMATS:
        raise ValueError(f"unknown learning-note format {fmt!r}, expected one of {', '.join(prompts.FORMATS)}")
    description, instruction = prompts.FORMATS[fmt]
    return Style(fmt, description, instruction)


@dataclass
class LearningNoteTask(Task):
    """SwallowMath learning notes: remove boilerplate, restore context, step-by-step solution."""
    fmt: str = "note"
    name: str = "learning_note"
    template: str = "\x00".join([prompts.NOTE_SYSTEM, prompts.STEPS, prompts.NOTE_USER, prompts.NOTE_CONTEXT,
                                 prompts.STRUCTURED_CONTINUATION])

    def variants(self, doc: dict[str, Any], seed: int, n: int) -> list[Variant]:
        return [Variant(format_style(self.fmt), TUTOR, 0)]

    def messages(self, variant: Variant, chunk: str, context: str, index: int, total: int) -> list[dict[str, str]]:
        structured = variant.style.name == "structured"
        ctx = prompts.NOTE_CONTEXT.format(tail=context, structured=prompts.STRUCTURED_CONTINUATION
                                          if structured else "") if context else ""
        user = prompts.NOTE_USER.format(steps=prompts.STEPS, format=variant.style.instruction, context=ctx,
                                        chunk=chunk)
        return [{"role": "system", "content": prompts.NOTE_SYSTEM}, {"role": "user", "content": user}]

    def row_fields(self, variant: Variant) -> dict[str, Any]:
        return {"task": self.name, "style": variant.style.name}


@dataclass
class TranslateTask(Task):
    """Translation of non-English math into English, formulas verbatim."""
    name: str = "translate"
    splice_source = False          # a French chunk inside an English translation is not a translation
    template: str = "\x00".join([prompts.TRANSLATE_SYSTEM, prompts.TRANSLATE_USER, prompts.TRANSLATE_CONTEXT])

    def variants(self, doc: dict[str, Any], seed: int, n: int) -> list[Variant]:
        lang = (doc.get("_mathnotes") or {}).get("lang") or doc.get("lang") or "und"
        style = Style(f"{lang}->en", f"{prompts.language_name(lang)} to English",
                      f"Translate this {prompts.language_name(lang)} text into English.")
        return [Variant(style, TUTOR, 0)]

    def messages(self, variant: Variant, chunk: str, context: str, index: int, total: int) -> list[dict[str, str]]:
        language = variant.style.description.split(" to ")[0]
        user = prompts.TRANSLATE_USER.format(
            language=language, context=prompts.TRANSLATE_CONTEXT.format(tail=context) if context else "",
            chunk=chunk)
        return [{"role": "system", "content": prompts.TRANSLATE_SYSTEM}, {"role": "user", "content": user}]

    def row_fields(self, variant: Variant) -> dict[str, Any]:
        return {"task": self.name, "style": variant.style.name}


def _note_task(spec: Any) -> Task:
    return LearningNoteTask(fmt=getattr(spec, "format", "note"))


def _translate_task(spec: Any) -> Task:
    return TranslateTask()


TASKS["learning_note"] = _note_task
TASKS["translate"] = _translate_task
