"""Sharded training on CPU gloo ranks: peak host memory per rank of building a preset with and without
meta-device init, and distributed Muon / sharded checkpoints against one process.

memory: W processes (gloo) each build the preset and shard it with FSDP2 the way trainer/loop.py does,
  `full`: the earlier path (every rank builds and initialises the whole fp32 model, then shards);
  `meta`: build on the meta device, shard, materialise the local shard, seeded init of it alone.
  Reports each rank's peak RSS (ru_maxrss) and the sum of the full weights (equal in both modes: the seeded
  init gives the same model at any world size).
exact: the harness of tests/trainer/test_sharded.py at 2 ranks (meta init, distributed Muon, DCP save) and
  4 ranks (load the 2-rank checkpoint, one more step): max abs differences against one process.
Writes bench/results/sharded.json.

    .venv/bin/python bench/bench_sharded.py [--preset small] [--world 2] [--skip-exact]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _memory_worker(rank: int, world: int, init_file: str, preset_name: str, mode: str, out: str) -> None:
    import resource
    import time

    import torch
    import torch.distributed as dist

    from trainer import distributed
    from trainer.config import preset
    from trainer.model import K2ForCausalLM

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    cfg = preset(preset_name)
    if mode == "meta":
        with torch.device("meta"):
            model = K2ForCausalLM(cfg, init_weights=False)
        distributed.shard(model)
        model.to_empty(device="cpu")
        model.init_weights(0)
    else:
        model = K2ForCausalLM(cfg, seed=0)
        distributed.shard(model)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    local = sum(p.to_local().numel() * p.element_size() for p in model.parameters())
    checksum = distributed.weight_checksum(model)
    res = {"rank": rank, "peak_rss_bytes": peak, "rss_before_build_bytes": before, "local_param_bytes": local,
           "build_seconds": round(seconds, 2), "weight_checksum": checksum}
    Path(out, f"{mode}-{rank}.json").write_text(json.dumps(res))
    dist.destroy_process_group()


def memory(preset_name: str, world: int) -> dict:
    import torch.multiprocessing as mp

    from trainer.config import preset
    from trainer.params import count_params
    out = tempfile.mkdtemp(prefix="bench-sharded-")
    res = {"preset": preset_name, "world": world, "params": count_params(preset(preset_name)).total}
    for mode in ("full", "meta"):
        init = os.path.join(out, f"init-{mode}")
        mp.spawn(_memory_worker, args=(world, init, preset_name, mode, out), nprocs=world, join=True)
        res[mode] = [json.loads(Path(out, f"{mode}-{r}.json").read_text()) for r in range(world)]
    res["same_weights"] = res["full"][0]["weight_checksum"] == res["meta"][0]["weight_checksum"]
    res["peak_ratio_meta_over_full"] = max(r["peak_rss_bytes"] for r in res["meta"]) / \
        max(r["peak_rss_bytes"] for r in res["full"])
    return res


def exact() -> dict:
    from tests.trainer.test_sharded import _spawn
    out = Path(tempfile.mkdtemp(prefix="bench-sharded-exact-"))
    return {"2_ranks": _spawn(out, 2, "train"), "4_ranks_from_2_rank_checkpoint": _spawn(out, 4, "reshard")}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--skip-exact", action="store_true")
    args = ap.parse_args(argv)
    import torch
    res = {"torch": torch.__version__, "memory": memory(args.preset, args.world)}
    if not args.skip_exact:
        res["exact"] = exact()
    path = Path(__file__).resolve().parent / "results" / "sharded.json"
    path.write_text(json.dumps(res, indent=2) + "\n")
    m = res["memory"]
    for mode in ("full", "meta"):
        peaks = ", ".join(f"{r['peak_rss_bytes'] / 2**30:.2f}" for r in m[mode])
        print(f"{args.preset} x{args.world} ranks, {mode:4s} init: peak RSS per rank {peaks} GiB, "
              f"local params {m[mode][0]['local_param_bytes'] / 2**30:.2f} GiB, build {m[mode][0]['build_seconds']} s")
    print(f"meta/full peak ratio {m['peak_ratio_meta_over_full']:.3f}; same weights: {m['same_weights']}")
    if "exact" in res:
        print(json.dumps(res["exact"], indent=1))
    return res


if __name__ == "__main__":
    main()
