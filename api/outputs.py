"""Job outputs: which paths a job writes (so the service can give each output one owner), the run-time lock on
them, and the description of a finished job's files (size and sha256, confined to the data root)."""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from corpus.layout import DONE, META_DIR
from corpus.shards import file_sha256

_MAX_FILES = 2000

#: job kind -> the files it writes beside its `output` (mix writes the manifest, a Megatron blend and its spec;
#: the names follow corpus.mixture.run_mix)
EXTRA_OUTPUTS: dict[str, Callable[[Path], list[Path]]] = {
    "mix": lambda out: [out.with_name(f"{out.stem}.blend.txt"), out.with_name(f"{out.stem}.spec.yaml")],
}


def output_paths(kind: str, spec: dict[str, Any]) -> list[str]:
    """Every path a job of this kind writes (resolved): its `output` and the kind's EXTRA_OUTPUTS."""
    out = spec.get("output")
    if not isinstance(out, str):
        return []
    extra = EXTRA_OUTPUTS.get(kind, lambda p: [])(Path(out))
    return [os.path.realpath(p) for p in [out, *extra]]


def unowned_content(path: str) -> str | None:
    """What is already at `path` that a job would overwrite (a file, a non-empty folder), or None."""
    p = Path(path)
    if p.is_symlink() or (p.exists() and not p.is_dir()):
        return "an existing file"
    if p.is_dir() and next(p.iterdir(), None) is not None:
        return "an existing non-empty folder"
    return None


class OutputLocked(RuntimeError):
    pass


@contextmanager
def output_locks(paths: list[str], lock_dir: Path, timeout_s: float, poll_s: float = 0.2) -> Iterator[None]:
    """Hold an exclusive flock per output path for the life of a run, so two workers never write one output.

    Locks live in the service's state folder (one file per path hash), and the kernel drops them when the
    process dies, so a killed worker never leaves a stale lock. OutputLocked after `timeout_s` of waiting."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    fds: list[int] = []
    try:
        for path in sorted(set(paths)):     # one order everywhere: two workers never wait on each other
            fd = os.open(lock_dir / f"{hashlib.sha256(path.encode()).hexdigest()[:32]}.lock",
                         os.O_RDWR | os.O_CREAT, 0o600)
            fds.append(fd)
            deadline = time.monotonic() + timeout_s
            while not _try_lock(fd):
                if time.monotonic() > deadline:
                    raise OutputLocked(f"output {path} is locked by another running worker")
                time.sleep(poll_s)
        yield
    finally:
        for fd in fds:
            os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


def _files(p: Path) -> list[Path]:
    if p.is_file():
        return [p]
    if p.is_dir():
        markers = p / META_DIR / DONE      # the executor's done-markers are bookkeeping, not outputs
        return sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".") and "_done" not in q.parts
                      and markers not in q.parents)
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
