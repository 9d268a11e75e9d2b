"""Tasks: what the chunk-wise rewriting loop asks the model, and what it checks beyond the verifier.

The loop in generate.py is task-agnostic. A `Task` supplies the variants of a document, the chat messages for one
chunk (with the tail of the rewrite so far as context), the provenance hash of its prompt, the cleanup of a raw
completion, optional extra checks, and the output fields of a synthetic row. Knowledge rephrasing is the task
registered here; mathnotes registers its own (learning notes) and reuses the same loop.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from rephrase.styles import StyleBook, Variant, choose_variants

#: an extra check: (source chunk, rewrite) -> (name, score, passed, reason); mathnotes adds math-aware ones.
TaskCheck = Callable[[str, str], tuple[str, float, bool, str]]


class Task:
    """Base task. Subclasses set `name` (the schema's task column) and implement `variants` and `messages`."""
    name: str = ""
    template: str = ""            # everything in the prompt that is not the chunk, context or style
    checks: tuple[TaskCheck, ...] = ()
    #: keep_source_chunk may splice a source chunk into this task's output (not so where the source is in
    #: another language than the output, as in a translation)
    splice_source: bool = True

    def variants(self, doc: dict[str, Any], seed: int, n: int) -> list[Variant]:
        raise NotImplementedError

    def messages(self, variant: Variant, chunk: str, context: str, index: int, total: int) -> list[dict[str, str]]:
        raise NotImplementedError

    def prompt_sha(self, variant: Variant) -> str:
        """Provenance: sha256 of the template + style + perspective instructions (16 hex digits)."""
        h = hashlib.sha256()
        for part in (self.name, self.template, variant.style.instruction, variant.perspective.instruction):
            h.update(part.encode("utf-8") + b"\x00")
        return h.hexdigest()[:16]

    def clean(self, completion: str) -> str:
        """The rewrite inside a raw completion (chat models like to announce what they are about to do)."""
        return clean_completion(completion)

    def row_fields(self, variant: Variant) -> dict[str, Any]:
        return {"task": self.name, "style": variant.label}


# Labels only, not prose: "Here is ...:" counts when the colon ends its line or the line names the rewrite
# ("Here's a rewritten version: ..."); "Here are the three causes: famine, debt and pride." is content, kept.
_PREAMBLE = re.compile(r"\A\s*(?:sure[,!.]?\s*)?(?:here(?:'s| is| are)(?:[^\n:]{0,80}:[ \t]*(?:\n|\Z)|[^\n:]{0,60}"
                       r"(?:rewrit|version|passage|paraphras|text)[^\n:]{0,40}:)|(?:the )?rewritten (?:passage|text)"
                       r"\s*:|(?:rewrite|text to rewrite|passage|text)\s*:)\s*", re.I)
_FENCE = re.compile(r"\A\s*<<<\s*\n?(.*?)\n?\s*>>>\s*\Z", re.S)


def clean_completion(text: str) -> str:
    text = _PREAMBLE.sub("", text, count=1)
    m = _FENCE.match(text)
    if m:
        text = m.group(1)
    return text.strip()


_SYSTEM = ("You rewrite text faithfully in a requested style. Keep every fact, name, number, date, formula and "
           "piece of code exactly as in the source. Add nothing that is not in the source and leave nothing out. "
           "Reply with the rewritten text only.")
# Plain labels, no delimiters or position markers: small models echo whatever scaffolding the prompt shows.
_USER = ("{style} {perspective} Keep all facts, names and numbers exactly; do not add new information.\n\n"
         "{context}Text to rewrite:\n{chunk}")
_CONTEXT = "Your rewrite so far ends like this (continue after it, do not repeat it):\n{tail}\n\n"


@dataclass
class RephraseTask(Task):
    """Knowledge rephrasing (Kimi K2 section 2.2): style- and perspective-diverse faithful rewrites."""
    book: StyleBook = field(default_factory=StyleBook.load)
    name: str = "rephrase"
    template: str = _SYSTEM + "\x00" + _USER + "\x00" + _CONTEXT

    def variants(self, doc: dict[str, Any], seed: int, n: int) -> list[Variant]:
        return choose_variants(doc["id"], seed, n, self.book)

    def messages(self, variant: Variant, chunk: str, context: str, index: int, total: int) -> list[dict[str, str]]:
        user = _USER.format(
            style=variant.style.instruction, perspective=variant.perspective.instruction,
            context=_CONTEXT.format(tail=context) if context else "", chunk=chunk)
        return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


#: task name -> factory(spec) -> Task. Packages register their task here (mathnotes: "learning_note").
TASKS: dict[str, Callable[[Any], Task]] = {}


def _rephrase_task(spec: Any) -> Task:
    book = StyleBook.load(getattr(spec, "styles_file", None))
    return RephraseTask(book.select(getattr(spec, "styles", None), getattr(spec, "perspectives", None)))


TASKS["rephrase"] = _rephrase_task
