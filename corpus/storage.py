"""Remote storage for job inputs and outputs: s3://, gs://, hdfs:// through pyarrow.fs, other schemes (hf://,
az://, ...) through fsspec where its filesystem package is installed.

Stages work on local files (atomic temp + rename, done-markers, stale checks); `with_remote_paths(run)` wraps a
job's run function so that any path field (corpus.fields markers, nested specs included) holding a URL is served
from a local cache:

- inputs (`PathIn` fields): files are downloaded once into `$K2FORGE_REMOTE_CACHE` (default
  ~/.cache/k2forge/remote), a directory with all its files except hidden ones (`.k2forge/`), a glob with its
  matches; a file whose size and mtime are unchanged is not fetched again.
- the output (the `PathOut` field; a job has one): the run writes into a local staging copy of the output folder, first filled from the remote folder
  (so a rerun resumes from its done-markers), and it is uploaded after every finished unit and at the end. An
  output that names a file (mix: `s3://b/mix.json`) stages its folder and uploads the files the run wrote there.

Commit on object stores, where rename is a copy and nothing is atomic but a single object write: every file is
written locally to completion first and then uploaded ONCE under its final name (an S3 PUT is all-or-nothing, so
a reader sees the previous object or the whole new one, never part of it); the data files go first, then the
bookkeeping in `.k2forge/`, and `.k2forge/index.json` last and only when the job succeeded: that index is the
manifest commit (it lists the shards, their sizes and checksums) and readers trust only what it lists. Remote
files the finished run no longer has (stale shards) are deleted after the index is in place.
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import logging
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from corpus.events import Event, OnEvent, Progress
from corpus.fields import PATHS, Role, replace, walk
from corpus.layout import INDEX, META_DIR

log = logging.getLogger(__name__)

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_ARROW_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


def is_remote(value: Any) -> bool:
    m = _URL.match(value) if isinstance(value, str) else None
    return bool(m) and m.group(1).lower() != "file"


def filesystem(url: str):
    """(pyarrow FileSystem, path inside it) for a URL; a clear error naming the URL when none can serve it."""
    import pyarrow.fs as pafs
    scheme = _URL.match(url).group(1).lower()
    try:
        if scheme in _ARROW_SCHEMES:
            return pafs.FileSystem.from_uri(url)
        import fsspec
        fs, path = fsspec.core.url_to_fs(url)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path
    except ImportError as e:
        raise ValueError(f"{url}: no filesystem for {scheme}:// here ({e}); install its fsspec package "
                         f"(e.g. huggingface_hub for hf://, adlfs for az://)") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{url}: cannot open ({e})") from None


def cache_root() -> Path:
    return Path(os.environ.get("K2FORGE_REMOTE_CACHE") or Path.home() / ".cache" / "k2forge" / "remote")


def _local_for(url: str) -> Path:
    """The local place of a URL: a folder named by its hash, holding the URL's own last name (stages derive
    names from it, e.g. pack's `{parent dir}__{stem}`)."""
    tail = PurePosixPath(url.rstrip("/").split("://", 1)[1]).name or "root"
    return cache_root() / hashlib.blake2b(url.rstrip("/").encode(), digest_size=8).hexdigest() / tail


def _hidden(rel: str) -> bool:
    return any(p.startswith(".") for p in PurePosixPath(rel).parts)


# ---------------------------------------------------------------------------------------------------- inputs
def fetch(url: str) -> str:
    """A local path for an input URL (file, directory or glob), downloading what is missing or changed."""
    import pyarrow.fs as pafs
    fs, path = filesystem(url)
    if any(c in path for c in "*?["):
        base = path[:min(path.find(c) for c in "*?[" if c in path)].rsplit("/", 1)[0]
        local = _local_for(url)
        for info in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
            if info.type == pafs.FileType.File and fnmatch.fnmatchcase(info.path, path):
                _download(fs, info, local / info.path[len(base):].lstrip("/"))
        return str(local / path[len(base):].lstrip("/"))
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{url}: no such file or directory")
    local = _local_for(url)
    if info.type == pafs.FileType.File:
        _download(fs, info, local)
        return str(local)
    for f in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
        rel = f.path[len(path):].lstrip("/")
        if f.type == pafs.FileType.File and not _hidden(rel):
            _download(fs, f, local / rel)
    return str(local)


def _download(fs, info, dest: Path) -> None:
    stamp = dest.with_name(f".{dest.name}.remote")
    key = json.dumps([info.size, info.mtime_ns])
    if dest.is_file() and stamp.is_file() and stamp.read_text() == key:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.download")
    with fs.open_input_stream(info.path) as src, open(tmp, "wb") as out:
        while chunk := src.read(8 << 20):
            out.write(chunk)
    os.replace(tmp, dest)
    stamp.write_text(key)


