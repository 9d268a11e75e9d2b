"""Training-step benchmark (trainer/bench.py): tokens/s, MFU, optimizer and QK-Clip share of step time.

CPU default (preset tiny, so the benchmark cannot rot) writes bench/results/train_cpu.json:
    .venv/bin/python bench/bench_train.py
GPU (targets: MFU >= 35% on small with bf16 + compile, optimizer <= 10%, QK-Clip <= 1% of the step):
    .venv/bin/python bench/bench_train.py --preset small --device cuda --compile --batch 8 --seq-len 4096 \\
        --out bench/results/train_gpu.json
Every flag of `k2forge train bench` is accepted.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainer.bench import main  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--out" not in argv:
        dev = argv[argv.index("--device") + 1] if "--device" in argv else "cpu"
        argv += ["--out", str(ROOT / "bench" / "results" / f"train_{dev}.json")]
    if "--threads" not in argv and "cuda" not in argv:
        argv += ["--threads", "1"]  # a shared 2-core CPU: OpenMP spinning with 2 threads costs 10x
    main(argv)
