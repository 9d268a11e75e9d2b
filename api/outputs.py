"""Describe a finished job's outputs: every produced file with its size and sha256, confined to the data root."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from corpus.shards import file_sha256

_MAX_FILES = 2000


def _files(p: Path) -> list[Path]:
    if p.is_file():
        return [p]
    if p.is_dir():
        return sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".") and "_done" not in q.parts)
    return []


def describe_outputs(result: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """The `outputs` of a run result, expanded to files (sha256, bytes), paths shown relative to the data root."""
    root_real = Path(os.path.realpath(root))
    seen: list[dict[str, Any]] = []
    for out in result.get("outputs", []):
        for f in _files(Path(out)):
            real = Path(os.path.realpath(f))
            if root_real not in real.parents:
                continue  # never describe anything outside the data root
            seen.append({"path": str(real.relative_to(root_real)), "bytes": real.stat().st_size,
                         "sha256": file_sha256(real)})
            if len(seen) >= _MAX_FILES:
                return seen
    return seen
