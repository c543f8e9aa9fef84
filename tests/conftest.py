import gin
import pytest
import torch


@pytest.fixture(autouse=True)
def clear_gin_state():
    """Every test starts and ends with an empty gin config."""
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.fixture(autouse=True)
def fixed_torch_threads():
    torch.set_num_threads(2)
    yield
