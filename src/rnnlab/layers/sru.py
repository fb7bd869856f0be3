"""``rnnlab.SRU``: the Simple Recurrent Unit of Lei et al. (2018), with torch.nn's layer API."""

from __future__ import annotations

from rnnlab.bptt.sru import sru_sequence, sru_trace
from rnnlab.layers.base import RecurrentBase
from rnnlab.regularisers import parse as parse_regularisers


class SRU(RecurrentBase):
    r"""Multi-layer SRU (Lei et al. 2018, "Simple Recurrent Units for Highly Parallelizable
    Recurrence"), with the arguments, inputs and outputs of :class:`torch.nn.GRU`. Per layer
    and direction (see :mod:`rnnlab.cells.sru`):

    .. math::
        \begin{aligned}
        \tilde x_t &= W x_t \\
        f_t &= \sigma(W_f x_t + v_f \circ c_{t-1} + b_f) \\
        r_t &= \sigma(W_r x_t + v_r \circ c_{t-1} + b_r) \\
        c_t &= f_t \circ c_{t-1} + (1 - f_t) \circ \tilde x_t \\
        h_t &= r_t \circ c_t + (1 - r_t) \circ x'_t
        \end{aligned}

    with ``x'_t = x_t`` when the layer's input size equals ``hidden_size``, else
    ``x'_t = W_{hw} x_t``. Every matrix product reads the input only: the layer computes them
    for all steps in one GEMM and the time loop is element-wise.

    Parameters per layer ``k`` (suffix ``_reverse`` for the backward direction):
    ``weight_ih_l{k}`` (3H, I_k) with rows ``W, W_f, W_r``, or (4H, I_k) with ``W_hw``
    appended when ``I_k != H`` (layer 0 with ``input_size != hidden_size``, and every layer
    above the first when ``bidirectional``, where ``I_k = 2H``); ``weight_c_l{k}`` (2, H) with
    rows ``v_f, v_r``; ``bias_l{k}`` (2H,) = ``b_f, b_r`` when ``bias``. All are initialised
    ~ U(-1/sqrt(H), 1/sqrt(H)) as torch's recurrent layers.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional:
            as :class:`torch.nn.GRU`.
        backend, initial_state: see :class:`rnnlab.layers.base.RecurrentBase`. torch has no
            SRU, so ``backend="auto"`` runs rnnlab's own engines (``cpu`` on the CPU).
        zoneout, zoneout_eval, generator: zoneout of the cell state ``c`` (its only state),
            train-only: ``c_t = d_t∘c_{t-1} + (1-d_t)∘c̃_t``, ``d_t ~ Bernoulli(zoneout)``,
            and ``h_t`` reads the zoned ``c_t``; see :mod:`rnnlab.regularisers`. (The SRU has
            no ``W_hh``, so no recurrent or weight dropout.)

    Inputs: ``input, c_0`` with ``input`` (T, B, I) / (B, T, I) / (T, I) or a PackedSequence,
    ``c_0`` (D·L, B, H) (zeros when omitted).
    Outputs: ``output`` (T, B, D·H), the ``h_t`` of the last layer, and ``c_n`` (D·L, B, H).

    Example::

        >>> sru = rnnlab.SRU(10, 20, num_layers=2, bidirectional=True)
        >>> out, c = sru(torch.randn(7, 3, 10))
        >>> out.shape, c.shape
        (torch.Size([7, 3, 40]), torch.Size([4, 3, 20]))
    """

    state_names = ("c0",)
    torch_class = None

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, backend: str = "auto", initial_state: str = "zeros", init="torch",
                 zoneout: float = 0.0, zoneout_eval: str = "identity", generator=None,
                 device=None, dtype=None):
        self.regularisers = parse_regularisers("SRU", zoneout=zoneout,
                                               zoneout_eval=zoneout_eval, generator=generator)
        self.generator = generator
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, backend=backend, initial_state=initial_state,
                         init=init, device=device, dtype=dtype)

    def param_shapes(self, layer_input):
        H = self.hidden_size
        rows = (3 if layer_input == H else 4) * H
        shapes = {"weight_ih": (rows, layer_input), "weight_c": (2, H)}
        if self.bias:
            shapes["bias"] = (2 * H,)
        return shapes

    def bptt(self, masks):
        return sru_sequence, sru_trace, (masks,)

    def native_unsupported(self):
        return "torch has no fused SRU op"
