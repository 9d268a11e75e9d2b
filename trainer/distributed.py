"""Data parallelism for the training loop: torchrun + FSDP2 (`fully_shard`), and Ray Train's TorchTrainer.

The loop (trainer/loop.py) is the same in every case; this module only sets up the process group and the
sharding and launches workers:
- `context(device)`: joins the process group torchrun or Ray created (env RANK/WORLD_SIZE/LOCAL_RANK), nccl on
  CUDA and gloo on CPU, and picks the device. A single process stays undistributed.
- `shard(model)`: FSDP2 per transformer block (MTP modules included), then the root (parameters become DTensors
  sharded on dim 0; buffers such as router biases and max_logits stay replicated). Gradients are
  reduce-scattered as averages. On CUDA the default mixed-precision policy (`mixed_precision`) all-gathers
  bf16 parameters for compute and reduce-scatters fp32 gradients onto fp32 master shards. The loop builds the model on the meta device, shards it, materialises each
  rank's shard and initialises only that (seeded per dim-0 block: the same weights as an unsharded init), so
  no rank ever holds the full model; MuonClip splits Newton-Schulz over the ranks (trainer/muonclip.py) and
  checkpoints are sharded DCP directories that reload at any world size (trainer/checkpoint.py).
  Cross-rank agreement of the things FSDP does not shard: QK-Clip max logits are all-reduced with MAX by the
  optimizer (trainer/qkclip.py), MoE expert loads with SUM by `update_router_biases` (trainer/model.py), so
  every rank applies identical clips and bias updates.
- `launch_torchrun(spec)`: `torch.distributed.run --nproc-per-node W` on this machine (executor kind torchrun).
- `launch_ray(spec)`: TorchTrainer with `workers` workers (executor kind ray); runs on a local Ray instance or
  the cluster at `executor.ray_address`. Workers read and write the same paths, so the run directory must be
  on a shared filesystem on a real multi-node cluster.
Every rank writes its checkpoint shards; rank 0 writes metrics and plots; every rank writes
`ranks/rank-{r}.json` (its losses and a checksum of the full weights) so agreement between ranks can be checked.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _pick_device(pref: str, local_rank: int) -> torch.device:
    if pref == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but torch sees no CUDA device")
    if pref == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def context(device: str = "auto") -> DistContext:
    """Join the process group described by the environment (or the one Ray Train made); pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev)
    return DistContext(0, 1, 0, dev)


def mixed_precision(mode: str, device: torch.device):
    """FSDP2 MixedPrecisionPolicy for TrainSpec.fsdp_mixed_precision, or None (fp32 all-gathers and reductions).

    bf16: each unit's parameters are all-gathered in bf16 and forward/backward run on bf16 copies (half the
    all-gather bytes), gradients are cast to fp32 before the reduce-scatter, so the sharded parameters, their
    gradients and the optimizer (Muon's momentum and update) stay fp32 master weights. Forward inputs are not
    cast (cast_forward_inputs=False): the blocks' activations are bf16 already (bf16 embeddings) and the shared
    AttnMask must reach every layer as the same object (its masks are built once per forward).
    """
    if mode not in ("auto", "bf16", "off"):
        raise ValueError(f"fsdp_mixed_precision must be 'auto', 'bf16' or 'off', got {mode!r}")
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    from torch.distributed.fsdp import MixedPrecisionPolicy
    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, cast_forward_inputs=False)


