"""Exact + near-duplicate removal over many document shards (MinHash LSH), in four stages.

  1. signatures (executor, one unit per input shard): every text is normalised (`text_norm`, see
     corpus.textnorm: NFKC, casefold, punctuation and whitespace folding by default); per document its exact key
     (digest of the normalised text), length, unit and shingle counts -> `.k2forge/state/signatures/{uid}.parquet`, its
     MinHash signature -> `{uid}.sig.npy` and its band-bucket keys -> `{uid}.bands.npy` (see corpus.lsh).
  2. bands (executor, `lsh: bounded`, the default): one unit per group of `band_group` bands (plus one for the
     exact key) and hash partition of at most `partition_docs` documents -> candidate pairs; no process holds
     all signatures. `lsh: memory` instead loads every signature into the driver (the reference path).
  3. clusters (driver): candidate pairs are kept as edges when their estimated Jaccard >= `threshold` (with
     `exact_recheck`, pairs whose estimate lies within 3 standard errors of the threshold are decided by the
     exact Jaccard of their shingle sets); exact and near edges -> scipy connected components.
  4. write (executor, one unit per input shard): the kept rows of each input shard -> `part-NNNNN.parquet`.

Kept document of a cluster (deterministic, independent of shard order and count, and of the path): the longest
text (in characters), then the smallest id, then the smallest exact key, then the first input path and row. A
removed document's reason is `exact` when its normalised text equals the kept one's, else `near`; its
similarity is the estimated Jaccard against the kept document (1.0 for exact); it can lie below the threshold
when the document joined the cluster through another member or when the exact re-check settled a pair.

Documents whose normalised text is empty (empty, whitespace-only, or punctuation-only with punctuation
folding) are nobody's duplicate: `empty: keep` (default) keeps them all, `empty: drop` removes them with reason
`empty`; both count them (`empty_docs`). A document shorter than one shingle still gets one shingle of all
its units (`short_docs`), so it is fingerprinted and its copies are found.

Exact dedup uses the same normalised text as the shingles: a copy that differs only in case, punctuation
spacing, compatibility forms or whitespace is an `exact` duplicate (its Jaccard would be 1.0 anyway).

Incremental dedup (corpus.dedup_index): `save_index: true` keeps the kept documents' signatures and band keys
in `output/.k2forge/dedup_index/`; a later run with `index: [that output]` dedups its new shards against them, and
only new documents are removed.

Outputs in `output/`: kept shards; in `output/.k2forge/` (corpus.layout): `index.json`, `clusters.parquet` (one row
per cluster of 2+ docs), `removed.parquet` (one row per removed doc), `stats.json` (counts, normalisation,
per-stage seconds and peak memory), `spec.yaml`, and the work files under `state/`. Units are skipped on rerun.

The parameters are `DedupSpec` (corpus.dedup_spec, re-exported here), so that the stage modules take the spec
without importing this module.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus.dedup_clusters import Docs, cluster, empty_removals, reports
from corpus.dedup_index import IndexParts, drop_index, load_index, save_index
from corpus.dedup_spec import DedupSpec
from corpus.dedup_stages import SignatureStage, WriteStage, bands_path, sig_path
from corpus.events import Log, OnEvent, Progress
from corpus.executor import Unit, forget_stale
from corpus.layout import CLUSTERS, META_DIR, REMOVED, SPEC, STATE, STATS, prepare_output
from corpus.lsh import BandStage, band_units, cluster_members, peak_rss_mb
from corpus.minhash import lsh_threshold, s_curve
from corpus.shards import INDEX_NAME, atomic_write_json, expand_inputs, write_index, write_table
from corpus.spec import save_spec

log = logging.getLogger(__name__)

SPEC_NAME, STATS_NAME = f"{META_DIR}/{SPEC}", f"{META_DIR}/{STATS}"
CLUSTERS_NAME, REMOVED_NAME = f"{META_DIR}/{CLUSTERS}", f"{META_DIR}/{REMOVED}"
STATE_DIR = f"{META_DIR}/{STATE}"


def _drop_stale_markers(units: list[Unit], out: Path, stage: str) -> None:
    """Forget finished units whose output is gone or was since overwritten (part files are named by input
    position, so another run in the same output directory can replace them), so that the executor redoes them."""
    def stale(u: Unit, stats: dict) -> bool:
        mtime = stats.get("mtime_ns")
        return not Path(u.output).exists() or (mtime is not None and Path(u.output).stat().st_mtime_ns != mtime)
    forget_stale(out, stage, units, stale)


def _fingerprint(*parts: Any) -> str:
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=6).hexdigest()


def _file_key(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


# ------------------------------------------------------------------------------------------ the driver

def _check_paths(spec: DedupSpec) -> tuple[list[Path], Path]:
    paths = expand_inputs(spec.inputs)
    if not paths:
        raise FileNotFoundError(f"dedup: no input shards (*.parquet) found in {', '.join(spec.inputs)}")
    out = Path(spec.output).resolve()
    inside = [p for p in paths if out in p.resolve().parents]
    if inside:
        raise ValueError(f"dedup: output {spec.output} contains input shard {inside[0]}: choose another output")
    return paths, Path(spec.output)


def signature_params(spec: DedupSpec) -> dict[str, Any]:
    """The parameters signatures and band keys depend on (a saved index must match them)."""
    return spec.model_dump(include={"near", "text_norm", "shingle_size", "shingle_unit", "shingle_hash", "scheme",
                                    "num_perm", "seed", "bands", "rows"})


def _signature_units(spec: DedupSpec, paths: list[Path], out: Path) -> list[Unit]:
    params = signature_params(spec)
    units = []
    for k, p in enumerate(paths):
        uid = f"{k:05d}-{_fingerprint(_file_key(p), params)}"
        units.append(Unit(uid, (str(p),), str(out / STATE_DIR / "signatures" / f"{uid}.parquet")))
    return units


def _write_units(paths: list[Path], out: Path, n_rows: list[int], rem: pa.Table) -> list[Unit]:
    """One unit per input shard with the row numbers it keeps (all rows minus the removed ones)."""
    shard_of = {str(p): k for k, p in enumerate(paths)}
    removed = [[] for _ in paths]
    for sh, row in zip(rem.column("shard").to_pylist(), rem.column("row").to_pylist()):
        removed[shard_of[sh]].append(row)
    units = []
    for k, p in enumerate(paths):
        rows = np.setdiff1d(np.arange(n_rows[k], dtype=np.int64), np.asarray(removed[k], dtype=np.int64))
        uid = f"{k:05d}-{_fingerprint(_file_key(p), hashlib.blake2b(rows.tobytes()).hexdigest())}"
        units.append(Unit(uid, (str(p),), str(out / f"part-{k:05d}.parquet"), {"keep": rows}))
    return units


def _stats(spec: DedupSpec, clu: pa.Table, rem: pa.Table, counts: dict, sig_stats: list, per_shard: list,
           secs: dict, peak: dict) -> dict:
    reasons = rem.column("reason").to_pylist()
    n = sum(s["rows"] for s in sig_stats)
    return {
        "docs_in": n, "docs_out": n - rem.num_rows, "exact_removed": reasons.count("exact"),
        "near_removed": reasons.count("near"), "empty_removed": reasons.count("empty"), "clusters": clu.num_rows,
        "empty_docs": sum(s["empty"] for s in sig_stats), "short_docs": sum(s["short"] for s in sig_stats),
        "empty_rule": spec.empty, "threshold": spec.threshold, "exact_recheck": spec.exact_recheck, **counts,
        "text_norm": spec.text_norm.model_dump(),
        "lsh": {"mode": spec.lsh, "num_perm": spec.num_perm, "bands": spec.bands, "rows": spec.rows,
                "implied_threshold": round(lsh_threshold(spec.bands, spec.rows), 6),
                "s_curve": s_curve(spec.bands, spec.rows), **counts.pop("units", {})},
        "shingles": {"size": spec.shingle_size, "unit": spec.shingle_unit, "hash": spec.shingle_hash,
                     "total": sum(s["shingles"] for s in sig_stats)},
        "shards": per_shard, "seconds": secs, "peak_rss_mb": peak}


def _finish(spec: DedupSpec, out: Path, paths: list[Path], stats: dict, clu: pa.Table, rem: pa.Table,
            per_unit: list[dict]) -> dict:
    """Write the reports, stats and index (index last: it marks a complete output); drop stale shards."""
    stats["shards"] = [{"input": str(p), "output": s["entry"]["path"], "rows_in": s["rows_in"],
                        "rows_out": s["rows_out"]} for p, s in zip(paths, per_unit)]
    write_table(out / CLUSTERS_NAME, clu)
    write_table(out / REMOVED_NAME, rem)
    atomic_write_json(out / STATS_NAME, stats)
    for old in out.glob("part-[0-9][0-9][0-9][0-9][0-9].parquet"):
        if int(old.stem[5:]) >= len(paths):  # from an earlier run over more input shards
            old.unlink()
    write_index(out, [s["entry"] for s in per_unit], extra={"stage": "dedup", "stats": {
        k: stats[k] for k in ("docs_in", "docs_out", "exact_removed", "near_removed", "threshold")}})
    return stats


def _clusters(spec: DedupSpec, executor, units: list[Unit], paths: list[Path], out: Path, sig_stats: list,
              prior: IndexParts, on_event) -> tuple[Docs, np.ndarray, dict, Any]:
    """Docs (all, or only cluster members when bounded), each one's root index, pair and unit counts, and the
    similarity function of the reports (None: from the signatures in Docs). Indexed
    documents (`prior`) come first, as nodes 0 .. sum(prior.rows) - 1."""
    metas = [u.output for u in units]
    offsets = np.cumsum([0] + [s["rows"] for s in sig_stats]).tolist()
    if spec.lsh == "memory":
        sigs = [np.load(sig_path(m)) for m in metas] if spec.near else None
        docs = Docs([pq.read_table(m) for m in metas], paths, sigs, offsets[:-1])
        root, counts = cluster(docs, spec)
        return docs, root, {**counts, "peak_rss_mb": peak_rss_mb()}, None
    metas = prior.metas + metas
    offsets = np.cumsum([0] + prior.rows + [s["rows"] for s in sig_stats]).tolist()
    tag = _fingerprint([u.id for u in units], [_file_key(Path(m)) for m in prior.metas], spec.band_group,
                       spec.partition_docs)
    bunits = band_units(spec, [str(bands_path(m)) for m in metas], offsets, out / STATE_DIR, tag, sum(prior.rows))
    stage = BandStage(spec.bands if spec.near else 0)
    _drop_stale_markers(bunits, out, stage.name)
    bstats = executor.run(stage, bunits, out, desc="dedup bands", on_event=on_event)
    docs, root, counts, similarity = cluster_members(spec, bunits, metas, [str(sig_path(m)) for m in metas],
                                                     offsets, prior.parts + paths, len(prior.metas))
    counts["units"] = {"band_units": len(bunits), "partitions": bunits[0].params["parts"] if bunits else 0}
    return docs, root, {**counts, "peak_rss_mb": max([s["peak_rss_mb"] for s in bstats] + [0.0])}, similarity


def _signatures(spec: DedupSpec, executor, paths: list[Path], out: Path, on_event) -> tuple[list[Unit], list]:
    """Stage 1 on the executor: (its units, their stats)."""
    units = _signature_units(spec, paths, out)
    stage = SignatureStage(spec.hasher() if spec.near else None, spec.text_norm, spec.batch_size, spec.bands,
                           spec.rows)
    _drop_stale_markers(units, out, stage.name)
    return units, executor.run(stage, units, out, desc="dedup signatures", on_event=on_event)


def _empties(units: list[Unit], paths: list[Path]) -> Docs:
    """Records of the documents with an empty normalised text (for `empty: drop`)."""
    tables = [t.filter(pc.equal(t.column("n_units"), 0)) for t in (pq.read_table(u.output) for u in units)]
    return Docs(tables, paths)


def run_dedup(spec: DedupSpec, on_event: OnEvent | None = None) -> dict[str, Any]:
    """Run the dedup job (run-function contract in corpus/spec.py); returns the stats plus `outputs`."""
    emit = on_event or (lambda ev: None)
    paths, out = _check_paths(spec)
    prepare_output(out)
    save_spec(spec, out / SPEC_NAME, "dedup")
    if spec.near and lsh_threshold(spec.bands, spec.rows) > spec.threshold:
        log.warning("dedup: LSH threshold (1/%d)^(1/%d) = %.3f is above the verification threshold %.3f: pairs "
                    "in between are rarely candidates (more bands, fewer rows raise recall)", spec.bands,
                    spec.rows, lsh_threshold(spec.bands, spec.rows), spec.threshold)
    prior = load_index(spec.index, signature_params(spec))  # before any work: a bad index fails at once
    executor, secs, peak = spec.executor.build(), {}, {}
    emit(Log(f"dedup: {len(paths)} input shard(s)"))

    t0 = time.perf_counter()
    units, sig_stats = _signatures(spec, executor, paths, out, on_event)
    secs["signatures"] = round(time.perf_counter() - t0, 3)
    peak["signatures"] = max([s.get("peak_rss_mb", 0.0) for s in sig_stats] + [0.0])
    emit(Progress(len(units), len(units), stage="signatures"))

    t0 = time.perf_counter()
    docs, root, counts, similarity = _clusters(spec, executor, units, paths, out, sig_stats, prior, on_event)
    peak["clusters" if spec.lsh == "memory" else "bands"] = counts.pop("peak_rss_mb")
    clu, rem = reports(docs, root, spec, similarity)
    if spec.empty == "drop":
        rem = pa.concat_tables([rem, empty_removals(_empties(units, paths))])
    secs["clusters"] = round(time.perf_counter() - t0, 3)
    emit(Progress(1, 1, stage="clusters"))

    t0 = time.perf_counter()
    wunits = _write_units(paths, out, [s["rows"] for s in sig_stats], rem)
    _drop_stale_markers(wunits, out, WriteStage.name)
    per_unit = executor.run(WriteStage(), wunits, out, desc="dedup write", on_event=on_event)
    secs["write"] = round(time.perf_counter() - t0, 3)
    emit(Progress(len(wunits), len(wunits), stage="write"))

    stats = _stats(spec, clu, rem, counts, sig_stats, [], secs, peak)
    stats["index"] = {"dirs": prior.dirs, "docs": sum(prior.rows)}
    drop_index(out)  # an index from an earlier run here would no longer describe these kept shards
    if spec.save_index:
        t0 = time.perf_counter()
        stats["saved_index"] = save_index(out, units, wunits, signature_params(spec), prior)
        secs["save_index"] = round(time.perf_counter() - t0, 3)
    peak["driver"] = peak_rss_mb()
    stats = _finish(spec, out, paths, stats, clu, rem, per_unit)
    emit(Log(f"dedup: {stats['docs_in']} -> {stats['docs_out']} documents"))
    outputs = [str(out / s["entry"]["path"]) for s in per_unit]
    outputs += [str(out / n) for n in (INDEX_NAME, CLUSTERS_NAME, REMOVED_NAME, STATS_NAME, SPEC_NAME)]
    return {**{k: v for k, v in stats.items() if k != "shards"}, "output": str(out), "outputs": outputs}
