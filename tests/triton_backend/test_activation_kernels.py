"""The Triton activations (:mod:`rnnlab.backends.triton.activations`) against
:mod:`rnnlab.activations`: forward and derivative-from-output, every activation, with
non-default parameters where it takes them."""

import pytest
import torch
import triton
import triton.language as tl

from rnnlab import activations
from rnnlab.backends.triton import activations as kernel_activations

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SPECS = ["sigmoid", "tanh", "relu", ("hard_sigmoid", 0.3, 0.4), ("leaky_relu", 0.2),
         ("thresholded_relu", 0.5), ("scaled_tanh", 1.5, 0.7), ("affine", 1.5, 0.3),
         ("elu", 0.8), "softsign", "softplus"]


@triton.jit
def _apply(a_ptr, y_ptr, d_ptr, N, KIND: tl.constexpr, alpha, beta, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    valid = offsets < N
    y = kernel_activations.activate(tl.load(a_ptr + offsets, mask=valid), KIND, alpha, beta)
    tl.store(y_ptr + offsets, y, mask=valid)
    tl.store(d_ptr + offsets, kernel_activations.activation_grad(y, KIND, alpha, beta), mask=valid)


def test_codes_follow_the_names():
    assert [getattr(kernel_activations, n.upper()) for n in activations.NAMES] == \
        list(range(len(activations.NAMES)))


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_activation_and_its_derivative_match(spec):
    act = activations.get(spec)
    a = torch.linspace(-4, 4, 101, device=DEVICE)
    y, d = torch.empty_like(a), torch.empty_like(a)
    _apply[(1,)](a, y, d, a.numel(), *act.kernel_args, BLOCK=128)
    torch.testing.assert_close(y, act(a), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(d, act.grad(act(a)), atol=1e-6, rtol=1e-6)