def shard(model: torch.nn.Module, mp_policy=None) -> torch.nn.Module:
    """FSDP2: each block is one all-gather unit, the root holds embeddings, final norm and head; `mp_policy`
    (see mixed_precision) applies to every unit."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    mp = mp_policy or MixedPrecisionPolicy()  # the default policy: no casts
    for layer in model.blocks():
        fully_shard(layer, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    return model


def weight_checksum(model: torch.nn.Module) -> float:
    """Sum of every full (unsharded) parameter in float64: equal on all ranks iff they hold the same model."""
    total = 0.0
    for p in model.parameters():
        full = p.full_tensor() if hasattr(p, "full_tensor") else p
        total += float(full.detach().double().sum())
    return total


def all_max(x: float) -> float:
    """Max over ranks of a host scalar (used for NaN checks, so every rank stops at the same step)."""
    if not dist.is_initialized():
        return x
    t = torch.tensor([x], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


# ------------------------------------------------------------------------------------------------ launchers
def worker_spec(spec):
    """The spec each worker runs: executor local (it IS a worker), paths absolute (workers have another cwd)."""
    return spec.model_copy(update={"executor": spec.executor.model_copy(update={"kind": "local"}),
                                   "manifest": str(Path(spec.manifest).resolve()),
                                   "output": str(Path(spec.output).resolve())})


def _spec_file(spec) -> str:
    fd, path = tempfile.mkstemp(prefix="k2forge-train-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(worker_spec(spec).model_dump_json())
    return path


def _summary(spec) -> dict[str, Any]:
    path = Path(spec.output) / "summary.json"
    if not path.exists():
        raise RuntimeError(f"distributed run finished without {path} (see the workers' output above)")
    return json.loads(path.read_text())


def launch_torchrun(spec) -> dict[str, Any]:
    """Run the loop in `executor.workers` local processes via torchrun; return rank 0's summary."""
    spec_path = _spec_file(spec)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={spec.executor.workers}", "-m", "trainer.distributed", spec_path]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        proc = subprocess.run(cmd, env=env, cwd=str(Path(__file__).resolve().parent.parent))
    finally:
        os.unlink(spec_path)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun with {spec.executor.workers} workers failed (exit {proc.returncode})")
    return _summary(spec)


def launch_torchtitan(spec) -> dict[str, Any]:
    """torchrun `executor.workers` processes of torchtitan.train with trainer/titan.py's config of `spec`,
    in the backend's own virtualenv (torchtitan is not a project dependency)."""
    from trainer.titan import SPEC_ENV
    if spec.executor.kind == "ray":
        raise ValueError("backend torchtitan: executor kind ray is not supported; use torchrun (or local = 1 "
                         "process) and launch one torchrun per node")
    root = Path(__file__).resolve().parent.parent
    python = spec.backend_python or str(root / ".venv-torchtitan" / "bin" / "python")
    if not Path(python).exists() and os.sep in python:
        raise FileNotFoundError(f"backend_python {python} does not exist: build the torchtitan virtualenv with "
                                "bench/bench_titan_backend.py or set backend_python")
    spec_path = _spec_file(spec)
    cmd = [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={spec.executor.workers}",
           "-m", "torchtitan.train", "--module", "trainer.titan", "--config", "k2forge"]
    env = {**os.environ, SPEC_ENV: spec_path,
           "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    try:
        proc = subprocess.run(cmd, env=env, cwd=str(root))
    finally:
        os.unlink(spec_path)
    if proc.returncode != 0:
        raise RuntimeError(f"torchtitan with {spec.executor.workers} workers failed (exit {proc.returncode})")
    return {"backend": "torchtitan", "outputs": [str(Path(spec.output).resolve() / "torchtitan")],
            "steps": spec.steps, "world_size": spec.executor.workers}


def _ray_worker(config: dict[str, Any]) -> None:
    from trainer.loop import train
    from trainer.spec import TrainSpec
    train(TrainSpec.model_validate(config["spec"]))


def launch_ray(spec) -> dict[str, Any]:
    """Run the loop through Ray Train's TorchTrainer (gloo on CPU workers, nccl with use_gpu)."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if not ray.is_initialized():
        ray.init(address=spec.executor.ray_address, include_dashboard=False, log_to_driver=True)
    local = worker_spec(spec)
    storage = str(Path(spec.output).resolve() / "_ray")
    trainer = TorchTrainer(_ray_worker, train_loop_config={"spec": json.loads(local.model_dump_json())},
                           scaling_config=ScalingConfig(num_workers=spec.executor.workers,
                                                        use_gpu=spec.executor.use_gpu),
                           run_config=RunConfig(storage_path=storage, name="train"))
    trainer.fit()
    return _summary(spec)


def _main(argv: list[str]) -> None:
    """torchrun entry point: one worker of `launch_torchrun`."""
    from trainer.loop import train
    from trainer.spec import TrainSpec
    spec = TrainSpec.model_validate_json(Path(argv[0]).read_text())
    try:
        train(spec)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    _main(sys.argv[1:])
