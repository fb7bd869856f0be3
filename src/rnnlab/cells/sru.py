"""The SRU cell (Simple Recurrent Unit), one time step, written as the equations read.

.. math::
    \\begin{aligned}
    \\tilde x_t &= W x_t \\\\
    f_t &= \\sigma(W_f x_t + v_f \\circ c_{t-1} + b_f) \\\\
    r_t &= \\sigma(W_r x_t + v_r \\circ c_{t-1} + b_r) \\\\
    c_t &= f_t \\circ c_{t-1} + (1 - f_t) \\circ \\tilde x_t \\\\
    h_t &= r_t \\circ c_t + (1 - r_t) \\circ x'_t
    \\end{aligned}

Lei et al. (2018), "Simple Recurrent Units for Highly Parallelizable Recurrence". The highway
input ``x'_t`` is ``x_t`` itself when the input size equals the hidden size, else a projection
``W_{hw} x_t``. Every matrix product reads the input only, so a layer computes them for all
steps in one GEMM; the recurrence itself is element-wise (``v_f, v_r`` are vectors).

Parameters: ``weight_ih`` (3H, I) with rows ``W, W_f, W_r`` — (4H, I) with ``W_hw`` appended
when ``I != H`` —, ``weight_c`` (2, H) with rows ``v_f, v_r`` and ``bias`` (2H,) = ``b_f, b_r``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.init import add_parameters
from rnnlab.layers import validate


def sru_step(
    u: Tensor,
    x: Tensor,
    c: Tensor,
    weight_c: Tensor,
    bias: Tensor | None = None,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """One SRU step from the input projection ``u = W_ih x_t`` (B, 3H or 4H).

    ``x`` is the step's input x_t (B, I), the highway input when ``u`` has 3H columns (I = H).
    Returns ``(h_t, c_t, gates)`` where ``gates`` holds ``f, r`` (B, H) each.
    """
    H = c.shape[-1]
    x_tilde, u_f, u_r = u[..., :H], u[..., H:2 * H], u[..., 2 * H:3 * H]
    x_highway = u[..., 3 * H:] if u.shape[-1] == 4 * H else x
    b_f, b_r = (0.0, 0.0) if bias is None else (bias[:H], bias[H:])
    f = torch.sigmoid(u_f + weight_c[0] * c + b_f)
    r = torch.sigmoid(u_r + weight_c[1] * c + b_r)
    c_new = f * c + (1 - f) * x_tilde
    h_new = r * c_new + (1 - r) * x_highway
    return h_new, c_new, {"f": f, "r": r}


class SRUCell(nn.Module):
    """One SRU step as a module; parameters as one layer of :class:`rnnlab.SRU`.

    Args:
        input_size, hidden_size, bias: as :class:`torch.nn.GRUCell`. When
            ``input_size != hidden_size`` the highway path is a projection (``weight_ih`` has
            4H rows).

    Inputs: ``x`` (B, I) or (I,), optional ``c`` (B, H) or (H,).
    Outputs: ``(h_t, c_t)``.

    Example::

        >>> cell = SRUCell(3, 5)
        >>> h, c = cell(torch.randn(2, 3))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 device=None, dtype=None):
        super().__init__()
        validate.check_cell_args(input_size, hidden_size, bias, device, dtype)
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = (3 if input_size == hidden_size else 4) * hidden_size
        add_parameters(self, hidden_size, {"weight_ih": (rows, input_size),
                                           "weight_c": (2, hidden_size),
                                           "bias": (2 * hidden_size,) if bias else None},
                       device=device, dtype=dtype)

    def forward(self, x: Tensor, c: Tensor | None = None):
        validate.check_cell(self, x, c, {"c": self.hidden_size})
        unbatched = x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)
            c = None if c is None else c.unsqueeze(0)
        if c is None:
            c = x.new_zeros(x.shape[0], self.hidden_size)
        h, c, _ = sru_step(F.linear(x, self.weight_ih), x, c, self.weight_c, self.bias)
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)
