"""Bundled sample corpus: 41 short original documents over the four domains, written for demos and tests.

`knowledge.jsonl` (fact-dense encyclopedia-style articles, several multi-paragraph, for rephrasing and fact
checks), `math.jsonl` (LaTeX with `$..$`, `$$..$$` and `align`; some wrapped in forum/blog boilerplate; French,
German and Spanish problems; one fragment missing its question), `code.jsonl` and `web.jsonl`. Planted on purpose:
near-duplicates (`kn-curie-copy`, `math-quadratic-forum-copy`, `web-recipe-soup-copy` are light edits of other
documents) and one exact duplicate (`web-wifi-howto-syndicated`). Fields: id, text, domain, source, lang.
`mixture.yaml` is the demo's mixture spec over the ingested and deduplicated samples.
"""
from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent
DOMAIN_FILES = ("code.jsonl", "knowledge.jsonl", "math.jsonl", "web.jsonl")


def sample_files() -> list[Path]:
    """The bundled JSONL files, one per domain."""
    return [SAMPLES_DIR / name for name in DOMAIN_FILES]
