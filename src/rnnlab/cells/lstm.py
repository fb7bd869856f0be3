"""The LSTM cell, one time step, written as the equations read.

.. math::
    \\begin{aligned}
    i_t &= \\sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi} + p_i \\circ c_{t-1}) \\\\
    f_t &= \\sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf} + p_f \\circ c_{t-1}) \\\\
    g_t &= \\tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\\\
    c_t &= \\mathrm{clip}(f_t \\circ c_{t-1} + i_t \\circ g_t) \\\\
    o_t &= \\sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho} + p_o \\circ c_t) \\\\
    h_t &= W_{hr} (o_t \\circ \\tanh(c_t))
    \\end{aligned}

Hochreiter & Schmidhuber (1997) with the forget gate of Gers et al. (2000). Gate order in the
weights is ``i, f, g, o`` as in :class:`torch.nn.LSTM`. Options beyond torch:

* peepholes ``p_i, p_f, p_o`` (Gers & Schmidhuber 2000): ``i, f`` see ``c_{t-1}``, ``o`` sees ``c_t``;
* cell clipping: ``c_t`` clamped to ``[-cell_clip, cell_clip]`` (TensorFlow's ``cell_clip``; ONNX's
  ``clip`` is a different function: it clamps the gate pre-activations);
* coupled input-forget gate: ``i_t = 1 - f_t`` (the ``i`` rows are unused; ONNX's
  ``input_forget`` couples them the other way, and :mod:`rnnlab.onnx` converts);
* projection ``W_{hr}`` (Sak et al. 2014, torch's ``proj_size``); without it ``h_t = o_t∘tanh(c_t)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.init import uniform_like_torch
from rnnlab.layers import validate


def lstm_step(
    x_proj: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None = None,
    *,
    peephole: Tensor | None = None,
    cell_clip: float | None = None,
    coupled: bool = False,
    weight_hr: Tensor | None = None,
    gate_act=torch.sigmoid,
    cand_act=torch.tanh,
    out_act=torch.tanh,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """One LSTM step from the input contribution ``x_proj = W_ih x_t + b_ih`` (B, 4H).

    ``peephole`` is (3, H) with rows ``p_i, p_f, p_o``. ``gate_act`` (of i, f, o),
    ``cand_act`` (of g) and ``out_act`` (of c_t in h_t) replace σ, tanh, tanh (any callable,
    e.g. an :class:`rnnlab.activations.Activation`). Returns ``(h_t, c_t, gates)`` where
    ``gates`` holds ``i, f, g, o`` (B, H) each.
    """
    a = x_proj + F.linear(h, weight_hh, bias_hh)
    a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
    if peephole is not None:
        a_i = a_i + peephole[0] * c
        a_f = a_f + peephole[1] * c
    f = gate_act(a_f)
    i = 1 - f if coupled else gate_act(a_i)
    g = cand_act(a_g)
    c_new = f * c + i * g
    if cell_clip is not None:
        c_new = c_new.clamp(-cell_clip, cell_clip)
    if peephole is not None:
        a_o = a_o + peephole[2] * c_new
    o = gate_act(a_o)
    h_new = o * out_act(c_new)
    if weight_hr is not None:
        h_new = F.linear(h_new, weight_hr)
    return h_new, c_new, {"i": i, "f": f, "g": g, "o": o}


class LSTMCell(nn.Module):
    """Drop-in for :class:`torch.nn.LSTMCell` (same parameters), plus the options above.

    Args:
        input_size, hidden_size, bias: as torch.
        peephole: add ``peephole`` (3, H), rows ``p_i, p_f, p_o``.
        cell_clip: clamp ``c_t`` to ``[-cell_clip, cell_clip]``.
        coupled: use ``i_t = 1 - f_t``.
        proj_size: project ``h_t`` to this size with ``weight_hr`` (P, H).

    Inputs: ``x`` (B, I) or (I,), optional ``(h, c)`` (B, P or H) and (B, H).
    Outputs: ``(h_t, c_t)``.

    Example::

        >>> cell = LSTMCell(3, 5, peephole=True)
        >>> h, c = cell(torch.randn(2, 3))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 peephole: bool = False, cell_clip: float | None = None, coupled: bool = False,
                 proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        validate.check_cell_args(input_size, hidden_size, bias, device, dtype)
        validate.check_bool("peephole", peephole)
        validate.check_bool("coupled", coupled)
        validate.check_cell_clip(cell_clip)
        validate.check_proj_size(proj_size, hidden_size)
        kw = {"device": device, "dtype": dtype}
        self.input_size, self.hidden_size, self.proj_size = input_size, hidden_size, proj_size
        self.cell_clip, self.coupled = cell_clip, coupled
        out = proj_size or hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, out, **kw))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size, **kw)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size, **kw)) if bias else None
        self.peephole = nn.Parameter(torch.empty(3, hidden_size, **kw)) if peephole else None
        self.weight_hr = nn.Parameter(torch.empty(proj_size, hidden_size, **kw)) if proj_size else None
        uniform_like_torch(self, hidden_size)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None):
        validate.check_cell(self, x, state, {"h": self.proj_size or self.hidden_size,
                                             "c": self.hidden_size})
        unbatched = x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)
            state = None if state is None else tuple(s.unsqueeze(0) for s in state)
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.proj_size or self.hidden_size)
            state = (zeros, x.new_zeros(x.shape[0], self.hidden_size))
        h, c, _ = lstm_step(F.linear(x, self.weight_ih, self.bias_ih), *state, self.weight_hh,
                            self.bias_hh, peephole=self.peephole, cell_clip=self.cell_clip,
                            coupled=self.coupled, weight_hr=self.weight_hr)
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)
