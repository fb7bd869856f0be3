"""``rnnlab.MinGRU`` and ``rnnlab.MinLSTM`` (Feng et al. 2024, "Were RNNs All We Needed?"):
recurrent layers whose gates read only the input, trained with a log-space parallel scan over
time, with torch.nn's layer API and a sequential :meth:`step` for generation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.cells.min_rnn import (
    min_gru_gates,
    min_gru_log_coefficients,
    min_gru_step,
    min_lstm_gates,
    min_lstm_log_coefficients,
    min_lstm_step,
)
from rnnlab.layers import validate
from rnnlab.layers.base import RecurrentBase
from rnnlab.scan import scan_log


class _MinRNN(RecurrentBase):
    r"""Shared machinery of :class:`MinGRU` and :class:`MinLSTM`.

    Per layer and direction, ``k = W_ih x + b_ih`` for all steps is one GEMM, the cell turns it
    into the log-coefficients of ``h_t = a_t ∘ h_{t-1} + b_t`` (see :mod:`rnnlab.cells.min_rnn`)
    and :func:`rnnlab.scan.scan_log` computes every ``h_t`` at once (cumulative sum and
    cumulative log-sum-exp over time, no Python loop); autograd differentiates the scan.

    Padded steps (``lengths=`` or a PackedSequence): the scan is causal, so the steps past a
    sequence's end never reach its valid steps; their outputs are set to 0 and ``h_n`` is the
    state at the last valid step, which is the same as scanning with ``a_t = 1, b_t = 0`` on
    padded steps. The reverse direction reverses each sequence within its own length.
    """

    state_names = ("h0",)
    torch_class = None
    log_coefficients = staticmethod(min_gru_log_coefficients)
    gates_fn = staticmethod(min_gru_gates)
    step_fn = staticmethod(min_gru_step)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, backend: str = "auto", initial_state: str = "zeros", init="torch",
                 device=None, dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, backend=backend, initial_state=initial_state,
                         init=init, device=device, dtype=dtype)

    def param_shapes(self, layer_input):
        rows = self.gate_count * self.hidden_size
        shapes = {"weight_ih": (rows, layer_input)}
        if self.bias:
            shapes["bias_ih"] = (rows,)
        return shapes

    def _pre(self, x: Tensor, params) -> Tensor:
        return F.linear(x, params["weight_ih"], params.get("bias_ih"))

    def sequence(self, x, state, params, mask, *_):
        log_a, log_b = self.log_coefficients(self._pre(x, params))
        h = scan_log(log_a, log_b, state[0])
        return _finish(h, state[0], mask)

    def trace_sequence(self, x, state, params, mask, *_):
        k = self._pre(x, params)
        gates = self.gates_fn(k)
        h, _ = _finish(scan_log(*self.log_coefficients(k), state[0]), state[0], mask)
        if mask is not None:
            gates = {name: torch.where(mask, v, 0.0) for name, v in gates.items()}
        return {**gates, "h": h}

    def native_unsupported(self):
        return f"torch has no {type(self).__name__}"

    def step(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One time step through every layer, the sequential form (for generation).

        ``input`` (B, I) or (I,), ``hx`` (L, B, H) or (L, H) (the layer's initial state when
        None). Returns ``(output (B, H), h (L, B, H))`` (without B for an unbatched input).
        Running ``step`` over ``t = 1 … T`` gives the outputs of :meth:`forward` (eval mode).
        """
        if self.bidirectional:
            raise ValueError("step: a bidirectional layer reads the future; step runs only "
                             "unidirectional layers")
        validate.check_step_input(self, input)
        if hx is not None:
            validate.check_state(self, hx, "hx",
                                 (self.num_layers, *input.shape[:-1], self.hidden_size))
        unbatched = input.dim() == 1
        if unbatched:
            input = input.unsqueeze(0)
            hx = None if hx is None else hx.unsqueeze(1)
        if hx is None:
            hx = self.initial_states(input.shape[0], input)[0]
        x, states = input, []
        for k in range(self.num_layers):
            p = self.cell_params(k, 0)
            x = self.step_fn(x, hx[k], p["weight_ih"], p.get("bias_ih"))
            states.append(x)
            if self.dropout and self.training and k < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        h = torch.stack(states)
        return (x.squeeze(0), h.squeeze(1)) if unbatched else (x, h)


