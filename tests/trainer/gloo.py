"""A two-process gloo group for the distributed trainer tests."""
from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist


@contextlib.contextmanager
def gloo_group(rank: int, world: int, init_file: str):
    """Joins the file-initialised gloo group and leaves it together with the other ranks.

    The barrier before destroy_process_group matters: a rank that tears down gloo while a peer is still inside a
    collective or writing its result makes gloo's pair threads call std::terminate (seen in CI as "terminate
    called without an active exception", SIGABRT in the faster rank)."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        yield
        dist.barrier()
    finally:
        dist.destroy_process_group()
