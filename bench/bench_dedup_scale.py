"""Dedup at scale: a generated corpus with planted near-duplicates, k2forge `corpus dedup` against datatrove.

Corpus (`generate`, vectorised, seeded; ~3 KB per document of Zipf-distributed words with commas, periods and
capitalised words): n documents in shards of 10,000, of which n/10 are planted near-duplicates, one per
original, of four kinds in turn:
  words_replaced  ~1% of the words replaced by other vocabulary words
  footer          some spaces turned into newlines, tabs or double spaces, plus a 20-word footer appended
  upper_spaced    the whole text UPPER-CASED, with a space before every comma and period
  span_removed    a contiguous 5% span of the words removed
Each duplicate sits in the next shard after its original's (the last shard's go to the first).

Scores from the kept/removed ids only, so both tools are scored the same way: a planted pair is caught when
exactly one of its two documents was removed; recall per kind = caught / planted; precision = removed
documents that are half of a caught pair / all removed documents.

Runs, each as its own process (CPU = user + sys from wait4; peak RSS = the VmHWM the process reports at its
end, since ru_maxrss would include this bench's memory at fork; plus the per-unit peaks k2forge records for
its executor workers): k2forge at each size with the local executor and one
worker (in process: every stage's memory shows in one RSS); datatrove 0.10.1 at the first size, 4 stages
(signatures, 32 bucket tasks, cluster, filter), 1 worker, in `.venv-datatrove` which this bench creates
(pip `datatrove==0.10.1 regex tokenizers spacy "xxhash<3.6" pyarrow orjson`: its ParquetReader and
JsonlWriter need the last two); optionally a Ray run (local instance, 2 workers) whose kept ids must equal
the local run's (its cpu_s is the driver's alone: Ray's workers are not this bench's children; their per-unit
peak RSS is in unit_peak_rss_mb). Same parameters on both sides: word 5-grams, 32 bands x 4 rows, seed 1;
each tool keeps its own normalisation defaults (datatrove's also folds digits and accents).

    .venv/bin/python bench/bench_dedup_scale.py [--sizes 100000 1000000] [--datatrove] [--ray] [--seed 0]

Writes bench/results/dedup_scale.json. Takes long (datatrove needs ~20 min of CPU at 100k): not in the tests.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "dedup_scale.json"
DT_VENV = ROOT / ".venv-datatrove"
DT_PIP = ["datatrove==0.10.1", "regex", "tokenizers", "spacy", "xxhash<3.6", "pyarrow", "orjson"]  # reader, writer
KINDS = ("words_replaced", "footer", "upper_spaced", "span_removed")
SHARD_DOCS = 10_000
FOOTER = ("Share this article with your friends on social media and subscribe to our newsletter for more "
          "stories like this one every week")


# ------------------------------------------------------------------------------------------ corpus

class Vocab:
    """Tokens = word x variant (plain, "word,", "word.", "Word"), laid out as one byte array for gathering."""

    def __init__(self, seed: int, n_words: int = 50_000):
        r = np.random.default_rng(seed)
        lens = r.integers(2, 11, n_words)
        letters = r.integers(97, 123, lens.sum()).astype(np.uint8)
        words = [w.decode() for w in np.split(letters, np.cumsum(lens)[:-1]) for w in [w.tobytes()]]
        toks = [v for w in words for v in (w, w + ",", w + ".", w.capitalize())]
        self.words = words
        self.flat = np.frombuffer("".join(t + " " for t in toks).encode(), dtype=np.uint8)
        self.tlen = np.array([len(t) + 1 for t in toks], dtype=np.int64)
        self.tstart = np.r_[0, np.cumsum(self.tlen)[:-1]]
        rank_p = 1.0 / (np.arange(n_words) + 10.0)  # Zipf-like: frequent words, long tail
        self.cdf = np.cumsum(rank_p / rank_p.sum())

    def texts(self, rng: np.random.Generator, n_docs: int) -> list[str]:
        n_words = rng.integers(250, 750, n_docs)
        word = np.minimum(np.searchsorted(self.cdf, rng.random(n_words.sum())), len(self.words) - 1)
        tok = word * 4 + np.searchsorted([0.84, 0.91, 0.97], rng.random(len(word)), side="right")
        lens = self.tlen[tok]
        ends = np.cumsum(lens)
        idx = np.repeat(self.tstart[tok] - (ends - lens), lens) + np.arange(ends[-1])
        buf = self.flat[idx].tobytes()
        doc_end = ends[np.cumsum(n_words) - 1]
        doc_start = np.r_[0, doc_end[:-1]]
        return [buf[s:e - 1].decode() for s, e in zip(doc_start.tolist(), doc_end.tolist())]


def plant(r: random.Random, text: str, kind: str, vocab: Vocab) -> str:
    words = text.split(" ")
    if kind == "words_replaced":
        for i in r.sample(range(len(words)), max(1, len(words) // 100)):
            words[i] = r.choice(vocab.words)
        return " ".join(words)
    if kind == "footer":
        spaced = "".join(r.choice(["\n", "\t", "  "]) if c == " " and r.random() < 0.1 else c for c in text)
        return spaced + "\n\n" + FOOTER
    if kind == "upper_spaced":
        return text.upper().replace(",", " ,").replace(".", " .")
    n = len(words) // 20
    lo = r.randrange(len(words) - n)
    return " ".join(words[:lo] + words[lo + n:])


def _shard_base(vocab: Vocab, seed: int, k: int, n_base: int) -> list[str]:
    return vocab.texts(np.random.default_rng([seed, k]), n_base)


def generate(out: Path, n_docs: int, seed: int) -> dict:
    """Write the corpus; return {"pairs": [(orig_id, dup_id, kind)], "bytes": text bytes, "shards": n}."""
    from corpus.schema import DOC_SCHEMA
    from corpus.shards import write_table
    vocab, r = Vocab(seed), random.Random(seed)
    n_shards = max(1, n_docs // SHARD_DOCS)
    n_pairs = n_docs // 10
    per = [n_pairs // n_shards + (k < n_pairs % n_shards) for k in range(n_shards)]  # originals per shard
    base_n = [SHARD_DOCS - per[(k - 1) % n_shards] if n_shards > 1 else n_docs - per[0] for k in range(n_shards)]
    pairs, total = [], 0

    def dups_of(k: int, texts: list[str]) -> list[tuple[str, str]]:
        out_ = []
        for i in range(per[k]):
            kind = KINDS[(len(pairs)) % len(KINDS)]
            oid = f"d{k:04d}-{i:06d}"
            pairs.append((oid, f"{oid}-{kind}", kind))
            out_.append((pairs[-1][1], plant(r, texts[i], kind, vocab)))
        return out_

    carry = dups_of(n_shards - 1, _shard_base(vocab, seed, n_shards - 1, base_n[-1]))
    for k in range(n_shards):
        texts = _shard_base(vocab, seed, k, base_n[k])
        ids = [f"d{k:04d}-{i:06d}" for i in range(len(texts))] + [i for i, _ in carry]
        texts = texts + [t for _, t in carry]
        if k < n_shards - 1:
            carry = dups_of(k, texts)
        order = np.random.default_rng([seed, k, 1]).permutation(len(texts))
        n = len(texts)
        table = pa.table({"id": [ids[i] for i in order], "text": [texts[i] for i in order],
                          "domain": ["web"] * n, "source": ["bench"] * n, "lang": ["en"] * n, "meta": ["{}"] * n},
                         schema=DOC_SCHEMA)
        write_table(out / f"gen-{k:05d}.parquet", table)
        total += sum(len(t) for t in texts)
    return {"pairs": pairs, "bytes": total, "shards": n_shards, "docs": sum(base_n) + n_pairs}


def score(removed: set[str], pairs: list, n_removed: int) -> dict:
    caught = {k: 0 for k in KINDS}
    planted = {k: 0 for k in KINDS}
    for orig, dup, kind in pairs:
        planted[kind] += 1
        caught[kind] += (orig in removed) != (dup in removed)
    hits = sum(caught.values())
    return {"recall": {k: round(caught[k] / max(planted[k], 1), 5) for k in KINDS},
            "recall_all": round(hits / max(len(pairs), 1), 5), "removed": n_removed,
            "precision": round(hits / n_removed, 5) if n_removed else 1.0}


# ------------------------------------------------------------------------------------------ runs

def measured(cmd: list[str], env: dict | None = None) -> dict:
    """Run `cmd`; wall seconds and CPU seconds (user, sys: the process and the children it waited for)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})})
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[:3]}... failed with exit code {os.waitstatus_to_exitcode(status)}")
    return {"wall_s": round(wall, 2), "cpu_user_s": round(ru.ru_utime, 2), "cpu_sys_s": round(ru.ru_stime, 2),
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 2)}


