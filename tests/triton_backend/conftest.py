"""The Triton engine's tests run its kernels compiled on CUDA where a GPU is present, else
under the Triton interpreter on the CPU (``TRITON_INTERPRET=1``, set in ``tests/conftest.py``
before any test module can import Triton)."""

import pytest
from parity import ieee_float32

pytest.importorskip("triton")


@pytest.fixture(autouse=True)
def _ieee_float32():
    """float32 compared at float32 tolerances: on CUDA the kernels follow torch.nn's TF32 rule
    (``torch.backends.cudnn.allow_tf32``, True by default), so TF32 is switched off here, in
    cuDNN and in the reference engine's matmuls. Tests of the TF32 path switch it back on."""
    with ieee_float32():
        yield
