"""Run-time confinement of a job worker's file access: every path under the data root is resolved and checked
again at the moment it is opened, so a symlink made after the submit (or after the worker's own check before the
run) cannot lead a job out of the data root or into the service's state folder.

Submit-time checks (api.security.confine) see the filesystem as it was then; a job may open its files hours
later. `install(root)` adds a Python audit hook to the worker process: opens, renames, deletions, folder
listings and creations of a path that lies under the data root (lexically, as every spec path does after
confinement) must resolve inside it, outside STATE_DIR; otherwise the operation raises PathEscape, and the job
fails with that message. pyarrow opens parquet files in C++, out of the hook's sight, so its parquet entry points
are wrapped to announce their paths first. Paths outside the data root (libraries, caches, /proc) are not
job paths and pass unchecked.

Scope: the worker process, which runs the stage itself with the default executor (local, one worker). Executor
processes (local workers > 1, Ray actors) are confined by the checks before the run only.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from api.security import STATE_DIR

#: audit events whose first argument (and, for renames, second) is a path the operation touches
_PATH_EVENTS = {"open": 1, "os.rename": 2, "os.link": 2, "os.remove": 1, "os.rmdir": 1, "os.mkdir": 1,
                "os.listdir": 1, "os.scandir": 1, "os.truncate": 1, "os.chmod": 1, "os.chown": 1, "os.utime": 1,
                "shutil.rmtree": 1, "shutil.copyfile": 2, "shutil.move": 2}


class PathEscape(PermissionError):
    """A job's path that resolves outside the data root (or into the service's state folder) when used."""


class RunGuard:
    def __init__(self, root: str | os.PathLike):
        self.lexical = os.path.abspath(root)
        self.real = os.path.realpath(root)

    def _under(self, path: str, root: str) -> bool:
        return path == root or path.startswith(root.rstrip(os.sep) + os.sep)

    def check(self, path, op: str) -> None:
        """Raise PathEscape if `path` lies under the data root but resolves outside it or into STATE_DIR."""
        if isinstance(path, int) or path is None:     # a file descriptor: its path was checked when opened
            return
        try:
            p = os.path.abspath(os.fsdecode(path))
        except TypeError:                              # a file object, a buffer: not a path
            return
        if not (self._under(p, self.lexical) or self._under(p, self.real)):
            return
        real = os.path.realpath(p)
        if not self._under(real, self.real):
            raise PathEscape(f"{op} {p}: it resolves to {real}, outside the data root {self.real} (a symlink made "
                             f"after the job was submitted?); refused")
        rel = os.path.relpath(real, self.real).split(os.sep)
        if rel[0] == STATE_DIR:
            raise PathEscape(f"{op} {p}: it resolves into the service's state folder {STATE_DIR}/; refused")

    def audit(self, event: str, args: tuple) -> None:
        n = _PATH_EVENTS.get(event)
        if n:
            for a in args[:n]:
                self.check(a, event)


_installed: RunGuard | None = None


def install(root: str | os.PathLike) -> RunGuard:
    """Confine this process's file access under `root` from now on (once per process; audit hooks stay)."""
    global _installed
    if _installed is not None:
        return _installed
    guard = RunGuard(root)
    sys.addaudithook(guard.audit)
    _wrap_pyarrow(guard)
    _installed = guard
    return guard


def _wrap_pyarrow(guard: RunGuard) -> None:
    """pyarrow.parquet's readers and writers open files in C++: check their paths before they do."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return
    for name in ("read_table", "read_schema", "read_metadata"):
        setattr(pq, name, _checked_function(getattr(pq, name), guard, f"parquet {name}"))
    for cls in (pq.ParquetFile, pq.ParquetWriter, pq.ParquetDataset):
        cls.__init__ = _checked_init(cls.__init__, guard, f"parquet {cls.__name__}")


def _check_source(guard: RunGuard, source, op: str) -> None:
    for s in source if isinstance(source, (list, tuple)) else [source]:
        if isinstance(s, (str, Path)):
            guard.check(s, op)


def _checked_function(fn, guard: RunGuard, op: str):
    def checked(source, *args, **kwargs):
        _check_source(guard, source, op)
        return fn(source, *args, **kwargs)
    checked.__wrapped__, checked.__doc__, checked.__name__ = fn, fn.__doc__, fn.__name__
    return checked


def _checked_init(init, guard: RunGuard, op: str):
    def checked(self, source, *args, **kwargs):
        _check_source(guard, source, op)
        return init(self, source, *args, **kwargs)
    checked.__wrapped__ = init
    return checked