# Each run reports its own VmHWM at exit: wait4's ru_maxrss would include this (large) process's memory at fork.
HWM = "[int(l.split()[1]) // 1024 for l in open('/proc/self/status') if l.startswith('VmHWM')][0]"
K2_SCRIPT = f"""
import json, sys
from corpus.dedup import DedupSpec, run_dedup
spec = DedupSpec(**json.loads(sys.argv[1]))
res = run_dedup(spec)
json.dump({{**res, "vm_hwm_mb": {HWM}}}, open(sys.argv[2], "w"), default=str)
"""


def run_k2forge(corpus: Path, out: Path, pairs: list, executor: dict) -> tuple[dict, set]:
    spec = {"inputs": [str(corpus)], "output": str(out), "executor": executor}
    res = measured([sys.executable, "-c", K2_SCRIPT, json.dumps(spec), str(out) + ".json"],
                   {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    stats = json.loads(Path(str(out) + ".json").read_text())
    removed = set(pq.read_table(out / ".k2forge/removed.parquet", columns=["id"]).column("id").to_pylist())
    res["peak_rss_mb"] = stats["vm_hwm_mb"]
    res.update({"score": score(removed, pairs, len(removed)), "stage_seconds": stats["seconds"],
                "unit_peak_rss_mb": stats["peak_rss_mb"], "candidate_pairs": stats["candidate_pairs"],
                "band_units": stats["lsh"].get("band_units"), "docs_in": stats["docs_in"]})
    return res, removed


DT_SCRIPT = """
import json, sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig
src, out = sys.argv[1], sys.argv[2]
cfg = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=32, hashes_per_bucket=4, n_grams=5, seed=1)
read = lambda: ParquetReader(src, text_key="text", id_key="id")
stages = {
    "signatures": ([read(), MinhashDedupSignature(f"{out}/sigs", config=cfg)], 1),
    "buckets": ([MinhashDedupBuckets(f"{out}/sigs", f"{out}/buckets", config=cfg)], cfg.num_buckets),
    "cluster": ([MinhashDedupCluster(f"{out}/buckets", f"{out}/remove_ids", config=cfg)], 1),
    "filter": ([read(), MinhashDedupFilter(f"{out}/remove_ids",
                exclusion_writer=JsonlWriter(f"{out}/removed", compression=None))], 1)}
secs = {}
for name, (pipeline, tasks) in stages.items():
    t0 = time.perf_counter()
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=f"{out}/logs/{name}").run()
    secs[name] = round(time.perf_counter() - t0, 2)
json.dump({"seconds": secs, "vm_hwm_mb": HWM}, open(f"{out}/seconds.json", "w"))
""".replace("HWM", HWM)


def datatrove_python() -> Path:
    """Python of the bench's own datatrove venv (not a project dependency), created on first use."""
    py, stamp = DT_VENV / "bin" / "python", DT_VENV / ".bench-installed"
    if not py.exists():
        subprocess.run(["python3", "-m", "venv", str(DT_VENV)], check=True)
    if not stamp.exists() or stamp.read_text() != " ".join(DT_PIP):
        subprocess.run([str(py), "-m", "pip", "install", "-q", *DT_PIP], check=True)
        stamp.write_text(" ".join(DT_PIP))
    return py


def run_datatrove(corpus: Path, out: Path, pairs: list) -> tuple[dict, set]:
    py = datatrove_python()
    res = measured([str(py), "-c", DT_SCRIPT, str(corpus), str(out)], {"OMP_NUM_THREADS": "1"})
    removed = set()
    for f in (out / "removed").glob("*.jsonl"):
        removed |= {json.loads(line)["id"] for line in f.read_text().splitlines() if line}
    version = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('datatrove'))"],
                             capture_output=True, text=True).stdout.strip()
    own = json.loads((out / "seconds.json").read_text())
    res.update({"score": score(removed, pairs, len(removed)), "version": version, "peak_rss_mb": own["vm_hwm_mb"],
                "stage_seconds": own["seconds"]})
    return res, removed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    ap.add_argument("--datatrove", action="store_true", help="run datatrove at the first size")
    ap.add_argument("--ray", action="store_true", help="also run k2forge on Ray (2 workers) at the first size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where corpora go (default: a temp dir, removed after)")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="dedup_scale_"))
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "params": {"shingles": "word 5-grams", "bands": 32, "rows": 4, "seed": 1, "threshold_k2forge": 0.7,
                         "corpus_seed": args.seed}, "sizes": {}}
    for i, n in enumerate(args.sizes):
        corpus = work / f"corpus-{n}"
        t0 = time.perf_counter()
        gen = generate(corpus, n, args.seed)
        entry = {"docs": gen["docs"], "text_mb": round(gen["bytes"] / 1e6, 1), "shards": gen["shards"],
                 "planted_pairs": len(gen["pairs"]), "generate_s": round(time.perf_counter() - t0, 1)}
        print(f"== {n} docs: {entry}", flush=True)
        k2, kept_removed = run_k2forge(corpus, work / f"k2-{n}", gen["pairs"], {"kind": "local", "workers": 1})
        k2["cpu_s_per_1k_docs"] = round(1000 * k2["cpu_s"] / gen["docs"], 4)
        entry["k2forge"] = k2
        print(json.dumps(k2), flush=True)
        if i == 0 and args.ray:
            ray, ray_removed = run_k2forge(corpus, work / f"ray-{n}", gen["pairs"], {"kind": "ray", "workers": 2})
            ray["identical_removed_ids"] = ray_removed == kept_removed
            entry["k2forge_ray2"] = ray
            print(json.dumps(ray), flush=True)
        if i == 0 and args.datatrove:
            dt, _ = run_datatrove(corpus, work / f"dt-{n}", gen["pairs"])
            entry["datatrove"] = dt
            entry["cpu_ratio_datatrove_over_k2forge"] = round(dt["cpu_s"] / k2["cpu_s"], 1)
            entry["recall_k2forge_minus_datatrove"] = round(k2["score"]["recall_all"] - dt["score"]["recall_all"], 5)
            print(json.dumps(dt), flush=True)
        result["sizes"][str(n)] = entry
        subprocess.run(["rm", "-rf", str(corpus), *map(str, work.glob(f"*-{n}"))], check=False)
    sizes = [str(n) for n in args.sizes]
    if len(sizes) > 1:
        a, b = result["sizes"][sizes[0]]["k2forge"], result["sizes"][sizes[-1]]["k2forge"]
        result["scaling"] = {"peak_rss_ratio": round(b["peak_rss_mb"] / a["peak_rss_mb"], 3),
                             "cpu_per_doc_ratio": round(b["cpu_s_per_1k_docs"] / a["cpu_s_per_1k_docs"], 3)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "sizes"}, indent=2))


if __name__ == "__main__":
    main()
