import pytest
import torch

# Test tensors are tiny: one intra-op thread per pytest worker avoids OpenMP oversubscription.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
