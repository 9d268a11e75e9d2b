"""Bounds on what one request may cost: filesystem work per submit, JSON shape, event streams per token.

Each refusal is a 422 (or 429 for streams) naming the field, so a client learns what to change; none depends on
timing, so the same request always gets the same answer.
"""
from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

#: path fields longer than this (UTF-8 bytes) are refused: the OS limit is 4096, and the output registry's index
#: (PostgreSQL btree) holds keys up to ~2.7 kB
MAX_PATH_BYTES = 2048
MAX_NAME_BYTES = 255


class LimitError(ValueError):
    def __init__(self, field: str, msg: str):
        super().__init__(f"{field}: {msg}")
        self.field = field


class FsBudget:
    """Filesystem work one submit may cause while its paths are confined: glob patterns, and entries visited
    (glob matches, folders walked for symlinks). Without it, 40 `**` patterns took 15 s of request CPU."""

    def __init__(self, max_patterns: int = 16, max_entries: int = 100000):
        self.max_patterns, self.max_entries = max_patterns, max_entries
        self.patterns = self.entries = 0

    def pattern(self, field: str) -> None:
        self.patterns += 1
        if self.patterns > self.max_patterns:
            raise LimitError(field, f"at most {self.max_patterns} glob patterns per job")

    def spend(self, n: int, field: str) -> None:
        self.entries += n
        if self.entries > self.max_entries:
            raise LimitError(field, f"the job's paths reach more than {self.max_entries} files and folders; "
                                    f"name fewer (e.g. a narrower glob)")

    def remaining(self) -> int:
        return max(0, self.max_entries - self.entries)

    def walk_tree(self, top: Path, field: str) -> None:
        """Count a folder tree's entries against the budget, stopping as soon as it is spent."""
        stack = [top]
        while stack:
            try:
                with os.scandir(stack.pop()) as it:
                    for entry in it:
                        self.spend(1, field)
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
            except (NotADirectoryError, FileNotFoundError, PermissionError):
                continue


def check_path_length(value: str, field: str) -> None:
    if len(value.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise LimitError(field, f"path longer than {MAX_PATH_BYTES} bytes")
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for part in value.split("/")):
        raise LimitError(field, f"a path component is longer than {MAX_NAME_BYTES} bytes")


def check_json(value: Any, where: list, max_depth: int = 32) -> None:
    """Refuse JSON nested deeper than `max_depth` and non-finite numbers (Infinity/NaN, which JSON does not have
    and which would be stored as null); iterative, so no input can exhaust the stack. LimitError names the spot."""
    stack: list[tuple[Any, list, int]] = [(value, where, 0)]
    while stack:
        x, loc, depth = stack.pop()
        if depth > max_depth:
            raise LimitError(".".join(map(str, loc)), f"nested deeper than {max_depth} levels")
        if isinstance(x, float) and not math.isfinite(x):
            raise LimitError(".".join(map(str, loc)), "numbers must be finite (no Infinity or NaN)")
        if isinstance(x, dict):
            stack.extend((v, [*loc, k], depth + 1) for k, v in x.items())
        elif isinstance(x, list):
            stack.extend((v, [*loc, i], depth + 1) for i, v in enumerate(x))


class StreamSlots:
    """Concurrent event streams per principal and in all (in this replica): a client holding many idle streams
    open cannot starve the others, and many clients together cannot hold more streams than the replica serves
    (each one is a socket, a coroutine and a slot in the event hub)."""

    def __init__(self, per_key: int, total: int):
        self.per_key, self.total = per_key, total
        self._open: dict[str, int] = {}
        self._count = 0
        self._lock = threading.Lock()

    def acquire(self, key: str) -> str | None:
        """None when a slot was taken; else which cap refused it: "token" or "replica"."""
        with self._lock:
            if self._open.get(key, 0) >= self.per_key:
                return "token"
            if self._count >= self.total:
                return "replica"
            self._open[key] = self._open.get(key, 0) + 1
            self._count += 1
            return None

    def release(self, key: str) -> None:
        with self._lock:
            self._count -= 1
            self._open[key] -= 1
            if not self._open[key]:
                del self._open[key]
