"""Starting a training run (job kind "train"): in this process, or as workers of torchrun, Ray Train or torchtitan.

- `run_train(spec)`: the job-kind entry point. executor local: `trainer.loop.train` in this process; torchrun:
  `launch_torchrun`; ray: `launch_ray`; backend torchtitan: `launch_torchtitan`. Every launcher first runs the
  loop's `preflight`, so bad input fails once, here, not in every worker.
- `launch_torchrun(spec)`: `torch.distributed.run --nproc-per-node W` on this machine; each worker is
  `python -m trainer.launch spec.json` (`_main`), which runs the loop with executor local.
- `launch_ray(spec)`: TorchTrainer with `workers` workers; runs on a local Ray instance or the cluster at
  `executor.ray_address`. Workers read and write the same paths, so the run directory must be on a shared
  filesystem on a real multi-node cluster.
- `launch_torchtitan(spec)`: torchrun of torchtitan.train with trainer/titan.py's config, in the backend's own
  virtualenv (torchtitan is not a project dependency).
Each worker gets `worker_spec(spec)`: executor local, paths absolute. A distributed launch returns rank 0's
summary.json.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch.distributed as dist

from corpus.events import OnEvent
from trainer.loop import preflight, train
from trainer.spec import TrainSpec
from trainer.titan import SPEC_ENV


def worker_spec(spec: TrainSpec) -> TrainSpec:
    """The spec each worker runs: executor local (it IS a worker), paths absolute (workers have another cwd)."""
    return spec.model_copy(update={"executor": spec.executor.model_copy(update={"kind": "local"}),
                                   "manifest": str(Path(spec.manifest).resolve()),
                                   "output": str(Path(spec.output).resolve())})


def _spec_file(spec: TrainSpec) -> str:
    fd, path = tempfile.mkstemp(prefix="k2forge-train-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(worker_spec(spec).model_dump_json())
    return path


def _summary(spec: TrainSpec) -> dict[str, Any]:
    path = Path(spec.output) / "summary.json"
    if not path.exists():
        raise RuntimeError(f"distributed run finished without {path} (see the workers' output above)")
    return json.loads(path.read_text())


def launch_torchrun(spec: TrainSpec) -> dict[str, Any]:
    """Run the loop in `executor.workers` local processes via torchrun; return rank 0's summary."""
    spec_path = _spec_file(spec)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={spec.executor.workers}", "-m", "trainer.launch", spec_path]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        proc = subprocess.run(cmd, env=env, cwd=str(Path(__file__).resolve().parent.parent))
    finally:
        os.unlink(spec_path)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun with {spec.executor.workers} workers failed (exit {proc.returncode})")
    return _summary(spec)


def launch_torchtitan(spec: TrainSpec) -> dict[str, Any]:
    """torchrun `executor.workers` processes of torchtitan.train with trainer/titan.py's config of `spec`,
    in the backend's own virtualenv (torchtitan is not a project dependency)."""
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
    train(TrainSpec.model_validate(config["spec"]))


def launch_ray(spec: TrainSpec) -> dict[str, Any]:
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


def run_train(spec: TrainSpec, on_event: OnEvent | None = None) -> dict[str, Any]:
    """Job-kind entry point: train locally, or launch the same loop with torchrun, Ray Train or torchtitan.
    Bad input (manifest, budget, config) fails here, once, before any worker starts."""
    launcher = launch_torchtitan if spec.backend == "torchtitan" else \
        {"torchrun": launch_torchrun, "ray": launch_ray}.get(spec.executor.kind)
    if launcher is None:  # executor local: this process is the one worker
        return train(spec, on_event)
    preflight(spec)
    return launcher(spec)


def _main(argv: list[str]) -> None:
    """torchrun entry point: one worker of `launch_torchrun`."""
    spec = TrainSpec.model_validate_json(Path(argv[0]).read_text())
    try:
        train(spec)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    _main(sys.argv[1:])
