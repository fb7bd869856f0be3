"""The cpu engine's Elman RNN: an autograd Function around the C++ forward and BPTT
(the math of :mod:`rnnlab.bptt.rnn`, with the recurrent-dropout and zoneout masks of
:mod:`rnnlab.regularisers`), and the per-direction ``sequence`` adapter that
:func:`rnnlab.layers.stack.run_stacked` calls. Under ``create_graph=True`` the backward
differentiates the reference engine's autograd twin (:mod:`rnnlab.bptt.unrolled`)."""

from __future__ import annotations

import torch

from rnnlab.backends.cpu._build import load
from rnnlab.backends.cpu.common import (
    contiguous,
    mask2d,
    mask3d,
    mask_args,
    needs_graph,
    none_if_empty,
)
from rnnlab.bptt.common import differentiate_twin, save_cache, saved_cache
from rnnlab.bptt.rnn import RNNOptions
from rnnlab.bptt.unrolled import rnn_unrolled


def _forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone):
    """The C++ forward: ``y, h_T, hs, hin, htil``."""
    bias = None if bias_ih is None else bias_ih + bias_hh
    return load().rnn_forward(*map(contiguous, (x, h0, weight_ih, weight_hh)), bias, mask,
                              contiguous(rec), contiguous(zone), opts.nonlinearity == "relu")


class RNNFunction(torch.autograd.Function):
    """Elman RNN over one direction of one layer: ``(y, h_T)``; see :mod:`rnnlab.bptt.rnn`.
    The arguments of :class:`rnnlab.bptt.rnn.RNNFunction`, with the mask as (T, B) bool."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts: RNNOptions,
                rec=None, zone=None):
        rec, zone = contiguous(rec), contiguous(zone)
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone)
        x = x.contiguous()
        y, h, hs, hin, htil = _forward(x, *inputs[1:])
        save_cache(ctx, (x, weight_ih, weight_hh, mask, rec, zone, hs, none_if_empty(hin),
                         none_if_empty(htil)), inputs)
        ctx.relu, ctx.has_bias = opts.nonlinearity == "relu", bias_ih is not None
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _rnn_twin, (dy, dh))
        x, weight_ih, weight_hh, mask, rec, zone, hs, hin, htil = saved_cache(ctx)
        dx, dh0, dw_ih, dw_hh, db = load().rnn_backward(
            dy.contiguous(), dh.contiguous(), x, contiguous(weight_ih), contiguous(weight_hh),
            mask, rec, zone, hs, hin, htil, ctx.relu, ctx.needs_input_grad[0], ctx.has_bias)
        db = none_if_empty(db)
        return none_if_empty(dx), dh0, dw_ih, dw_hh, db, db, None, None, None, None


def _rnn_twin(*args):
    *tensors, mask, opts, rec, zone = args
    return rnn_unrolled(*tensors, mask3d(mask), opts, rec, zone)


def rnn_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.RNN`) on this engine."""
    opts = layer.options

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                params.get("bias_hh"), mask2d(mask), opts, *mask_args(masks, "recurrent", "zone_h"))
        if needs_graph(*args[:6]):
            y, h = RNNFunction.apply(*args)
        else:  # inference: no autograd node, nothing kept
            y, h, *_ = _forward(*args)
        return y, (h,)

    return sequence
