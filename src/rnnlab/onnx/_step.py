"""One step of a layer's cell, written with the cell step functions of :mod:`rnnlab.cells` so
that ``torch.onnx.export`` can trace it (the layers' hand-written autograd Functions cannot be
traced): the body of the Scan form."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.cells.gru import gru_step, layer_norm, layernorm_gru_step
from rnnlab.cells.layernorm_lstm import LN_EPS
from rnnlab.cells.lstm import lstm_step
from rnnlab.cells.rnn import rnn_step
from rnnlab.cells.sru import sru_step
from rnnlab.layers.gru import GRU
from rnnlab.layers.lstm import LSTM
from rnnlab.layers.min_rnn import _MinRNN
from rnnlab.layers.rnn import RNN
from rnnlab.layers.sru import SRU
from rnnlab.onnx._support import zoneout_expectation


def step_function(module):
    """``step(params, states, x_t) -> (new_states, y_t)`` for one layer and direction, written
    with the cell step functions of :mod:`rnnlab.cells` (traceable)."""
    zone = zoneout_expectation(module)
    if isinstance(module, _MinRNN):
        min_step = type(module).step_fn

        def step(p, states, x):
            h = min_step(x, states[0], p["weight_ih"], p.get("bias_ih"))
            return (h,), h
    elif isinstance(module, SRU):
        p_c = zone[1] if zone else 0.0

        def step(p, states, x):
            u = F.linear(x, p["weight_ih"])
            h, c, gates = sru_step(u, x, states[0], p["weight_c"], p.get("bias"))
            if p_c:  # the zoned cell, which the output then reads
                H = c.shape[-1]
                c = p_c * states[0] + (1 - p_c) * c
                highway = u[..., 3 * H:] if u.shape[-1] == 4 * H else x
                h = gates["r"] * c + (1 - gates["r"]) * highway
            return (c,), h
    elif isinstance(module, LSTM):
        opts = module.options

        p_h, p_c = zone or (0.0, 0.0)

        def step(p, states, x):
            if module.layer_norm:
                h, c, _ = _layernorm_lstm_step(x, *states, p["weight_ih"], p["weight_hh"],
                                               p.get("bias_ih"), p.get("bias_hh"),
                                               p["ln_ih_weight"], p["ln_hh_weight"],
                                               p["ln_c_weight"], p["ln_c_bias"], opts)
            else:
                h, c, _ = lstm_step(F.linear(x, p["weight_ih"], p.get("bias_ih")), *states,
                                    p["weight_hh"], p.get("bias_hh"), peephole=p.get("peephole"),
                                    cell_clip=opts.cell_clip, coupled=opts.coupled,
                                    weight_hr=p.get("weight_hr"), gate_act=opts.gate_act,
                                    cand_act=opts.cand_act, out_act=opts.out_act)
            if p_h:  # zoneout's eval expectation; h̃ read the un-zoned cell
                h = p_h * states[0] + (1 - p_h) * h
            if p_c:
                c = p_c * states[1] + (1 - p_c) * c
            return (h, c), h
    elif isinstance(module, GRU):
        opts = module.options
        p_h = zone[0] if zone else 0.0

        def step(p, states, x):
            if module.layer_norm:
                x_proj = layer_norm(F.linear(x, p["weight_ih"]), p["ln_ih_weight"])
                if "bias_ih" in p:
                    x_proj = x_proj + p["bias_ih"]
                h, _ = layernorm_gru_step(x_proj, states[0], p["weight_hh"], p["ln_hh_weight"],
                                          p.get("bias_hh"), gate_act=opts.gate_act,
                                          cand_act=opts.cand_act)
            else:
                h, _ = gru_step(F.linear(x, p["weight_ih"], p.get("bias_ih")), states[0],
                                p["weight_hh"], p.get("bias_hh"), reset_after=opts.reset_after,
                                gate_act=opts.gate_act, cand_act=opts.cand_act)
            if p_h:
                h = p_h * states[0] + (1 - p_h) * h
            return (h,), h
    elif isinstance(module, RNN):
        nonlinearity = module.nonlinearity
        p_h = zone[0] if zone else 0.0

        def step(p, states, x):
            h = rnn_step(F.linear(x, p["weight_ih"], p.get("bias_ih")), states[0],
                         p["weight_hh"], p.get("bias_hh"), nonlinearity=nonlinearity)
            if p_h:
                h = p_h * states[0] + (1 - p_h) * h
            return (h,), h
    else:
        raise TypeError(f"module: rnnlab.onnx cannot export {type(module).__name__}")
    return step


def _layernorm_lstm_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                         ln_hh_weight, ln_c_weight, ln_c_bias, opts):
    """:func:`rnnlab.cells.layernorm_lstm.layernorm_lstm_step` with the cell norm's size read
    from its gain (a constant) instead of from ``c`` (a traced input: ``F.layer_norm`` needs
    a constant ``normalized_shape`` to export); same equations."""
    G, H = weight_ih.shape[0], ln_c_weight.shape[0]
    a = (F.layer_norm(F.linear(x, weight_ih), (G,), ln_ih_weight, None, LN_EPS)
         + F.layer_norm(F.linear(h, weight_hh), (G,), ln_hh_weight, None, LN_EPS))
    if bias_ih is not None:
        a = a + bias_ih + bias_hh
    a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
    i, f, o = opts.gate_act(a_i), opts.gate_act(a_f), opts.gate_act(a_o)
    g = opts.cand_act(a_g)
    c_new = f * c + i * g
    h_new = o * opts.out_act(F.layer_norm(c_new, (H,), ln_c_weight, ln_c_bias, LN_EPS))
    return h_new, c_new, {"i": i, "f": f, "g": g, "o": o}


class StepBody(nn.Module):
    """One step of one layer and direction,
    ``(*states, x_t[, m_t], *params) -> (*states, y_t)``; with the mask ``m_t`` (B, 1) bool,
    padded rows keep their state and output 0. The weights are inputs, so the traced graph
    reads them by name (from the main graph, in the Scan) and one trace serves every layer
    and direction with the same shapes."""

    def __init__(self, module, names: list[str], masked: bool):
        super().__init__()
        self.step = step_function(module)
        self.names = names
        self.n_states = len(module.state_names)
        self.masked = masked

    def forward(self, *args):
        n = self.n_states
        states, x = args[:n], args[n]
        params = dict(zip(self.names, args[n + 1 + self.masked:]))
        new, y = self.step(params, states, x)
        if self.masked:
            m = args[n + 1]
            new = tuple(torch.where(m, a, b) for a, b in zip(new, states))
            y = torch.where(m, y, torch.zeros_like(y))
        return (*new, y)
