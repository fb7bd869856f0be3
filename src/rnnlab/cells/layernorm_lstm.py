"""The layer-normalised LSTM cell (Ba et al. 2016, as Haste's ``LayerNormLSTM``), one step.

.. math::
    \\begin{aligned}
    a_t &= \\mathrm{LN}(W_{ih} x_t) \\circ \\gamma_{ih} + \\mathrm{LN}(W_{hh} h_{t-1}) \\circ \\gamma_{hh}
           + b_{ih} + b_{hh} \\\\
    i_t, f_t, g_t, o_t &= \\sigma(a_i), \\sigma(a_f), \\tanh(a_g), \\sigma(a_o) \\\\
    c_t &= f_t \\circ c_{t-1} + i_t \\circ g_t \\\\
    h_t &= o_t \\circ \\tanh(\\mathrm{LN}(c_t) \\circ \\gamma_c + \\beta_c)
    \\end{aligned}

``LN(z) = (z - mean(z)) / sqrt(var(z) + eps)`` over the features of one row (all 4H gate rows
for the two input terms, H for the cell), ``eps = 1e-5``, with biased variance. The cell state
carried to the next step is the un-normalised ``c_t``. Gate order ``i, f, g, o`` as
:class:`torch.nn.LSTM`; the parameters are torch's plus ``ln_ih_weight`` (4H,) = γ_ih,
``ln_hh_weight`` (4H,) = γ_hh, ``ln_c_weight`` (H,) = γ_c and ``ln_c_bias`` (H,) = β_c.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.init import add_parameters, gate_shapes
from rnnlab.layers import validate

LN_EPS = 1e-5


def layernorm_lstm_step(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None,
    bias_hh: Tensor | None,
    ln_ih_weight: Tensor,
    ln_hh_weight: Tensor,
    ln_c_weight: Tensor,
    ln_c_bias: Tensor,
    eps: float = LN_EPS,
    *,
    gate_act=torch.sigmoid,
    cand_act=torch.tanh,
    out_act=torch.tanh,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """One layer-normalised LSTM step from the input x_t (B, I).

    ``gate_act`` (of i, f, o), ``cand_act`` (of g) and ``out_act`` (of the normalised cell in
    ``h_t``) replace σ, tanh, tanh, as in :func:`rnnlab.cells.lstm.lstm_step`. Returns
    ``(h_t, c_t, gates)`` where ``gates`` holds ``i, f, g, o`` (B, H) each.
    """
    G = weight_ih.shape[0]
    a = (F.layer_norm(F.linear(x, weight_ih), (G,), ln_ih_weight, None, eps)
         + F.layer_norm(F.linear(h, weight_hh), (G,), ln_hh_weight, None, eps))
    if bias_ih is not None:
        a = a + bias_ih + bias_hh
    a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
    i, f, g, o = gate_act(a_i), gate_act(a_f), cand_act(a_g), gate_act(a_o)
    c_new = f * c + i * g
    h_new = o * out_act(F.layer_norm(c_new, (c.shape[-1],), ln_c_weight, ln_c_bias, eps))
    return h_new, c_new, {"i": i, "f": f, "g": g, "o": o}


class LayerNormLSTMCell(nn.Module):
    """One layer-normalised LSTM step as a module; parameters as one layer of
    ``rnnlab.LSTM(..., layer_norm=True)``.

    Args:
        input_size, hidden_size, bias: as :class:`torch.nn.LSTMCell`.

    Inputs: ``x`` (B, I) or (I,), optional ``(h, c)`` (B, H) each.
    Outputs: ``(h_t, c_t)``.

    Example::

        >>> cell = LayerNormLSTMCell(3, 5)
        >>> h, c = cell(torch.randn(2, 3))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 device=None, dtype=None):
        super().__init__()
        validate.check_cell_args(input_size, hidden_size, bias, device, dtype)
        self.input_size, self.hidden_size = input_size, hidden_size
        G = 4 * hidden_size
        add_parameters(self, hidden_size, gate_shapes(G, input_size, hidden_size, bias),
                       ones={"ln_ih_weight": (G,), "ln_hh_weight": (G,),
                             "ln_c_weight": (hidden_size,)},
                       zeros={"ln_c_bias": (hidden_size,)}, device=device, dtype=dtype)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None):
        validate.check_cell(self, x, state, {"h": self.hidden_size, "c": self.hidden_size})
        unbatched = x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)
            state = None if state is None else tuple(s.unsqueeze(0) for s in state)
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        h, c, _ = layernorm_lstm_step(x, *state, self.weight_ih, self.weight_hh, self.bias_ih,
                                      self.bias_hh, self.ln_ih_weight, self.ln_hh_weight,
                                      self.ln_c_weight, self.ln_c_bias)
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)
