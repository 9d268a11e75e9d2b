"""Evidence tests train tiny models: one torch intra-op thread (see tests/trainer/conftest.py for why)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
