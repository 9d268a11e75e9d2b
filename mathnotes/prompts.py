"""Prompts of the mathnotes tasks (SwallowMath-style learning notes, and translation of math into English).

The learning-note prompt follows SwallowMath's three steps (remove boilerplate, restore missing context,
rewrite the explanation as a concise step-by-step solution); the structured format is its v2 layout, Task
Description / Approach / Solution Steps / Final Answer with the answer in \\boxed{}. Continuation parts of a
chunked document get the tail of the note so far, like rephrase's chunk-wise loop. Labels are plain and there
are no delimiters or part numbers: small models echo whatever scaffolding a prompt shows.
"""
from __future__ import annotations

NOTE_SYSTEM = ("You are a careful mathematics tutor who turns math found on the web into clean learning notes. "
               "Keep every formula (in LaTeX), every number and the final answer exactly as in the source. "
               "Reply with the note only.")

STEPS = ("1. Remove boilerplate: site names, headers, footers, navigation, dates and times, user names, "
         "\"posted by\" lines, ads and links.\n"
         "2. If the question or the answer is incomplete, restore the missing context so that the note stands "
         "on its own.\n"
         "3. Rewrite the explanation as a concise, step-by-step solution.\n")

FORMATS = {
    "note": ("Learning note", "Write a free-form learning note. If the source states a final answer, end with "
                              "\"Final answer:\" followed by it."),
    "structured": ("Structured solution", "Write the note with exactly these four sections:\n"
                                          "**Task Description**: the problem, complete and self-contained.\n"
                                          "**Approach**: the method in one or two sentences.\n"
                                          "**Solution Steps**: numbered steps with the formulas.\n"
                                          "**Final Answer**: the final answer as \\boxed{...}."),
}

NOTE_USER = ("Rewrite the math text below as a learning note, in three steps:\n{steps}{format}\n"
             "Keep every formula and every number exactly as in the source.\n"
             "{context}Text:\n{chunk}")

NOTE_CONTEXT = ("This text continues a document; your note so far ends like this (continue after it, do not "
                "repeat it{structured}):\n{tail}\n\n")
STRUCTURED_CONTINUATION = ("; write its Solution Steps, and the Final Answer section with \\boxed{} only if "
                           "this part states the final answer")

TRANSLATE_SYSTEM = ("You translate mathematical texts into English. Copy every formula exactly, character for "
                    "character: everything between $...$, $$...$$, \\[...\\], \\(...\\) and "
                    "\\begin{...}...\\end{...}. Translate only the words and keep every number. "
                    "Reply with the English translation only.")
TRANSLATE_USER = "Translate this {language} text into English.\n\n{context}Text:\n{chunk}"
TRANSLATE_CONTEXT = "Your translation so far ends like this (continue after it, do not repeat it):\n{tail}\n\n"

LANGUAGE_NAMES = {
    "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "nl": "Dutch",
    "ru": "Russian", "pl": "Polish", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "tr": "Turkish",
    "sv": "Swedish", "cs": "Czech", "uk": "Ukrainian", "ar": "Arabic", "vi": "Vietnamese", "id": "Indonesian",
}


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)
