"""The cpu engine's LSTM: an autograd Function around the C++ forward and BPTT
(the math of :mod:`rnnlab.bptt.lstm`, every option of :class:`rnnlab.bptt.lstm.LSTMOptions`
and the regulariser masks of :mod:`rnnlab.regularisers` included), and the per-direction
``sequence`` adapter that :func:`rnnlab.layers.stack.run_stacked` calls. Under
``create_graph=True`` the backward differentiates the reference engine's autograd twin
(:mod:`rnnlab.bptt.unrolled`)."""

from __future__ import annotations

import torch

from rnnlab.backends.cpu._build import load
from rnnlab.backends.cpu.common import (
    contiguous,
    kernel_acts,
    mask2d,
    mask3d,
    mask_args,
    needs_graph,
    none_if_empty,
)
from rnnlab.backends.cpu.layernorm_lstm import layernorm_lstm_sequence
from rnnlab.bptt.common import differentiate_twin, save_cache, saved_cache
from rnnlab.bptt.lstm import LSTMOptions
from rnnlab.bptt.unrolled import lstm_unrolled


def _options(opts: LSTMOptions) -> tuple:
    """``cell_clip, coupled, acts`` as the C++ ops take them."""
    return (float(opts.cell_clip or 0.0), bool(opts.coupled),
            kernel_acts(opts.gate_act, opts.cand_act, opts.out_act))


def _forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr, mask,
             opts, rec, zone_h, zone_c):
    """The C++ forward: ``y, h_T, c_T, gates, cs, hs, ms, clipped, hin, ctil``."""
    bias = None if bias_ih is None else bias_ih + bias_hh
    return load().lstm_forward(*map(contiguous, (x, h0, c0, weight_ih, weight_hh)), bias,
                               contiguous(peephole), contiguous(weight_hr), mask,
                               *map(contiguous, (rec, zone_h, zone_c)), *_options(opts))


class LSTMFunction(torch.autograd.Function):
    """LSTM over one direction of one layer: ``(y, h_T, c_T)``; see :mod:`rnnlab.bptt.lstm`.
    The arguments of :class:`rnnlab.bptt.lstm.LSTMFunction`, with the mask as (T, B) bool."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr,
                mask, opts: LSTMOptions, rec=None, zone_h=None, zone_c=None):
        rec, zone_h, zone_c = map(contiguous, (rec, zone_h, zone_c))
        inputs = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr, mask,
                  opts, rec, zone_h, zone_c)
        x = x.contiguous()
        y, h, c, *saved = _forward(x, *inputs[1:])
        save_cache(ctx, (x, weight_ih, weight_hh, peephole, weight_hr, mask, rec, zone_h, zone_c,
                         *map(none_if_empty, saved)), inputs)
        ctx.opts, ctx.has_bias = opts, bias_ih is not None
        return y, h, c

    @staticmethod
    def backward(ctx, dy, dh, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _lstm_twin, (dy, dh, dc))
        (x, weight_ih, weight_hh, peephole, weight_hr, mask, rec, zone_h, zone_c, gates, cs, hs,
         ms, clipped, hin, ctil) = saved_cache(ctx)
        dx, dh0, dc0, dw_ih, dw_hh, db, dpeep, dw_hr = load().lstm_backward(
            dy.contiguous(), dh.contiguous(), dc.contiguous(), x, contiguous(weight_ih),
            contiguous(weight_hh), contiguous(peephole), contiguous(weight_hr), mask, rec,
            zone_h, zone_c, gates, cs, hs, ms, clipped, hin, ctil, *_options(ctx.opts),
            ctx.needs_input_grad[0], ctx.has_bias)
        db = none_if_empty(db)
        return (none_if_empty(dx), dh0, dc0, dw_ih, dw_hh, db, db, none_if_empty(dpeep),
                none_if_empty(dw_hr), None, None, None, None, None)


def _lstm_twin(*args):
    *tensors, mask, opts, rec, zone_h, zone_c = args
    return lstm_unrolled(*tensors, mask3d(mask), opts, rec, zone_h, zone_c)


def lstm_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.LSTM`) on this engine."""
    if layer.layer_norm:
        return layernorm_lstm_sequence(layer)
    opts = layer.options

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], state[1], params["weight_ih"], params["weight_hh"],
                params.get("bias_ih"), params.get("bias_hh"), params.get("peephole"),
                params.get("weight_hr"), mask2d(mask), opts,
                *mask_args(masks, "recurrent", "zone_h", "zone_c"))
        if needs_graph(*args[:9]):
            y, h, c = LSTMFunction.apply(*args)
        else:  # inference: no autograd node, nothing kept
            y, h, c, *_ = _forward(*args)
        return y, (h, c)

    return sequence
