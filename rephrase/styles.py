"""Rewriting styles and narrator perspectives as data, and the seeded per-document choice of variants.

The package ships `styles.yaml`; a user file with the same layout (`styles:` / `perspectives:` mappings of
name -> {description, instruction}) adds entries or overrides them by name. A document gets N distinct
(style, perspective) variants drawn by a generator seeded with hash(seed, doc id), so a rerun, another worker
or another machine draws exactly the same variants for the same document.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpus.spec import read_yaml_mapping

PACKAGE_STYLES = Path(__file__).with_name("styles.yaml")


class StylesError(ValueError):
    """A styles file or a style selection is invalid; the message names the file and the entry."""


@dataclass(frozen=True)
class Style:
    """One style or one perspective: a name, a short description, and the instruction put into the prompt."""
    name: str
    description: str
    instruction: str


@dataclass(frozen=True)
class Variant:
    """One (style, perspective) pair chosen for a document; `index` is its rank among the document's variants."""
    style: Style
    perspective: Style
    index: int = 0

    @property
    def label(self) -> str:
        """The value stored in the `style` column of synthetic rows."""
        return f"{self.style.name}/{self.perspective.name}"


@dataclass
class StyleBook:
    styles: dict[str, Style]
    perspectives: dict[str, Style]

    @classmethod
    def load(cls, styles_file: str | Path | None = None) -> "StyleBook":
        """The package styles, with the entries of `styles_file` (if given) added or overriding by name."""
        styles, perspectives = _package_entries()
        book = cls(dict(styles), dict(perspectives))  # copies: the cached package entries stay untouched
        if styles_file is not None:
            styles, perspectives = _read_file(Path(styles_file))
            book.styles.update(styles)
            book.perspectives.update(perspectives)
        return book

    def select(self, styles: list[str] | None = None, perspectives: list[str] | None = None) -> "StyleBook":
        """A book restricted to the named entries (None = all); unknown names are an error listing the known."""
        return StyleBook(_pick(self.styles, styles, "style"), _pick(self.perspectives, perspectives, "perspective"))

    def pairs(self) -> list[tuple[Style, Style]]:
        return [(s, p) for s, p in itertools.product(self.styles.values(), self.perspectives.values())]


def _pick(entries: dict[str, Style], names: list[str] | None, what: str) -> dict[str, Style]:
    if not names:
        return dict(entries)
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise StylesError(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(sorted(entries))}")
    return {n: entries[n] for n in dict.fromkeys(names)}


@functools.lru_cache(maxsize=1)
def _package_entries() -> tuple[dict[str, Style], dict[str, Style]]:
    """The packaged styles.yaml, parsed once per process (every spec validation consults it)."""
    return _read_file(PACKAGE_STYLES)


def _read_file(path: Path) -> tuple[dict[str, Style], dict[str, Style]]:
    data = read_yaml_mapping(path, "styles file", "expected a mapping with keys 'styles' and/or 'perspectives'",
                             error=StylesError)
    if not set(data) <= {"styles", "perspectives"}:
        raise StylesError(f"{path}: expected a mapping with keys 'styles' and/or 'perspectives'")
    return (_entries(path, "styles", data.get("styles") or {}),
            _entries(path, "perspectives", data.get("perspectives") or {}))


def _entries(path: Path, section: str, raw: Any) -> dict[str, Style]:
    if not isinstance(raw, dict):
        raise StylesError(f"{path}: '{section}' must be a mapping of name -> {{description, instruction}}")
    out = {}
    for name, entry in raw.items():
        where = f"{path}: {section}.{name}"
        if not isinstance(entry, dict):
            raise StylesError(f"{where}: expected a mapping with 'instruction' (and optional 'description')")
        extra = set(entry) - {"description", "instruction"}
        if extra:
            raise StylesError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
        instruction = entry.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise StylesError(f"{where}: field 'instruction' is missing or empty")
        if "/" in str(name):
            raise StylesError(f"{where}: names may not contain '/' (it separates style and perspective)")
        out[str(name)] = Style(str(name), str(entry.get("description") or name), instruction.strip())
    return out


def doc_rng(seed: int, doc_id: str, salt: str = "variants") -> random.Random:
    """A generator determined only by (seed, doc id, salt): independent of order, worker and process."""
    digest = hashlib.blake2b(f"{seed}\x00{salt}\x00{doc_id}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def choose_variants(doc_id: str, seed: int, n: int, book: StyleBook) -> list[Variant]:
    """N distinct (style, perspective) variants for a document, reproducible from (seed, doc id).

    Distinct styles are preferred: a style repeats (with another perspective) only once every style is used.
    """
    pairs = book.pairs()
    if n < 1:
        raise StylesError(f"variants must be >= 1, got {n}")
    if n > len(pairs):
        raise StylesError(f"variants={n} but only {len(pairs)} (style, perspective) pairs are selected")
    order = doc_rng(seed, doc_id).sample(pairs, len(pairs))
    chosen: list[tuple[Style, Style]] = []
    used_styles: set[str] = set()
    for pass_fresh_only in (True, False):
        for s, p in order:
            if len(chosen) == n:
                break
            if (s, p) in chosen or (pass_fresh_only and s.name in used_styles):
                continue
            chosen.append((s, p))
            used_styles.add(s.name)
    return [Variant(s, p, i) for i, (s, p) in enumerate(chosen)]
