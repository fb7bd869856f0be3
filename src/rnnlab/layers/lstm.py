"""``rnnlab.LSTM``: drop-in for :class:`torch.nn.LSTM`, plus peepholes, cell clipping, a
coupled input-forget gate and layer normalisation."""

from __future__ import annotations

import torch
from torch import nn

from rnnlab import activations
from rnnlab.bptt.layernorm_lstm import layernorm_lstm_sequence, layernorm_lstm_trace
from rnnlab.bptt.lstm import LSTMOptions, lstm_sequence, lstm_trace
from rnnlab.layers import validate
from rnnlab.layers.base import RecurrentBase
from rnnlab.regularisers import parse as parse_regularisers


class LSTM(RecurrentBase):
    r"""Multi-layer LSTM, the same module as :class:`torch.nn.LSTM` (arguments, parameter
    names, gate order ``i, f, g, o``, inputs and outputs), computed by an interchangeable
    backend. Per layer and direction (see :mod:`rnnlab.cells.lstm` for the options):

    .. math::
        \begin{aligned}
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi} + p_i \circ c_{t-1}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf} + p_f \circ c_{t-1}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        c_t &= \mathrm{clip}(f_t \circ c_{t-1} + i_t \circ g_t) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho} + p_o \circ c_t) \\
        h_t &= W_{hr}\,(o_t \circ \tanh(c_t))
        \end{aligned}

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        proj_size: as :class:`torch.nn.LSTM`.
        peephole: add ``peephole_l{k}`` (3, H), rows ``p_i, p_f, p_o``.
        cell_clip: clamp ``c_t`` to ``[-cell_clip, cell_clip]``.
        coupled: input gate tied to the forget gate, ``i_t = 1 - f_t``.
        layer_norm: layer-normalised LSTM (Ba et al. 2016, as Haste's ``LayerNormLSTM``, see
            :mod:`rnnlab.cells.layernorm_lstm`): ``a_t = LN(W_ih x_t)∘γ_ih +
            LN(W_hh h_{t-1})∘γ_hh + b_ih + b_hh`` and ``h_t = o_t∘tanh(LN(c_t)∘γ_c + β_c)``
            (eps 1e-5). Adds ``ln_ih_weight_l{k}`` (4H,), ``ln_hh_weight_l{k}`` (4H,),
            ``ln_c_weight_l{k}`` (H,), initialised to 1, and ``ln_c_bias_l{k}`` (H,),
            initialised to 0. Combines with the activations and the regularisers below (the
            output activation applies to the normalised cell); not with peephole,
            cell_clip, coupled or proj_size.
        gate_activation: the activation of ``i, f, o`` (default ``"sigmoid"``);
            activation: of the candidate ``g`` (default ``"tanh"``); output_activation: of
            ``c_t`` in ``h_t = o_t∘φ(c_t)`` (default: ``activation``, as Keras; ONNX's third
            activation). A name, ``(name, alpha[, beta])`` or an Activation, see
            :mod:`rnnlab.activations`. Non-default ones are not torch's (``backend="native"``
            refuses them); the reference, cpu and triton engines compute them.
        recurrent_dropout, zoneout (``p`` or ``(p_h, p_c)``), weight_dropout, zoneout_eval,
            generator: regularisers inside the recurrence, train-only, not torch's (the
            reference, cpu and triton engines compute them); see :mod:`rnnlab.regularisers`.
        backend, initial_state: see :class:`rnnlab.layers.base.RecurrentBase`.

    Inputs: ``input, (h_0, c_0)`` with ``input`` (T, B, I) / (B, T, I) / (T, I) or a
    PackedSequence, ``h_0`` (D·L, B, H_out), ``c_0`` (D·L, B, H).
    Outputs: ``output, (h_n, c_n)`` as torch.

    Example::

        >>> lstm = rnnlab.LSTM(10, 20, num_layers=2, bidirectional=True)
        >>> out, (h, c) = lstm(torch.randn(7, 3, 10))
        >>> out.shape, h.shape
        (torch.Size([7, 3, 40]), torch.Size([4, 3, 20]))
    """

    gate_count = 4
    state_names = ("h0", "c0")
    torch_class = nn.LSTM
    native_mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, *, peephole: bool = False, cell_clip: float | None = None,
                 coupled: bool = False, layer_norm: bool = False, backend: str = "auto",
                 initial_state: str = "zeros", init="torch", gate_activation="sigmoid",
                 activation="tanh", output_activation=None, recurrent_dropout: float = 0.0,
                 zoneout=0.0, weight_dropout: float = 0.0, zoneout_eval: str = "identity",
                 generator=None, device=None, dtype=None):
        for name, value in (("peephole", peephole), ("coupled", coupled),
                            ("layer_norm", layer_norm)):
            validate.check_bool(name, value)
        validate.check_cell_clip(cell_clip)
        if layer_norm:
            others = [name for name, on in (("peephole", peephole), ("cell_clip", cell_clip),
                                            ("coupled", coupled), ("proj_size", proj_size)) if on]
            if others:
                raise ValueError(f"layer_norm: cannot be combined with {', '.join(others)}")
        self.peephole, self.layer_norm = peephole, layer_norm
        gate_act = activations.get(gate_activation, "gate_activation")
        cand_act = activations.get(activation, "activation")
        out_act = cand_act if output_activation is None else activations.get(
            output_activation, "output_activation")
        self.options = LSTMOptions(cell_clip=None if cell_clip is None else float(cell_clip),
                                   coupled=coupled, gate_act=gate_act, cand_act=cand_act,
                                   out_act=out_act)
        self.regularisers = parse_regularisers(
            "LSTM", recurrent_dropout=recurrent_dropout, zoneout=zoneout,
            weight_dropout=weight_dropout, zoneout_eval=zoneout_eval, generator=generator)
        self.generator = generator
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, backend=backend, initial_state=initial_state,
                         init=init, device=device, dtype=dtype)

    def param_shapes(self, layer_input):
        shapes = super().param_shapes(layer_input)
        if self.peephole:
            shapes["peephole"] = (3, self.hidden_size)
        if self.layer_norm:
            H = self.hidden_size
            shapes.update(ln_ih_weight=(4 * H,), ln_hh_weight=(4 * H,), ln_c_weight=(H,),
                          ln_c_bias=(H,))
        return shapes

    def reset_parameters(self):
        """torch's uniform init; with ``layer_norm`` the norms' gains are 1 and β_c is 0."""
        super().reset_parameters()
        if self.layer_norm:
            with torch.no_grad():
                for name, p in self.named_parameters():
                    if name.startswith("ln_"):
                        p.fill_(0.0 if name.startswith("ln_c_bias") else 1.0)

    def state_sizes(self):
        return (self.output_size, self.hidden_size)

    def split_hx(self, hx):
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError("hx: expected a tuple (h_0, c_0) for an LSTM")
        return tuple(hx)

    def join_hx(self, states):
        return states

    def bptt(self, masks):
        if self.layer_norm:
            return layernorm_lstm_sequence, layernorm_lstm_trace, (self.options, masks)
        return lstm_sequence, lstm_trace, (self.options, masks)

    def activation_options(self):
        o, opts = self.options, []
        if o.gate_act != activations.SIGMOID:
            opts.append(f"gate_activation={o.gate_act.spec!r}")
        if o.cand_act != activations.TANH:
            opts.append(f"activation={o.cand_act.spec!r}")
        if o.out_act != o.cand_act:
            opts.append(f"output_activation={o.out_act.spec!r}")
        return opts

    def native_unsupported(self):
        extras = [name for name, on in (("peephole", self.peephole),
                                        ("cell_clip", self.options.cell_clip is not None),
                                        ("coupled", self.options.coupled),
                                        ("layer_norm", self.layer_norm)) if on]
        return f"torch.nn.LSTM has no {', '.join(extras)}" if extras else None

    def extra_repr_options(self):
        opts = []
        if self.peephole:
            opts.append("peephole=True")
        if self.options.cell_clip is not None:
            opts.append(f"cell_clip={self.options.cell_clip}")
        if self.options.coupled:
            opts.append("coupled=True")
        if self.layer_norm:
            opts.append("layer_norm=True")
        return opts
