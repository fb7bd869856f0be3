"""The triton engine's precision rule (:func:`rnnlab.backends.triton.launch.precision`), torch.nn's
for its cuDNN RNNs: float32 products in TF32 exactly when ``torch.backends.cudnn.allow_tf32``,
IEEE float32 otherwise; half types on the tensor cores' half path with a float32 accumulator.

The rule reads the device's type only, so it is checked without a GPU; on a GPU a layer shows
that the setting reaches the kernels."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from parity import loss_of

import rnnlab
from rnnlab.backends.triton.launch import precision

CUDA = torch.device("cuda")


@contextmanager
def matmul_tf32(allowed: bool):
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize("matmul", [False, True], ids=["matmul-ieee", "matmul-tf32"])
@pytest.mark.parametrize("cudnn", [False, True], ids=["cudnn-ieee", "cudnn-tf32"])
def test_float32_takes_tf32_exactly_when_cudnn_allows_it(cudnn, matmul):
    """cuDNN's flag decides; the matmul flag (torch's GEMMs) does not."""
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=cudnn), matmul_tf32(matmul):
        assert precision(torch.float32, CUDA) == ("tf32" if cudnn else "ieee")
        for half in (torch.float16, torch.bfloat16):  # accumulate in float32 either way
            assert precision(half, CUDA) == "ieee"


@pytest.mark.skipif(not hasattr(torch.backends.cudnn.rnn, "fp32_precision"),
                    reason="torch < 2.9 has no per-operator TF32 setting")
@pytest.mark.parametrize("value", ["ieee", "tf32"])
def test_the_per_operator_setting_of_cudnn_rnns_decides(value):
    """torch ≥ 2.9 sets TF32 per operator: the RNNs' setting decides, not the convolutions'."""
    cudnn = torch.backends.cudnn
    before = cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision
    try:
        cudnn.conv.fp32_precision = "ieee" if value == "tf32" else "tf32"
        cudnn.rnn.fp32_precision = value
        assert precision(torch.float32, CUDA) == value
    finally:
        cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision = before


def test_the_interpreter_computes_float32():
    cpu = torch.device("cpu")
    assert precision(torch.float32, cpu) == "ieee"
    assert precision(torch.float16, cpu) == "ieee"
    assert precision(torch.bfloat16, cpu) == "float32"  # the interpreter's dot widens bf16


def relative_error(a, e):
    return ((a - e).norm() / e.norm()).item()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: compiled kernels")
def test_tf32_reaches_the_kernels():
    """The same float32 LSTM with TF32 on and off: different results (the products are
    rounded differently), each as close to the reference as its precision allows."""
    reference = rnnlab.LSTM(128, 128, backend="reference", device=CUDA)
    layer = rnnlab.LSTM(128, 128, backend="triton", device=CUDA)
    layer.load_state_dict(reference.state_dict())
    x = torch.randn(6, 16, 128, device=CUDA, requires_grad=True)
    expected = reference(x)[0]
    g_expected = torch.autograd.grad(loss_of([expected]), x)[0]
    results = {}
    for tf32 in (False, True):
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=tf32):
            y = layer(x)[0]
            results[tf32] = (y, torch.autograd.grad(loss_of([y]), x)[0])
    assert not torch.equal(results[True][0], results[False][0])
    for tf32, tol in ((False, 1e-5), (True, 1e-2)):
        y, g = results[tf32]
        assert relative_error(y, expected) < tol, f"output, TF32 {tf32}"
        assert relative_error(g, g_expected) < tol, f"input gradient, TF32 {tf32}"
