"""The layout of a stage's output folder: data shards at the top, everything else under a hidden `.k2forge/`.

    OUT/part-00000.parquet ...        the documents (the only files a reader of OUT sees)
    OUT/.k2forge/index.json           shard index (rows, bytes, sha256), written last: it marks a finished output
    OUT/.k2forge/spec.yaml            the resolved spec of the run
    OUT/.k2forge/stats.json           the run's stats
    OUT/.k2forge/done/{stage}/{unit}.json   the executor's done-markers (corpus.executor owns them)
    OUT/.k2forge/rejects/, routing/   side tables of the rewriting jobs (their own schemas)
    OUT/.k2forge/units/{shard}/       rewriting jobs' finished units of a shard until it is assembled (rephrase.run)
    OUT/.k2forge/state/, clusters.parquet, removed.parquet, dedup_index/   dedup's work files and reports

Why hidden: Hugging Face `datasets.load_dataset("parquet", data_dir=OUT)` reads every file under OUT as data,
including `_`-prefixed ones and subfolders, and skips only names starting with "." (checked against datasets
5.2: `_index.json` or a `rejects/` folder beside the shards make that call fail). Side tables stay loadable on
their own: `load_dataset("parquet", data_dir=OUT/.k2forge/rejects)`.

Folders written by earlier versions kept these as `_index.json`, `_spec.yaml`, `_stats.json`, `_done/`,
`_state/`, `rejects/`...; `prepare_output` moves them into place, so such a folder resumes where it stopped.
Readers of a folder that no run has touched since use `find_meta`, which falls back to the old name.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

META_DIR = ".k2forge"
INDEX, SPEC, STATS, DONE = "index.json", "spec.yaml", "stats.json", "done"
REJECTS, ROUTING, STATE = "rejects", "routing", "state"
CLUSTERS, REMOVED, DEDUP_INDEX = "clusters.parquet", "removed.parquet", "dedup_index"

# name in .k2forge/ -> the name the pre-.k2forge layout used at the top of OUT
LEGACY = {INDEX: "_index.json", SPEC: "_spec.yaml", STATS: "_stats.json", DONE: "_done", REJECTS: "rejects",
          ROUTING: "routing", STATE: "_state", CLUSTERS: "_clusters.parquet", REMOVED: "_removed.parquet",
          DEDUP_INDEX: "_dedup_index"}
# A folder is an old k2forge output (and its `rejects/`, `routing/` are ours to move) when one of these exists.
_LEGACY_SIGNS = ("_index.json", "_spec.yaml", "_done", "_state")


def meta_dir(out: str | os.PathLike) -> Path:
    return Path(out) / META_DIR


def meta_path(out: str | os.PathLike, name: str) -> Path:
    """Where `name` (index.json, spec.yaml, rejects, ...) of the output folder `out` is written."""
    return meta_dir(out) / name


def find_meta(out: str | os.PathLike, name: str) -> Path:
    """Where to read `name` of `out`: the current place, else the old layout's name if that exists there."""
    new = meta_path(out, name)
    old = Path(out) / LEGACY.get(name, name)
    return old if not new.exists() and name in LEGACY and old.exists() and is_legacy(out) else new


def done_dir(out: str | os.PathLike, stage: str) -> Path:
    """The done-markers of `stage` in `out` (written and read by corpus.executor only)."""
    return meta_path(out, DONE) / stage


def is_legacy(out: str | os.PathLike) -> bool:
    return any((Path(out) / s).exists() for s in _LEGACY_SIGNS)


def prepare_output(out: str | os.PathLike) -> Path:
    """Create `out` and its `.k2forge/`; move an old layout's bookkeeping into place (so it resumes)."""
    out = Path(out)
    meta_dir(out).mkdir(parents=True, exist_ok=True)
    if is_legacy(out):
        _migrate(out)
    return out


def _migrate(out: Path) -> None:
    moved = []
    old_state_done = out / "_state" / "_done"   # dedup kept its markers under _state/_done/
    if old_state_done.is_dir():
        _merge_dir(old_state_done, meta_path(out, DONE))
        moved.append("_state/_done")
    for name, old in LEGACY.items():
        src, dst = out / old, meta_path(out, name)
        if not src.exists():
            continue
        if src.is_dir():
            _merge_dir(src, dst)
        elif dst.exists():
            log.warning("%s: both %s and %s exist; keeping %s and leaving %s as it is", out, old, dst, dst, old)
            continue
        else:
            os.replace(src, dst)
        moved.append(old)
    if moved:
        log.info("%s: moved the old layout's %s into %s/", out, ", ".join(moved), META_DIR)


def _merge_dir(src: Path, dst: Path) -> None:
    """Move every file of `src` to the same relative place under `dst` (existing files there win), drop `src`."""
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.replace(f, target)
    shutil.rmtree(src, ignore_errors=True)
