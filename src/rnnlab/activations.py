"""Gate and candidate activations for the LSTM and GRU, each with the derivative the
hand-derived BPTT uses.

An :class:`Activation` is a forward function ``y = φ(a)`` and its derivative ``φ'(a)``
written from the *output* ``y`` (so the backward needs only what the forward stored, as the
classic ``σ(1-σ)`` and ``1 - tanh²``). Names and parameters follow ONNX's recurrent operators
(``activations``, ``activation_alpha``, ``activation_beta``):

============================  ==================================  =============================
name (ONNX)                   y = φ(a)                            φ' from the output y
============================  ==================================  =============================
``sigmoid`` (Sigmoid)         1 / (1 + e^{-a})                    y (1 - y)
``tanh`` (Tanh)               tanh(a)                             1 - y²
``relu`` (Relu)               max(a, 0)                           [y > 0]
``hard_sigmoid`` (α=0.2,β=0.5)  clamp(α a + β, 0, 1)              α [0 < y < 1]
``leaky_relu`` (α=0.01)       a if a ≥ 0 else α a                 1 if y > 0 else α   (α ≥ 0)
``thresholded_relu`` (α=1)    a if a > α else 0                   [y ≠ 0]
``scaled_tanh`` (α=1, β=1)    α tanh(β a)                         β (α - y²/α)        (α ≠ 0)
``affine`` (α=1, β=0)         α a + β                             α
``elu`` (α=1)                 a if a > 0 else α (e^a - 1)         1 if y > 0 else y + α (α > 0)
``softsign`` (Softsign)       a / (1 + |a|)                       (1 - |y|)²
``softplus`` (Softplus)       log(1 + e^a)                        1 - e^{-y}
============================  ==================================  =============================

``hard_sigmoid`` defaults to ONNX's (and Keras 2's) α = 0.2; Keras 3's ``hard_sigmoid`` is
``("hard_sigmoid", 1/6, 0.5)``. A layer option takes a name, a tuple ``(name, α[, β])`` or an
:class:`Activation`::

    >>> rnnlab.LSTM(8, 16, gate_activation="hard_sigmoid", activation=("scaled_tanh", 1.7, 0.67))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# name: (ONNX name, default alpha, default beta); None = the activation takes no such parameter
SPECS: dict[str, tuple[str, float | None, float | None]] = {
    "sigmoid": ("Sigmoid", None, None),
    "tanh": ("Tanh", None, None),
    "relu": ("Relu", None, None),
    "hard_sigmoid": ("HardSigmoid", 0.2, 0.5),
    "leaky_relu": ("LeakyRelu", 0.01, None),
    "thresholded_relu": ("ThresholdedRelu", 1.0, None),
    "scaled_tanh": ("ScaledTanh", 1.0, 1.0),
    "affine": ("Affine", 1.0, 0.0),
    "elu": ("Elu", 1.0, None),
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
}
NAMES = tuple(SPECS)


@dataclass(frozen=True)
class Activation:
    """One activation ``φ`` with its parameters; call it on a pre-activation, ``grad`` it on
    the output. Build it with :func:`get`."""

    name: str
    alpha: float | None = None
    beta: float | None = None

    @property
    def onnx_name(self) -> str:
        return SPECS[self.name][0]

    @property
    def kernel_args(self) -> tuple[int, float, float]:
        """``(code, alpha, beta)`` as the compiled engines take an activation: ``code`` its
        index in :data:`NAMES`, absent parameters 0."""
        return NAMES.index(self.name), float(self.alpha or 0.0), float(self.beta or 0.0)

    def __call__(self, a: Tensor) -> Tensor:
        return _FORWARD[self.name](a, self.alpha, self.beta)

    def grad(self, y: Tensor) -> Tensor:
        """``φ'(a)`` written from the output ``y = φ(a)``."""
        return _GRAD[self.name](y, self.alpha, self.beta)

    @property
    def spec(self):
        """The shortest option value giving this activation: its name, or a tuple
        ``(name, alpha[, beta])`` when the parameters are not the defaults."""
        params = tuple(v for v in (self.alpha, self.beta) if v is not None)
        if params == tuple(v for v in SPECS[self.name][1:] if v is not None):
            return self.name
        return (self.name, *params)

    def __str__(self) -> str:
        return str(self.spec)


def get(spec, argument: str = "activation") -> Activation:
    """The :class:`Activation` for a name, a tuple ``(name, alpha[, beta])`` or an
    Activation; ``argument`` names the option in error messages."""
    if isinstance(spec, Activation):
        return spec
    name, params = (spec[0], tuple(spec[1:])) if isinstance(spec, (tuple, list)) and spec \
        else (spec, ())
    if not isinstance(name, str) or name not in SPECS:
        raise ValueError(f"{argument}: expected one of {NAMES} or (name, alpha[, beta]), "
                         f"got {spec!r}")
    _, alpha, beta = SPECS[name]
    takes = sum(v is not None for v in (alpha, beta))
    if len(params) > takes or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       and math.isfinite(v) for v in params):
        raise ValueError(f"{argument}: {name!r} takes {takes} numeric parameter(s), got "
                         f"{params!r}")
    if params:
        alpha = float(params[0])
    if len(params) > 1:
        beta = float(params[1])
    if name == "leaky_relu" and alpha < 0 or name == "elu" and alpha <= 0:
        raise ValueError(f"{argument}: {name!r} needs alpha {'>=' if name == 'leaky_relu' else '>'}"
                         f" 0 (its derivative is read from the output), got {alpha}")
    if name == "scaled_tanh" and alpha == 0:
        raise ValueError(f"{argument}: {name!r} needs alpha != 0, got {alpha}")
    return Activation(name, alpha, beta)


def _float(mask: Tensor, like: Tensor) -> Tensor:
    return mask.to(like.dtype)


_FORWARD = {
    "sigmoid": lambda a, al, be: torch.sigmoid(a),
    "tanh": lambda a, al, be: torch.tanh(a),
    "relu": lambda a, al, be: torch.relu(a),
    "hard_sigmoid": lambda a, al, be: (a * al + be).clamp(0.0, 1.0),
    "leaky_relu": lambda a, al, be: F.leaky_relu(a, al),
    "thresholded_relu": lambda a, al, be: torch.where(a > al, a, 0.0),
    "scaled_tanh": lambda a, al, be: torch.tanh(a * be) * al,
    "affine": lambda a, al, be: a * al + be,
    "elu": lambda a, al, be: F.elu(a, al),  # not where(…, expm1(a)): NaN gradients at large a
    "softsign": lambda a, al, be: a / (1 + a.abs()),
    "softplus": lambda a, al, be: torch.logaddexp(a, torch.zeros_like(a)),  # no threshold
}
_GRAD = {
    "sigmoid": lambda y, al, be: y * (1 - y),
    "tanh": lambda y, al, be: 1 - y * y,
    "relu": lambda y, al, be: _float(y > 0, y),
    "hard_sigmoid": lambda y, al, be: _float((y > 0) & (y < 1), y) * al,
    "leaky_relu": lambda y, al, be: torch.where(y > 0, 1.0, torch.full_like(y, al)),
    "thresholded_relu": lambda y, al, be: _float(y != 0, y),
    "scaled_tanh": lambda y, al, be: (al - y * y / al) * be,
    "affine": lambda y, al, be: torch.full_like(y, al),
    "elu": lambda y, al, be: torch.where(y > 0, 1.0, y + al),
    "softsign": lambda y, al, be: (1 - y.abs()) ** 2,
    "softplus": lambda y, al, be: -torch.expm1(-y),
}

SIGMOID, TANH = get("sigmoid"), get("tanh")
