"""``rnnlab.GRU``: drop-in for :class:`torch.nn.GRU`, plus the original ``reset_after=False``
formulation and a layer-normalised GRU."""

from __future__ import annotations

import torch
from torch import nn

from rnnlab import activations
from rnnlab.bptt.gru import GRUOptions, gru_sequence, gru_trace
from rnnlab.bptt.layernorm_gru import layernorm_gru_sequence, layernorm_gru_trace
from rnnlab.layers import validate
from rnnlab.layers.base import RecurrentBase
from rnnlab.regularisers import parse as parse_regularisers


class GRU(RecurrentBase):
    r"""Multi-layer GRU, the same module as :class:`torch.nn.GRU` (arguments, parameter names,
    gate order ``r, z, n``, inputs and outputs), computed by an interchangeable backend. Per
    layer and direction (see :mod:`rnnlab.cells.gru` for the options):

    .. math::
        \begin{aligned}
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \circ (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \circ n_t + z_t \circ h_{t-1}
        \end{aligned}

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional:
            as :class:`torch.nn.GRU`.
        reset_after: True (torch, cuDNN) as above; False is the original formulation
            ``n_t = tanh(W_in x_t + b_in + W_hn (r_t∘h_{t-1}) + b_hn)``, same parameters.
        layer_norm: layer-normalise the input and recurrent pre-activations over their 3H
            rows (no shift), ``gx = LN(W_ih x)∘γ_ih + b_ih``, ``gh = LN(W_hh h)∘γ_hh + b_hh``,
            with gains ``ln_ih_weight_l{k}``, ``ln_hh_weight_l{k}`` (3H,) initialised to 1.
            Requires ``reset_after=True``; combines with the activations and regularisers.
        gate_activation: the activation of ``r, z`` (default ``"sigmoid"``); activation: of
            the candidate ``n`` (default ``"tanh"``). A name, ``(name, alpha[, beta])`` or an
            Activation, see :mod:`rnnlab.activations`. Non-default ones are not torch's
            (``backend="native"`` refuses them); the reference, cpu and triton engines compute
            them.
        recurrent_dropout, zoneout, weight_dropout, zoneout_eval, generator: regularisers
            inside the recurrence, train-only, not torch's (the reference, cpu and triton
            engines compute them); see :mod:`rnnlab.regularisers`.
        backend, initial_state: see :class:`rnnlab.layers.base.RecurrentBase`.

    Inputs: ``input, h_0`` with ``input`` (T, B, I) / (B, T, I) / (T, I) or a PackedSequence,
    ``h_0`` (D·L, B, H). Outputs: ``output, h_n`` as torch.

    Example::

        >>> gru = rnnlab.GRU(10, 20, num_layers=2, layer_norm=True)
        >>> out, h = gru(torch.randn(7, 3, 10))
        >>> out.shape, h.shape
        (torch.Size([7, 3, 20]), torch.Size([2, 3, 20]))
    """

    gate_count = 3
    state_names = ("h0",)
    torch_class = nn.GRU
    native_mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, reset_after: bool = True, layer_norm: bool = False, backend: str = "auto",
                 initial_state: str = "zeros", init="torch", gate_activation="sigmoid",
                 activation="tanh", recurrent_dropout: float = 0.0, zoneout: float = 0.0,
                 weight_dropout: float = 0.0, zoneout_eval: str = "identity", generator=None,
                 device=None, dtype=None):
        for name, value in (("reset_after", reset_after), ("layer_norm", layer_norm)):
            validate.check_bool(name, value)
        if layer_norm and not reset_after:
            raise ValueError("layer_norm: the layer-normalised GRU needs reset_after=True "
                             "(LN over all 3H recurrent rows needs them before r is known)")
        self.layer_norm = layer_norm
        self.options = GRUOptions(
            reset_after=reset_after,
            gate_act=activations.get(gate_activation, "gate_activation"),
            cand_act=activations.get(activation, "activation"))
        self.regularisers = parse_regularisers(
            "GRU", recurrent_dropout=recurrent_dropout, zoneout=zoneout,
            weight_dropout=weight_dropout, zoneout_eval=zoneout_eval, generator=generator)
        self.generator = generator
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, backend=backend, initial_state=initial_state,
                         init=init, device=device, dtype=dtype)

    @property
    def reset_after(self) -> bool:
        return self.options.reset_after

    def param_shapes(self, layer_input):
        shapes = super().param_shapes(layer_input)
        if self.layer_norm:
            rows = 3 * self.hidden_size
            shapes.update(ln_ih_weight=(rows,), ln_hh_weight=(rows,))
        return shapes

    def reset_parameters(self) -> None:
        """torch's default U(-1/sqrt(H), 1/sqrt(H)), and layer-norm gains of 1."""
        super().reset_parameters()
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("ln_"):
                    p.fill_(1.0)

    def bptt(self, masks):
        if self.layer_norm:
            return layernorm_gru_sequence, layernorm_gru_trace, (self.options, masks)
        return gru_sequence, gru_trace, (self.options, masks)

    def activation_options(self):
        o, opts = self.options, []
        if o.gate_act != activations.SIGMOID:
            opts.append(f"gate_activation={o.gate_act.spec!r}")
        if o.cand_act != activations.TANH:
            opts.append(f"activation={o.cand_act.spec!r}")
        return opts

    def native_unsupported(self):
        extras = [name for name, on in (("reset_after=False", not self.reset_after),
                                        ("layer_norm", self.layer_norm)) if on]
        return f"torch.nn.GRU has no {', '.join(extras)}" if extras else None

    def extra_repr_options(self):
        opts = []
        if not self.reset_after:
            opts.append("reset_after=False")
        if self.layer_norm:
            opts.append("layer_norm=True")
        return opts
