"""The GRU cell, one time step, written as the equations read.

.. math::
    \\begin{aligned}
    r_t &= \\sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\\\
    z_t &= \\sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\\\
    n_t &= \\tanh(W_{in} x_t + b_{in} + r_t \\circ (W_{hn} h_{t-1} + b_{hn})) \\\\
    h_t &= (1 - z_t) \\circ n_t + z_t \\circ h_{t-1}
    \\end{aligned}

Cho et al. (2014). Gate order in the weights is ``r, z, n`` as in :class:`torch.nn.GRU`.
Options beyond torch:

* ``reset_after=False``: the original formulation, the reset gate applied *before* the
  recurrent product, ``n_t = tanh(W_in x_t + b_in + W_hn (r_t∘h_{t-1}) + b_hn)`` (same
  parameters). ``reset_after=True`` is torch's and cuDNN's form above.
* layer normalisation (Ba et al. 2016, as Haste's ``LayerNormGRU``): the input and recurrent
  pre-activations are each normalised over their 3H rows with a learned gain and no shift,
  then the biases are added::

      gx_t = LN(W_ih x_t)∘γ_ih + b_ih,   gh_t = LN(W_hh h_{t-1})∘γ_hh + b_hh
      LN(v) = (v - mean(v)) / sqrt(var(v) + ε),  ε = 1e-5  (biased variance)

  and the gates read ``gx``, ``gh`` in place of the plain affine maps (``reset_after`` form).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.init import add_parameters, gate_shapes
from rnnlab.layers import validate

LN_EPS = 1e-5


def gru_step(x_proj: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Tensor | None = None, *,
             reset_after: bool = True, gate_act=torch.sigmoid, cand_act=torch.tanh,
             recurrent_mask: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """One GRU step from the input contribution ``x_proj = W_ih x_t + b_ih`` (B, 3H).

    ``gate_act`` (of r, z) and ``cand_act`` (of n) replace σ and tanh. ``recurrent_mask``
    (B, H) multiplies ``h_{t-1}`` where it enters ``W_hh`` (recurrent dropout), not in
    ``z∘h_{t-1}``. Returns ``(h_t, gates)`` where ``gates`` holds ``r, z, n`` (B, H) each.
    """
    h_in = h if recurrent_mask is None else h * recurrent_mask
    if reset_after:
        return gates_to_state(x_proj, F.linear(h_in, weight_hh, bias_hh), h, gate_act=gate_act,
                              cand_act=cand_act)
    H = h.shape[-1]
    x_r, x_z, x_n = x_proj.chunk(3, dim=-1)
    w_rz, w_n = weight_hh.split([2 * H, H])
    b_rz, b_n = (None, None) if bias_hh is None else bias_hh.split([2 * H, H])
    h_r, h_z = F.linear(h_in, w_rz, b_rz).chunk(2, dim=-1)
    r = gate_act(x_r + h_r)
    z = gate_act(x_z + h_z)
    n = cand_act(x_n + F.linear(r * h_in, w_n, b_n))
    return (1 - z) * n + z * h, {"r": r, "z": z, "n": n}


def gates_to_state(gx: Tensor, gh: Tensor, h: Tensor, *, gate_act=torch.sigmoid,
                   cand_act=torch.tanh) -> tuple[Tensor, dict[str, Tensor]]:
    """The ``reset_after`` gates from the input and recurrent pre-activations (B, 3H) each."""
    x_r, x_z, x_n = gx.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = gate_act(x_r + h_r)
    z = gate_act(x_z + h_z)
    n = cand_act(x_n + r * h_n)
    return (1 - z) * n + z * h, {"r": r, "z": z, "n": n}


def layer_norm(v: Tensor, gain: Tensor, eps: float = LN_EPS) -> Tensor:
    """``(v - mean(v)) / sqrt(var(v) + eps) ∘ gain`` over the last dimension, no shift."""
    mean = v.mean(-1, keepdim=True)
    var = ((v - mean) ** 2).mean(-1, keepdim=True)
    return (v - mean) / torch.sqrt(var + eps) * gain


def layernorm_gru_step(x_proj: Tensor, h: Tensor, weight_hh: Tensor, ln_hh_weight: Tensor,
                       bias_hh: Tensor | None = None, *, gate_act=torch.sigmoid,
                       cand_act=torch.tanh, recurrent_mask: Tensor | None = None
                       ) -> tuple[Tensor, dict[str, Tensor]]:
    """One layer-normalised GRU step from ``x_proj = LN(W_ih x_t)∘γ_ih + b_ih`` (B, 3H).

    ``gh = LN(W_hh h̄)∘γ_hh + b_hh`` with ``h̄ = h_{t-1}`` (``recurrent_mask∘h_{t-1}`` with
    recurrent dropout, not in ``z∘h_{t-1}``); activations as :func:`gru_step`. Returns
    ``(h_t, gates)`` as :func:`gru_step`.
    """
    h_in = h if recurrent_mask is None else h * recurrent_mask
    gh = layer_norm(F.linear(h_in, weight_hh), ln_hh_weight)
    if bias_hh is not None:
        gh = gh + bias_hh
    return gates_to_state(x_proj, gh, h, gate_act=gate_act, cand_act=cand_act)


class GRUCell(nn.Module):
    """Drop-in for :class:`torch.nn.GRUCell` (same parameters), plus the options above.

    Args:
        input_size, hidden_size, bias: as torch.
        reset_after: torch's form (True) or the original one (False).
        layer_norm: add gains ``ln_ih_weight``, ``ln_hh_weight`` (3H,), initialised to 1.

    Inputs: ``x`` (B, I) or (I,), optional ``h`` (B, H) or (H,).
    Output: ``h_t``.

    Example::

        >>> cell = GRUCell(3, 5, reset_after=False)
        >>> h = cell(torch.randn(2, 3))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 reset_after: bool = True, layer_norm: bool = False, device=None, dtype=None):
        super().__init__()
        validate.check_cell_args(input_size, hidden_size, bias, device, dtype)
        validate.check_bool("reset_after", reset_after)
        validate.check_bool("layer_norm", layer_norm)
        if layer_norm and not reset_after:
            raise ValueError("layer_norm: only supported with reset_after=True")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.reset_after, self.layer_norm = reset_after, layer_norm
        G = 3 * hidden_size
        gains = (G,) if layer_norm else None
        add_parameters(self, hidden_size, gate_shapes(G, input_size, hidden_size, bias),
                       ones={"ln_ih_weight": gains, "ln_hh_weight": gains},
                       device=device, dtype=dtype)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        validate.check_cell(self, x, h, {"h": self.hidden_size})
        unbatched = x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)
            h = None if h is None else h.unsqueeze(0)
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        if self.layer_norm:
            x_proj = layer_norm(F.linear(x, self.weight_ih), self.ln_ih_weight)
            if self.bias_ih is not None:
                x_proj = x_proj + self.bias_ih
            h, _ = layernorm_gru_step(x_proj, h, self.weight_hh, self.ln_hh_weight, self.bias_hh)
        else:
            h, _ = gru_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh,
                            self.bias_hh, reset_after=self.reset_after)
        return h.squeeze(0) if unbatched else h

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if not self.reset_after:
            s += ", reset_after=False"
        if self.layer_norm:
            s += ", layer_norm=True"
        return s
