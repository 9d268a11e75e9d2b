"""Run-time confinement of a process's file access: every path under a root is resolved and checked again at the
moment it is used, so a symlink made after a job's paths were checked cannot lead it out of the root (or into a
folder of it that is off limits, such as the job service's state folder).

Checks when a job is submitted see the filesystem as it was then; a job may open its files hours later.
`install(root, forbid)` adds a Python audit hook to the process: opens, renames, deletions, folder listings and
creations of a path that lies under `root` (lexically, as every confined spec path does) must resolve inside
it, outside the top-level names in `forbid`; otherwise the operation raises PathEscape (the job fails with
that message). pyarrow opens parquet files in C++, out of the hook's sight, so its parquet entry points are
wrapped to announce their paths first. Paths outside the root (libraries, caches, /proc) are not job paths and
pass unchecked.

The job service's worker installs it and sets CONFINE_ENV, so executor processes confine themselves too
(`install_from_env`, called by corpus.executor in every worker process and Ray actor).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterable

#: environment variables that carry the confinement to executor processes: the root, and the forbidden names
CONFINE_ENV = ("K2FORGE_CONFINE_ROOT", "K2FORGE_CONFINE_FORBID")

#: audit events whose first argument (and, for renames, second) is a path the operation touches
_PATH_EVENTS = {"open": 1, "os.rename": 2, "os.link": 2, "os.remove": 1, "os.rmdir": 1, "os.mkdir": 1,
                "os.listdir": 1, "os.scandir": 1, "os.truncate": 1, "os.chmod": 1, "os.chown": 1, "os.utime": 1,
                "shutil.rmtree": 1, "shutil.copyfile": 2, "shutil.move": 2}


class PathEscape(PermissionError):
    """A job's path that resolves outside the data root (or into a forbidden folder of it) when used."""


class RunGuard:
    def __init__(self, root: str | os.PathLike, forbid: Iterable[str] = ()):
        self.lexical = os.path.abspath(root)
        self.real = os.path.realpath(root)
        self.forbid = frozenset(forbid)

    def _under(self, path: str, root: str) -> bool:
        return path == root or path.startswith(root.rstrip(os.sep) + os.sep)

    def check(self, path, op: str) -> None:
        """Raise PathEscape if `path` lies under the root but resolves outside it or into a forbidden folder."""
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
        top = os.path.relpath(real, self.real).split(os.sep)[0]
        if top in self.forbid:
            raise PathEscape(f"{op} {p}: it resolves into {top}/ of the data root, which jobs may not use; refused")

    def audit(self, event: str, args: tuple) -> None:
        n = _PATH_EVENTS.get(event)
        if n:
            for a in args[:n]:
                self.check(a, event)


_installed: RunGuard | None = None


def install(root: str | os.PathLike, forbid: Iterable[str] = (), *, children: bool = False) -> RunGuard:
    """Confine this process's file access under `root` from now on (once per process: audit hooks stay);
    with `children`, processes it starts (executor workers, Ray actors) confine themselves too."""
    global _installed
    if children:
        os.environ[CONFINE_ENV[0]], os.environ[CONFINE_ENV[1]] = str(root), os.pathsep.join(forbid)
    if _installed is not None:
        return _installed
    guard = RunGuard(root, forbid)
    sys.addaudithook(guard.audit)
    _wrap_pyarrow(guard)
    _installed = guard
    return guard


def install_from_env() -> RunGuard | None:
    """In an executor process: confine it as its parent was (CONFINE_ENV), if it was."""
    root = os.environ.get(CONFINE_ENV[0])
    if not root:
        return None
    return install(root, [f for f in os.environ.get(CONFINE_ENV[1], "").split(os.pathsep) if f])


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