def _finish(h: Tensor, h0: Tensor, mask: Tensor | None):
    """Outputs 0 on padded steps and the state at each sequence's last valid step."""
    if mask is None:
        return h, (h[-1],)
    lengths = mask.sum(0)  # (B, 1)
    index = (lengths - 1).clamp(min=0).unsqueeze(0).expand(1, *h.shape[1:])
    last = torch.where(lengths > 0, h.gather(0, index).squeeze(0), h0)
    return torch.where(mask, h, 0.0), (last,)


class MinGRU(_MinRNN):
    r"""Multi-layer minGRU (Feng et al. 2024, "Were RNNs All We Needed?"), with the arguments,
    inputs and outputs of :class:`torch.nn.GRU`. Per layer and direction
    (see :mod:`rnnlab.cells.min_rnn`):

    .. math::
        z_t = \sigma(W_z x_t + b_z), \quad \tilde h_t = g(W_h x_t + b_h), \quad
        h_t = (1 - z_t) \circ h_{t-1} + z_t \circ \tilde h_t

    with ``g(x) = x + 0.5`` (x >= 0), ``σ(x)`` (x < 0). Trained with a parallel scan over time
    (:mod:`rnnlab.scan`), not a loop; :meth:`step` is the sequential form.

    Parameters per layer ``k`` (suffix ``_reverse`` for the backward direction):
    ``weight_ih_l{k}`` (2H, I_k) with rows ``W_z, W_h`` and ``bias_ih_l{k}`` (2H,), initialised
    ~ U(-1/sqrt(H), 1/sqrt(H)). No recurrent weights.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as
            :class:`torch.nn.GRU`.
        backend, initial_state, init: see :class:`rnnlab.layers.base.RecurrentBase` (the
            scan runs on the reference engine; ``init`` accepts ``forget_bias`` and ``chrono``,
            which set ``b_z`` to minus the value, ``1 - z`` being the forget-like gate).

    Inputs ``input, h_0`` and outputs ``output, h_n`` as :class:`torch.nn.GRU` (padded
    ``lengths=`` and PackedSequence included).

    Example::

        >>> gru = rnnlab.MinGRU(10, 20, num_layers=2, batch_first=True)
        >>> out, h = gru(torch.randn(3, 7, 10))
        >>> out.shape, h.shape
        (torch.Size([3, 7, 20]), torch.Size([2, 3, 20]))
        >>> y, h = gru.step(torch.randn(3, 10), h)     # one more step, sequentially
    """

    gate_count = 2
    log_coefficients = staticmethod(min_gru_log_coefficients)
    gates_fn = staticmethod(min_gru_gates)
    step_fn = staticmethod(min_gru_step)


class MinLSTM(_MinRNN):
    r"""Multi-layer minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"), with the arguments,
    inputs and outputs of :class:`torch.nn.GRU` (one state ``h``, no cell state). Per layer and
    direction (see :mod:`rnnlab.cells.min_rnn`):

    .. math::
        \begin{aligned}
        f_t &= \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i), \quad
        \tilde h_t = g(W_h x_t + b_h) \\
        h_t &= \frac{f_t}{f_t + i_t} \circ h_{t-1} + \frac{i_t}{f_t + i_t} \circ \tilde h_t
        \end{aligned}

    Trained with a parallel scan over time (:mod:`rnnlab.scan`); :meth:`step` is the
    sequential form.

    Parameters per layer ``k``: ``weight_ih_l{k}`` (3H, I_k) with rows ``W_f, W_i, W_h`` and
    ``bias_ih_l{k}`` (3H,), initialised ~ U(-1/sqrt(H), 1/sqrt(H)). No recurrent weights.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as
            :class:`torch.nn.GRU`.
        backend, initial_state, init: see :class:`rnnlab.layers.base.RecurrentBase` (``init``
            accepts ``forget_bias`` (sets ``b_f``) and ``chrono`` (``b_f``, and ``b_i = -b_f``)).

    Example::

        >>> lstm = rnnlab.MinLSTM(10, 20, bidirectional=True)
        >>> out, h = lstm(torch.randn(7, 3, 10))
        >>> out.shape, h.shape
        (torch.Size([7, 3, 40]), torch.Size([2, 3, 20]))
    """

    gate_count = 3
    log_coefficients = staticmethod(min_lstm_log_coefficients)
    gates_fn = staticmethod(min_lstm_gates)
    step_fn = staticmethod(min_lstm_step)
