"""How far MuonClip's logged max logit overshoots tau in the evidence run, and why.

QK-Clip rescales W_q/W_k AFTER the update, from the max logits of that step's (pre-update) forward. The logged
max logit of step t+1 is measured on a NEW batch with the weights after step t's update and clip, so its excess
over tau mixes two things: (a) the update moving the weights after the logits were measured, and (b) the new
batch simply having larger logits than the batch the clip was computed on. This bench separates them: it runs
the MuonClip half of `k2forge train evidence` (same config, corpus and trajectory) and after every step forwards
the SAME batch again with the updated and clipped weights (no gradient; the router loads and max-logit buffers
are restored, so the run itself is unchanged, which is checked against the plain run's losses).

Reports, over steps where QK-Clip acted (some head above tau): the logged overshoot (next step's max logit /
tau: max, median) and the same-batch ratio (max logit of the same batch after update + clip / tau: max, median).
Writes bench/results/qkclip_overshoot.json.

    .venv/bin/python bench/bench_qkclip_overshoot.py [--out runs/overshoot] [--steps 200]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/overshoot")
    ap.add_argument("--steps", type=int, default=None, help="default: the evidence config's")
    args = ap.parse_args(argv)

    import shutil

    import torch

    from trainer.evidence import EVIDENCE_CONFIG, build_sample_corpus
    from trainer.loop import Trainer, window_loss
    from trainer.metrics import read_metrics
    from trainer.model import MLA
    from trainer.moe import MoE
    from trainer.spec import TrainSpec

    out = Path(args.out)
    cfg = {**EVIDENCE_CONFIG, "plots": False}
    if args.steps:
        cfg["steps"] = args.steps
    budget = cfg["steps"] * cfg["micro_batch_size"] * cfg["grad_accum"] * cfg["seq_len"]
    manifest = build_sample_corpus(out / "corpus", seq_len=cfg["seq_len"], total_tokens=budget)

    class SameBatch(Trainer):
        """The loop's Trainer, remembering each step's batch and re-measuring it after the update + clip."""

        def _local_batch(self):
            self.last_batch = super()._local_batch()
            return self.last_batch

        def train_step(self):
            rec = super().train_step()
            mlas = [m for m in self.model.modules() if isinstance(m, MLA)]
            moes = [m for m in self.model.modules() if isinstance(m, MoE)]
            loads = [m.expert_load.clone() for m in moes]
            with torch.no_grad():
                window_loss(self.model, *self.last_batch, self.ctx.device)  # training mode: records max logits
            rec["same_batch_max_logit"] = float(torch.stack([m.max_logits for m in mlas]).max())
            for m in mlas:
                m.max_logits.fill_(float("-inf"))
            for m, saved in zip(moes, loads):
                m.expert_load.copy_(saved)
            return rec

    runs = {}
    for name, cls in (("plain", Trainer), ("same_batch", SameBatch)):
        run_dir = out / name
        shutil.rmtree(run_dir, ignore_errors=True)
        t0 = time.perf_counter()
        cls(TrainSpec(manifest=str(manifest), output=str(run_dir), qk_clip=True, **cfg)).fit()
        runs[name] = (read_metrics(run_dir / "metrics.jsonl", "train"), time.perf_counter() - t0)
    plain, probed = runs["plain"][0], runs["same_batch"][0]
    assert [r["loss"] for r in plain] == [r["loss"] for r in probed], "the probe changed the run"
    tau = float(cfg["qk_clip_tau"])
    clipped = [i for i, r in enumerate(probed) if r["heads_clipped_total"] > 0]
    logged = [probed[i + 1]["max_logit_max"] / tau for i in clipped if i + 1 < len(probed)]
    same = [probed[i]["same_batch_max_logit"] / tau for i in clipped]
    late = probed[len(probed) // 2:]
    res = {"config": cfg, "tau": tau, "steps": len(probed), "steps_with_clipping": len(clipped),
           "logged_max_over_tau": {"max": max(logged), "median": statistics.median(logged)},
           "same_batch_after_clip_over_tau": {"max": max(same), "median": statistics.median(same)},
           "logged_all_steps_max_over_tau": max(r["max_logit_max"] for r in probed) / tau,
           "second_half_mean_over_tau": sum(r["max_logit_max"] for r in late) / len(late) / tau,
           "seconds": {k: round(v[1], 1) for k, v in runs.items()},
           "torch": torch.__version__}
    path = Path(__file__).resolve().parent / "results" / "qkclip_overshoot.json"
    path.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "config"}, indent=2))
    return res


if __name__ == "__main__":
    main()