# --------------------------------------------------------------------------------------------------- outputs
class RemoteOutput:
    """A job's output folder at `url`, staged in a local folder; `push()` uploads in commit order (module doc)."""

    def __init__(self, url: str):
        url = url.rstrip("/")
        # a file output (a name with a suffix, e.g. mix.json): its folder is staged, nothing there is deleted
        self.file_name = PurePosixPath(url).name if PurePosixPath(url).suffix else None
        self.url = url.rsplit("/", 1)[0] if self.file_name else url
        self.fs, self.path = filesystem(self.url)
        self.local = _local_for(self.url)
        self._sent: dict[str, tuple[int, int]] = {}

    @property
    def target(self) -> Path:
        """The local path the job writes to (its `output`)."""
        return self.local / self.file_name if self.file_name else self.local

    def _remote_files(self) -> dict[str, Any]:
        import pyarrow.fs as pafs
        if self.fs.get_file_info(self.path).type != pafs.FileType.Directory:
            return {}
        return {f.path[len(self.path):].lstrip("/"): f for f in
                self.fs.get_file_info(pafs.FileSelector(self.path, recursive=True)) if f.type == pafs.FileType.File}

    def pull(self) -> Path:
        """Fill the staging folder from the remote output (a rerun resumes from its markers and shards)."""
        if not self.file_name:
            for rel, info in self._remote_files().items():
                _download(self.fs, info, self.local / rel)
                self._sent[rel] = self._key(self.local / rel)
        self.local.mkdir(parents=True, exist_ok=True)
        return self.target

    @staticmethod
    def _key(p: Path) -> tuple[int, int]:
        st = p.stat()
        return st.st_size, st.st_mtime_ns

    def _local_files(self) -> list[str]:
        return sorted(p.relative_to(self.local).as_posix() for p in self.local.rglob("*") if p.is_file()
                      and not p.name.startswith(".") and not p.name.endswith((".tmp", ".download")))

    def push(self, final: bool = False) -> int:
        """Upload new or changed files: data, then .k2forge/ bookkeeping, then (final) the index and the removal
        of remote files the output no longer has. Returns the number of files uploaded."""
        index = f"{META_DIR}/{INDEX}"
        files = [f for f in self._local_files() if f != index]
        order = sorted(files, key=lambda f: f.startswith(META_DIR + "/"))    # data first, then bookkeeping
        if final and (self.local / index).is_file():
            order.append(index)
        sent = 0
        for rel in order:
            key = self._key(self.local / rel)
            if self._sent.get(rel) == key:
                continue
            self._upload(rel)
            self._sent[rel] = key
            sent += 1
        if final and not self.file_name:
            keep = set(self._local_files())
            for rel in self._remote_files():
                if rel not in keep:
                    self.fs.delete_file(f"{self.path}/{rel}")
        return sent

    def _upload(self, rel: str) -> None:
        with open(self.local / rel, "rb") as src, self.fs.open_output_stream(f"{self.path}/{rel}") as out:
            while chunk := src.read(8 << 20):
                out.write(chunk)


# ---------------------------------------------------------------------------------------------- the wrapper
def with_remote_paths(run: Callable[..., dict]) -> Callable[..., dict]:
    """Wrap a run function (JOB_KINDS contract) so that URL fields of its spec read and write remote storage."""
    if getattr(run, "_remote_aware", False):
        return run
    import inspect
    params = list(inspect.signature(run).parameters.values())
    takes_events = len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 2

    def call(spec, on_event, kw):
        # a CLI's run(spec) takes no event callback: its remote output is uploaded at the end only
        return run(spec, on_event, **kw) if takes_events else run(spec, **kw)

    @functools.wraps(run)
    def wrapped(spec, on_event: OnEvent | None = None, **kw) -> dict:
        remote = [(loc, role, v) for loc, role, v in walk(spec) if role in PATHS and is_remote(v)]
        if not remote:
            return call(spec, on_event, kw)
        outs = sorted({v for _, role, v in remote if role is Role.PATH_OUT})
        if len(outs) > 1:
            raise ValueError(f"a job writes one output; this spec names {len(outs)} remote ones: {outs}")
        out = RemoteOutput(outs[0]) if outs else None
        staged = str(out.pull()) if out is not None else None

        def local(loc: str, role: Role, value: str) -> str:
            if not is_remote(value):
                return value
            return staged if role is Role.PATH_OUT else fetch(value)

        def events(ev: Event) -> None:
            if out is not None and isinstance(ev, Progress) and ev.unit is not None:
                out.push()           # a finished unit's files and marker are complete locally: upload them
            if on_event:
                on_event(ev)
        ok = False
        try:
            result = call(replace(spec, PATHS, local), events, kw)
            ok = True
        finally:
            if out is not None:
                out.push(final=ok)
        return _to_urls(result, out) if out is not None else result

    wrapped._remote_aware = True
    return wrapped


def _to_urls(obj: Any, out: RemoteOutput) -> Any:
    """Local staging paths in a run's result -> the output URLs they were uploaded to."""
    local = str(out.local)
    if isinstance(obj, str):
        return out.url + obj[len(local):] if obj == local or obj.startswith(local + os.sep) else obj
    if isinstance(obj, list):
        return [_to_urls(x, out) for x in obj]
    if isinstance(obj, dict):
        return {k: _to_urls(v, out) for k, v in obj.items()}
    return obj
