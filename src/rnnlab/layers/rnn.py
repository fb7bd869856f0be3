"""``rnnlab.RNN``: drop-in for :class:`torch.nn.RNN` (Elman network, tanh or ReLU)."""

from __future__ import annotations

from torch import nn

from rnnlab.bptt.rnn import RNNOptions, rnn_sequence, rnn_trace
from rnnlab.cells.rnn import check_nonlinearity
from rnnlab.layers.base import RecurrentBase
from rnnlab.regularisers import parse as parse_regularisers


class RNN(RecurrentBase):
    r"""Multi-layer Elman RNN, the same module as :class:`torch.nn.RNN` (arguments, parameter
    names, inputs and outputs), computed by an interchangeable backend. Per layer and
    direction:

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),
        \qquad \phi = \tanh \text{ or } \mathrm{ReLU}

    Args:
        input_size, hidden_size, num_layers, nonlinearity (``'tanh'`` or ``'relu'``), bias,
        batch_first, dropout, bidirectional: as :class:`torch.nn.RNN` (same positions).
        backend, initial_state: see :class:`rnnlab.layers.base.RecurrentBase`.
        recurrent_dropout, zoneout, weight_dropout, zoneout_eval, generator: regularisers
            inside the recurrence, train-only (:mod:`rnnlab.regularisers`): variational
            dropout on ``h_{t-1}`` in ``W_hh h_{t-1}``, zoneout of ``h``, DropConnect on
            ``W_hh``. Not torch's (``backend="native"`` refuses them); the reference, cpu and
            triton engines compute them.

    Inputs: ``input, h_0`` with ``input`` (T, B, I) / (B, T, I) / (T, I) or a PackedSequence,
    ``h_0`` (D·L, B, H). Outputs: ``output, h_n`` as torch.

    Example::

        >>> rnn = rnnlab.RNN(10, 20, num_layers=2, nonlinearity="relu")
        >>> out, h = rnn(torch.randn(7, 3, 10))
        >>> out.shape, h.shape
        (torch.Size([7, 3, 20]), torch.Size([2, 3, 20]))
    """

    gate_count = 1
    state_names = ("h0",)
    torch_class = nn.RNN

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, *, backend: str = "auto",
                 initial_state: str = "zeros", init="torch", recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0, weight_dropout: float = 0.0,
                 zoneout_eval: str = "identity", generator=None, device=None, dtype=None):
        self.nonlinearity = check_nonlinearity(nonlinearity)
        self.regularisers = parse_regularisers(
            "RNN", recurrent_dropout=recurrent_dropout, zoneout=zoneout,
            weight_dropout=weight_dropout, zoneout_eval=zoneout_eval, generator=generator)
        self.generator = generator
        self.options = RNNOptions(nonlinearity=nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, backend=backend, initial_state=initial_state,
                         init=init, device=device, dtype=dtype)

    @property
    def native_mode(self) -> str:
        return "RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU"

    def bptt(self, masks):
        return rnn_sequence, rnn_trace, (self.options, masks)

    def torch_kwargs(self):
        return {**super().torch_kwargs(), "nonlinearity": self.nonlinearity}

    def extra_repr_options(self):
        return [] if self.nonlinearity == "tanh" else [f"nonlinearity={self.nonlinearity!r}"]
