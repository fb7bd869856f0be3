"""The cpu engine's LSTM: an autograd Function around the C++ forward and BPTT
(the math of :mod:`rnnlab.bptt.lstm`), and the per-direction ``sequence`` adapter that
:func:`rnnlab.layers.stack.run_stacked` calls. Under ``create_graph=True`` the backward
differentiates the reference engine's autograd twin (:mod:`rnnlab.bptt.unrolled`)."""

from __future__ import annotations

import torch

from rnnlab.backends.cpu._build import load
from rnnlab.backends.cpu.common import (
    contiguous,
    mask2d,
    mask3d,
    needs_graph,
    none_if_empty,
    regularised_unsupported,
)
from rnnlab.backends.cpu.layernorm_lstm import layernorm_lstm_sequence
from rnnlab.bptt.common import differentiate_twin, save_cache, saved_cache
from rnnlab.bptt.lstm import LSTMOptions
from rnnlab.bptt.unrolled import lstm_unrolled


class LSTMFunction(torch.autograd.Function):
    """LSTM over one direction of one layer: ``(y, h_T, c_T)``; see :mod:`rnnlab.bptt.lstm`."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr,
                mask, cell_clip, coupled):
        inputs = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr, mask,
                  cell_clip, coupled)
        bias = None if bias_ih is None else bias_ih + bias_hh
        x = x.contiguous()
        y, h, c, gates, cs, hs, ms, clipped = load().lstm_forward(
            x, contiguous(h0), contiguous(c0), contiguous(weight_ih), contiguous(weight_hh), bias, contiguous(peephole),
            contiguous(weight_hr), mask, float(cell_clip or 0.0), bool(coupled))
        save_cache(ctx, (x, weight_ih, weight_hh, peephole, weight_hr, mask, gates, cs, hs,
                         none_if_empty(ms), none_if_empty(clipped)), inputs)
        ctx.coupled, ctx.has_bias = bool(coupled), bias_ih is not None
        return y, h, c

    @staticmethod
    def backward(ctx, dy, dh, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _lstm_twin, (dy, dh, dc))
        (x, weight_ih, weight_hh, peephole, weight_hr, mask, gates, cs, hs, ms,
         clipped) = saved_cache(ctx)
        dx, dh0, dc0, dw_ih, dw_hh, db, dpeep, dw_hr = load().lstm_backward(
            dy.contiguous(), dh.contiguous(), dc.contiguous(), x, contiguous(weight_ih),
            contiguous(weight_hh), contiguous(peephole), contiguous(weight_hr), mask, gates, cs, hs, ms, clipped,
            ctx.coupled, ctx.needs_input_grad[0], ctx.has_bias)
        db = none_if_empty(db)
        return (none_if_empty(dx), dh0, dc0, dw_ih, dw_hh, db, db, none_if_empty(dpeep), none_if_empty(dw_hr),
                None, None, None)


def _lstm_twin(*args):
    *tensors, mask, cell_clip, coupled = args
    return lstm_unrolled(*tensors, mask3d(mask), LSTMOptions(cell_clip, bool(coupled)))


def lstm_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.LSTM`) on this engine."""
    if layer.layer_norm:
        return layernorm_lstm_sequence(layer)
    clip, coupled = layer.options.cell_clip, layer.options.coupled

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], state[1], params["weight_ih"], params["weight_hh"],
                params.get("bias_ih"), params.get("bias_hh"), params.get("peephole"),
                params.get("weight_hr"))
        mask = mask2d(mask)
        if needs_graph(*args):
            y, h, c = LSTMFunction.apply(*args, mask, clip, coupled)
        else:  # inference: no autograd node, nothing kept
            bias = None if args[5] is None else args[5] + args[6]
            y, h, c, *_ = load().lstm_forward(*map(contiguous, args[:5]), bias, *map(contiguous, args[7:]),
                                              mask, float(clip or 0.0), bool(coupled))
        return y, (h, c)

    return sequence


def unsupported(layer) -> str | None:
    """Why this engine cannot compute ``layer``'s configuration, or None."""
    if layer.layer_norm:  # its kernel computes every option the layer accepts
        return None
    return regularised_unsupported(layer)
