"""Trainer tests run tiny models: one torch intra-op thread, because with 2 OpenMP threads on a shared 2-core
box tiny ops spin-wait (measured 10-20x slower)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
