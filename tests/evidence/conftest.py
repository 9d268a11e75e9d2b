"""Evidence tests train tiny models: the trainer tests' one-torch-thread fixture (see tests/trainer/conftest.py)."""
from tests.trainer.conftest import _one_torch_thread  # noqa: F401  (autouse: pytest picks it up from here)
