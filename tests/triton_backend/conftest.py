"""The Triton engine's tests run its kernels compiled on CUDA where a GPU is present, else
under the Triton interpreter on the CPU (``TRITON_INTERPRET=1``, set in ``tests/conftest.py``
before any test module can import Triton)."""

import pytest

pytest.importorskip("triton")
