"""The activations of :mod:`rnnlab.activations` inside Triton kernels: ``activate`` and its
derivative from the output, ``activation_grad``, chosen by a ``tl.constexpr`` code (the index
in :data:`rnnlab.activations.NAMES`, from :attr:`rnnlab.activations.Activation.kernel_args`), so
each variant compiles to the plain kernel plus its own few instructions."""

import triton
import triton.language as tl

from rnnlab.backends.triton.kernels_common import tanh

# the codes, in the order of rnnlab.activations.NAMES (checked by the tests)
SIGMOID, TANH, RELU, HARD_SIGMOID, LEAKY_RELU, THRESHOLDED_RELU = 0, 1, 2, 3, 4, 5
SCALED_TANH, AFFINE, ELU, SOFTSIGN, SOFTPLUS = 6, 7, 8, 9, 10


@triton.jit
def activate(a, KIND: tl.constexpr, alpha, beta):
    """``φ(a)`` of activation ``KIND`` with parameters ``alpha``, ``beta`` (float32)."""
    if KIND == 0:  # sigmoid
        y = tl.sigmoid(a)
    elif KIND == 1:  # tanh
        y = tanh(a)
    elif KIND == 2:  # relu
        y = tl.maximum(a, 0.0)
    elif KIND == 3:  # hard_sigmoid
        y = tl.minimum(tl.maximum(a * alpha + beta, 0.0), 1.0)
    elif KIND == 4:  # leaky_relu
        y = tl.where(a >= 0.0, a, a * alpha)
    elif KIND == 5:  # thresholded_relu
        y = tl.where(a > alpha, a, 0.0)
    elif KIND == 6:  # scaled_tanh
        y = alpha * tanh(beta * a)
    elif KIND == 7:  # affine
        y = a * alpha + beta
    elif KIND == 8:  # elu
        y = tl.where(a > 0.0, a, alpha * (tl.exp(tl.minimum(a, 0.0)) - 1.0))
    elif KIND == 9:  # softsign
        y = a / (1.0 + tl.abs(a))
    else:  # softplus, log(1 + e^a) = max(a, 0) + log(1 + e^{-|a|})
        y = tl.maximum(a, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(a)))
    return y


@triton.jit
def activation_grad(y, KIND: tl.constexpr, alpha, beta):
    """``φ'(a)`` written from the output ``y = φ(a)``, as :meth:`rnnlab.activations.Activation.grad`."""
    if KIND == 0:
        d = y * (1.0 - y)
    elif KIND == 1:
        d = 1.0 - y * y
    elif KIND == 2:
        d = tl.where(y > 0.0, 1.0, 0.0)
    elif KIND == 3:
        d = tl.where((y > 0.0) & (y < 1.0), alpha, 0.0)
    elif KIND == 4:
        d = tl.where(y > 0.0, 1.0, alpha)
    elif KIND == 5:
        d = tl.where(y != 0.0, 1.0, 0.0)
    elif KIND == 6:
        d = (alpha - y * y / alpha) * beta
    elif KIND == 7:
        d = y * 0.0 + alpha
    elif KIND == 8:
        d = tl.where(y > 0.0, 1.0, y + alpha)
    elif KIND == 9:
        d = (1.0 - tl.abs(y)) * (1.0 - tl.abs(y))
    else:
        d = 1.0 - tl.exp(-y)
    return d
