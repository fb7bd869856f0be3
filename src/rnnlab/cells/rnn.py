"""The Elman RNN cell, one time step, written as the equation reads.

.. math::
    h_t = \\phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),
    \\qquad \\phi \\in \\{\\tanh, \\mathrm{ReLU}\\}

Elman (1990). Parameters as :class:`torch.nn.RNNCell`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.init import uniform_like_torch
from rnnlab.layers import validate

NONLINEARITIES = ("tanh", "relu")


def check_nonlinearity(nonlinearity) -> str:
    """The validated ``nonlinearity`` argument (``'tanh'`` or ``'relu'``)."""
    validate.check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    return nonlinearity


def rnn_step(x_proj: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Tensor | None = None, *,
             nonlinearity: str = "tanh") -> Tensor:
    """One RNN step from the input contribution ``x_proj = W_ih x_t + b_ih`` (B, H).

    Returns ``h_t = φ(x_proj + W_hh h_{t-1} + b_hh)``.
    """
    a = x_proj + F.linear(h, weight_hh, bias_hh)
    return torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a)


class RNNCell(nn.Module):
    """Drop-in for :class:`torch.nn.RNNCell` (same arguments and parameters).

    Args:
        input_size, hidden_size, bias, nonlinearity (``'tanh'`` or ``'relu'``): as torch.

    Inputs: ``x`` (B, I) or (I,), optional ``h`` (B, H) or (H,).
    Output: ``h_t``.

    Example::

        >>> cell = RNNCell(3, 5, nonlinearity="relu")
        >>> h = cell(torch.randn(2, 3))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        super().__init__()
        validate.check_cell_args(input_size, hidden_size, bias, device, dtype)
        kw = {"device": device, "dtype": dtype}
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.nonlinearity = check_nonlinearity(nonlinearity)
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size, **kw))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size, **kw)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(hidden_size, **kw)) if bias else None
        uniform_like_torch(self, hidden_size)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        validate.check_cell(self, x, h, {"h": self.hidden_size})
        unbatched = x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)
            h = None if h is None else h.unsqueeze(0)
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        h = rnn_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh,
                     nonlinearity=self.nonlinearity)
        return h.squeeze(0) if unbatched else h

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s
