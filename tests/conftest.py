import os

import pytest
import torch

# Without a GPU the Triton kernels run under Triton's interpreter. Triton reads the variable when
# it is first imported, which any test module may do (through rnnlab.backends.triton), so it is
# set here, before every test module.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Test tensors are tiny: one intra-op thread per pytest worker avoids OpenMP oversubscription.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
