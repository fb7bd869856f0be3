r"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"), one step and the
coefficients of their parallel scan.

Their gates read the input only, never ``h_{t-1}``, so each is a linear recurrence
``h_t = a_t ∘ h_{t-1} + b_t`` whose coefficients for all steps come from one GEMM, and the
whole sequence is one parallel scan (:mod:`rnnlab.scan`). The candidate goes through the
paper's positive activation ``g`` (``x + 0.5`` for ``x >= 0``, ``σ(x)`` below), as in the
paper's log-space version, so the sequential step and the scan compute the same function.

minGRU, parameters ``weight_ih`` (2H, I) with rows ``W_z, W_h`` and ``bias_ih`` (2H,):

.. math::
    \begin{aligned}
    z_t &= \sigma(W_z x_t + b_z) \\
    \tilde h_t &= g(W_h x_t + b_h) \\
    h_t &= (1 - z_t) \circ h_{t-1} + z_t \circ \tilde h_t
    \end{aligned}

so ``a_t = 1 - z_t``, ``b_t = z_t ∘ h̃_t``, ``log a_t = -softplus(k_z)``,
``log b_t = -softplus(-k_z) + log g(k_h)``.

minLSTM, ``weight_ih`` (3H, I) with rows ``W_f, W_i, W_h`` and ``bias_ih`` (3H,):

.. math::
    \begin{aligned}
    f_t &= \sigma(W_f x_t + b_f), \qquad i_t = \sigma(W_i x_t + b_i) \\
    f'_t &= f_t / (f_t + i_t), \qquad i'_t = i_t / (f_t + i_t) \\
    \tilde h_t &= g(W_h x_t + b_h) \\
    h_t &= f'_t \circ h_{t-1} + i'_t \circ \tilde h_t
    \end{aligned}

With ``d = softplus(-k_f) - softplus(-k_i)`` (``= log i - log f``), ``f' = σ(-d)`` and
``i' = σ(d)``: ``log a_t = -softplus(d)``, ``log b_t = -softplus(-d) + log g(k_h)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.init import uniform_like_torch
from rnnlab.layers import validate
from rnnlab.scan import g, log_g


def min_gru_gates(k: Tensor) -> dict[str, Tensor]:
    """minGRU gates from the pre-activations ``k = W_ih x + b_ih`` (…, 2H): ``z``, ``n`` (= h̃)."""
    k_z, k_h = k.chunk(2, dim=-1)
    return {"z": torch.sigmoid(k_z), "n": g(k_h)}


def min_gru_log_coefficients(k: Tensor) -> tuple[Tensor, Tensor]:
    """``log a, log b`` of the minGRU recurrence from ``k`` (…, 2H)."""
    k_z, k_h = k.chunk(2, dim=-1)
    return -F.softplus(k_z), -F.softplus(-k_z) + log_g(k_h)


def min_lstm_gates(k: Tensor) -> dict[str, Tensor]:
    """minLSTM gates from ``k`` (…, 3H): normalised ``f`` (= f'), ``i`` (= i'), ``g`` (= h̃)."""
    k_f, k_i, k_h = k.chunk(3, dim=-1)
    d = F.softplus(-k_f) - F.softplus(-k_i)
    return {"f": torch.sigmoid(-d), "i": torch.sigmoid(d), "g": g(k_h)}


def min_lstm_log_coefficients(k: Tensor) -> tuple[Tensor, Tensor]:
    """``log a, log b`` of the minLSTM recurrence from ``k`` (…, 3H)."""
    k_f, k_i, k_h = k.chunk(3, dim=-1)
    d = F.softplus(-k_f) - F.softplus(-k_i)
    return -F.softplus(d), -F.softplus(-d) + log_g(k_h)


def min_gru_step(x: Tensor, h: Tensor, weight_ih: Tensor, bias_ih: Tensor | None) -> Tensor:
    """One minGRU step: ``h_t`` from ``x_t`` (B, I) and ``h_{t-1}`` (B, H)."""
    gates = min_gru_gates(F.linear(x, weight_ih, bias_ih))
    return (1 - gates["z"]) * h + gates["z"] * gates["n"]


def min_lstm_step(x: Tensor, h: Tensor, weight_ih: Tensor, bias_ih: Tensor | None) -> Tensor:
    """One minLSTM step: ``h_t`` from ``x_t`` (B, I) and ``h_{t-1}`` (B, H)."""
    gates = min_lstm_gates(F.linear(x, weight_ih, bias_ih))
    return gates["f"] * h + gates["i"] * gates["g"]


class _MinCell(nn.Module):
    gate_count = 2
    step_fn = staticmethod(min_gru_step)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        validate.check_cell_args(input_size, hidden_size, bias, device, dtype)
        kw = {"device": device, "dtype": dtype}
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        rows = self.gate_count * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, **kw))
        self.bias_ih = nn.Parameter(torch.empty(rows, **kw)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(H), 1/sqrt(H)), as torch's recurrent cells."""
        uniform_like_torch(self, self.hidden_size)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """``h_t`` from ``input`` (B, I) or (I,) and ``hx`` (B, H) or (H,) (zeros if None)."""
        validate.check_cell(self, input, hx, {"hx": self.hidden_size})
        if hx is None:
            hx = input.new_zeros(*input.shape[:-1], self.hidden_size)
        return self.step_fn(input, hx, self.weight_ih, self.bias_ih)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class MinGRUCell(_MinCell):
    """One minGRU step (Feng et al. 2024), the sequential form for generation; see the module."""

    gate_count = 2
    step_fn = staticmethod(min_gru_step)


class MinLSTMCell(_MinCell):
    """One minLSTM step (Feng et al. 2024), the sequential form for generation; see the module."""

    gate_count = 3
    step_fn = staticmethod(min_lstm_step)
