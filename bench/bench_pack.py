"""Packing throughput: run_pack's per-shard core vs the tokenizer's own encode_batch on the same text.

Anchor: `tokenizers.Tokenizer.encode_batch(texts, add_special_tokens=False)` over the same documents in the
same batches (what any packer must at least pay). Measured: `PackStage.process` on one parquet shard, i.e.
the whole unit (parquet read + validation, encode, EOS insertion, .bin/.idx write, meta, sha256s).
Target: core / encode_batch >= 0.8. Rounds interleave anchor and core so that load from other processes hits
both alike; the ratio reported is the median of per-round ratios. Text: Python stdlib sources cut into ~2 KB
documents (real, varied, offline). Writes bench/results/pack.json.

    .venv/bin/python bench/bench_pack.py [--mb 3] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


def corpus_texts(mb: float, doc_bytes: int = 2048) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    texts, total = [], 0
    for p in sorted(root.rglob("*.py")):
        if "site-packages" in p.parts:
            continue
        src = p.read_text(encoding="utf-8", errors="replace")
        for i in range(0, len(src), doc_bytes):
            chunk = src[i:i + doc_bytes]
            if chunk.strip():
                texts.append(chunk)
                total += len(chunk.encode())
        if total >= mb * 1e6:
            break
    return texts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=1024)
    args = ap.parse_args()

    import numpy as np
    import tokenizers

    from corpus.executor import Unit
    from corpus.pack import PackStage
    from corpus.schema import normalize_doc, table_from_docs
    from corpus.shards import write_table
    from corpus.tokenizer import load_tokenizer

    texts = corpus_texts(args.mb)
    tok = load_tokenizer()
    tmp = Path(tempfile.mkdtemp(prefix="bench_pack_"))
    write_table(tmp / "docs-00000.parquet",
                table_from_docs(normalize_doc({"text": t, "domain": "code", "source": "stdlib"}, "bench")
                                for t in texts))
    stage = PackStage(None, None, True, args.batch_size, "uint16")
    stage.setup()
    unit = Unit("bench", (str(tmp / "docs-00000.parquet"),), str(tmp / "docs-00000"))

    def anchor() -> int:
        n = 0
        for s in range(0, len(texts), args.batch_size):
            n += sum(len(e.ids) for e in tok.tok.encode_batch(texts[s:s + args.batch_size],
                                                              add_special_tokens=False))
        return n

    def core() -> int:
        return stage.process(unit)["tokens"] - len(texts)  # same tokens as the anchor, EOS not counted

    anchor(), core()  # warm up caches and thread pools
    rows = []
    for r in range(args.rounds):
        t0 = time.perf_counter(); n_a = anchor(); t1 = time.perf_counter(); n_c = core(); t2 = time.perf_counter()
        assert n_a == n_c, (n_a, n_c)
        rows.append({"round": r, "tokens": n_a, "anchor_s": t1 - t0, "core_s": t2 - t1,
                     "ratio": (t1 - t0) / (t2 - t1)})
        print(f"round {r}: encode_batch {n_a / (t1 - t0):,.0f} tok/s, pack core {n_c / (t2 - t1):,.0f} tok/s, "
              f"ratio {rows[-1]['ratio']:.3f}")
    ratio = statistics.median(x["ratio"] for x in rows)
    n_tok = rows[0]["tokens"]
    result = {"bench": "pack", "target_ratio": 0.8, "ratio_core_vs_encode_batch": round(ratio, 4),
              "anchor_tokens_per_s": round(n_tok / statistics.median(x["anchor_s"] for x in rows)),
              "core_tokens_per_s": round(n_tok / statistics.median(x["core_s"] for x in rows)),
              "docs": len(texts), "tokens": n_tok, "text_mb": round(sum(len(t.encode()) for t in texts) / 1e6, 2),
              "batch_size": args.batch_size, "rounds": rows, "tokenizer": tok.name,
              "versions": {"python": platform.python_version(), "tokenizers": tokenizers.__version__,
                           "numpy": np.__version__},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    shutil.rmtree(tmp, ignore_errors=True)
    out = Path(__file__).resolve().parent / "results" / "pack.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"pack core / encode_batch throughput ratio: {ratio:.3f} (target >= 0.8) "
          f"[{result['core_tokens_per_s']:,} vs {result['anchor_tokens_per_s']:,} tok/s] -> {out}")


if __name__ == "__main__":
    main()
