"""The autograd twin of every hand-derived BPTT: the same forward, written as a time loop over
the cell step of :mod:`rnnlab.cells`, with no ``out=`` and no in-place writes, so that
autograd sees (and can differentiate, batch or trace) every operation.

Each ``*_unrolled`` function takes exactly the arguments of the ``torch.autograd.Function``
beside it in :mod:`rnnlab.bptt` and returns the same outputs. The hand-derived backward stays
the path of ordinary training; the twin serves where autograd must see the whole computation:

* a second derivative (``create_graph=True``): the Function's backward differentiates the twin
  (:func:`rnnlab.bptt.common.differentiate_twin`);
* ``torch.func`` transforms, forward-mode AD and ``torch.jit.trace``: the layer calls the twin
  in place of the Function (:func:`rnnlab.bptt.common.hand_or_unrolled`).

Per step, with ``m_t`` the mask of sequences still running, a padded step carries the state
(``s_t = s_{t-1}``) and outputs 0; regularisers enter as in the hand forward: recurrent
dropout ``W_hh (m∘h_{t-1})``, zoneout ``s_t = d_t∘s_{t-1} + (1-d_t)∘s̃_t``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rnnlab.cells.gru import gru_step, layer_norm, layernorm_gru_step
from rnnlab.cells.layernorm_lstm import layernorm_lstm_step
from rnnlab.cells.lstm import lstm_step
from rnnlab.cells.rnn import rnn_step
from rnnlab.cells.sru import sru_step


def unroll(step, T: int, state: tuple, mask):
    """``y_t, s_t = step(t, s_{t-1})`` for t < T, padded steps masked. Returns ``(y, s_T)``,
    y stacked to (T, B, ·)."""
    ys = []
    for t in range(T):
        y, new = step(t, state)
        if mask is not None:
            new = tuple(torch.where(mask[t], n, s) for n, s in zip(new, state))
            y = torch.where(mask[t], y, 0.0)
        ys.append(y)
        state = new
    return torch.stack(ys), state


def zoned(new, old, zone, t: int):
    """Zoneout: ``d_t∘old + (1-d_t)∘new``, or ``new`` without zoneout."""
    return new if zone is None else torch.lerp(new, old, zone[t])


def recurrent_input(h, rec):
    """Recurrent dropout: ``m∘h_{t-1}`` where it enters ``W_hh``."""
    return h if rec is None else h * rec


def rnn_unrolled(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec=None,
                 zone=None):
    """:class:`rnnlab.bptt.rnn.RNNFunction`'s forward: ``(y, h_T)``."""
    x_proj = F.linear(x, weight_ih, bias_ih)

    def step(t, state):
        (h,) = state
        h_new = rnn_step(x_proj[t], recurrent_input(h, rec), weight_hh, bias_hh,
                         nonlinearity=opts.nonlinearity)
        h_new = zoned(h_new, h, zone, t)
        return h_new, (h_new,)

    y, (h,) = unroll(step, x.shape[0], (h0,), mask)
    return y, h


def lstm_unrolled(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr,
                  mask, opts, rec=None, zone_h=None, zone_c=None):
    """:class:`rnnlab.bptt.lstm.LSTMFunction`'s forward: ``(y, h_T, c_T)``."""
    x_proj = F.linear(x, weight_ih, bias_ih)

    def step(t, state):
        h, c = state
        h_new, c_new, _ = lstm_step(x_proj[t], recurrent_input(h, rec), c, weight_hh, bias_hh,
                                    peephole=peephole, cell_clip=opts.cell_clip,
                                    coupled=opts.coupled, weight_hr=weight_hr,
                                    gate_act=opts.gate_act, cand_act=opts.cand_act,
                                    out_act=opts.out_act)
        h_new, c_new = zoned(h_new, h, zone_h, t), zoned(c_new, c, zone_c, t)
        return h_new, (h_new, c_new)

    y, (h, c) = unroll(step, x.shape[0], (h0, c0), mask)
    return y, h, c


def gru_unrolled(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec=None,
                 zone=None):
    """:class:`rnnlab.bptt.gru.GRUFunction`'s forward: ``(y, h_T)``."""
    x_proj = F.linear(x, weight_ih, bias_ih)

    def step(t, state):
        (h,) = state
        h_new, _ = gru_step(x_proj[t], h, weight_hh, bias_hh, reset_after=opts.reset_after,
                            gate_act=opts.gate_act, cand_act=opts.cand_act,
                            recurrent_mask=rec)
        h_new = zoned(h_new, h, zone, t)
        return h_new, (h_new,)

    y, (h,) = unroll(step, x.shape[0], (h0,), mask)
    return y, h


def sru_unrolled(x, c0, weight_ih, weight_c, bias, mask, zone=None):
    """:class:`rnnlab.bptt.sru.SRUFunction`'s forward: ``(y, c_T)``; with zoneout the output
    ``h_t = r∘c_t + (1-r)∘x'_t`` reads the zoned ``c_t``."""
    u = F.linear(x, weight_ih)
    H = c0.shape[-1]

    def step(t, state):
        (c,) = state
        h_new, c_new, gates = sru_step(u[t], x[t], c, weight_c, bias)
        if zone is not None:
            c_new = zoned(c_new, c, zone, t)
            highway = u[t, :, 3 * H:] if u.shape[-1] == 4 * H else x[t]
            h_new = gates["r"] * c_new + (1 - gates["r"]) * highway
        return h_new, (c_new,)

    y, (c,) = unroll(step, x.shape[0], (c0,), mask)
    return y, c


def layernorm_lstm_unrolled(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                            ln_hh_weight, ln_c_weight, ln_c_bias, mask, opts=None, rec=None,
                            zone_h=None, zone_c=None):
    """:class:`rnnlab.bptt.layernorm_lstm.LayerNormLSTMFunction`'s forward: ``(y, h_T, c_T)``;
    with zoneout ``h̃_t`` reads the un-zoned cell."""
    acts = {} if opts is None else dict(gate_act=opts.gate_act, cand_act=opts.cand_act,
                                        out_act=opts.out_act)

    def step(t, state):
        h, c = state
        h_new, c_new, _ = layernorm_lstm_step(x[t], recurrent_input(h, rec), c, weight_ih,
                                              weight_hh, bias_ih, bias_hh, ln_ih_weight,
                                              ln_hh_weight, ln_c_weight, ln_c_bias, **acts)
        h_new, c_new = zoned(h_new, h, zone_h, t), zoned(c_new, c, zone_c, t)
        return h_new, (h_new, c_new)

    y, (h, c) = unroll(step, x.shape[0], (h0, c0), mask)
    return y, h, c


def layernorm_gru_unrolled(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                           ln_hh_weight, mask, opts=None, rec=None, zone=None):
    """:class:`rnnlab.bptt.layernorm_gru.LayerNormGRUFunction`'s forward: ``(y, h_T)``."""
    x_proj = layer_norm(F.linear(x, weight_ih), ln_ih_weight)
    if bias_ih is not None:
        x_proj = x_proj + bias_ih
    acts = {} if opts is None else dict(gate_act=opts.gate_act, cand_act=opts.cand_act)

    def step(t, state):
        (h,) = state
        h_new, _ = layernorm_gru_step(x_proj[t], h, weight_hh, ln_hh_weight, bias_hh,
                                      recurrent_mask=rec, **acts)
        h_new = zoned(h_new, h, zone, t)
        return h_new, (h_new,)

    y, (h,) = unroll(step, x.shape[0], (h0,), mask)
    return y, h
