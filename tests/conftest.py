import pytest
import torch

from handlib.model.hand import HandModel


@pytest.fixture(scope="session")
def right_flat():
    """Open right hand whose pose 0 is the flat template (flat_hand_mean=True)."""
    return HandModel("right", flat_hand_mean=True)


@pytest.fixture(scope="session")
def left_flat():
    return HandModel("left", flat_hand_mean=True)


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)
