"""The Triton engine's tests run its kernels compiled on CUDA where a GPU is present, else
under the Triton interpreter on the CPU. Triton reads ``TRITON_INTERPRET`` when it is
imported, so it is set here, before the first import."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")
