"""The cpu engine's Elman RNN: an autograd Function around the C++ forward and BPTT
(the math of :mod:`rnnlab.bptt.rnn`), and the per-direction ``sequence`` adapter that
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
from rnnlab.bptt.common import differentiate_twin, save_cache, saved_cache
from rnnlab.bptt.rnn import RNNOptions
from rnnlab.bptt.unrolled import rnn_unrolled


class RNNFunction(torch.autograd.Function):
    """Elman RNN over one direction of one layer: ``(y, h_T)``; see :mod:`rnnlab.bptt.rnn`."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, relu):
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, relu)
        x = x.contiguous()
        bias = None if bias_ih is None else bias_ih + bias_hh
        y, h, hs = load().rnn_forward(x, contiguous(h0), contiguous(weight_ih), contiguous(weight_hh), bias, mask,
                                      bool(relu))
        save_cache(ctx, (x, weight_ih, weight_hh, mask, hs), inputs)
        ctx.relu, ctx.has_bias = bool(relu), bias_ih is not None
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _rnn_twin, (dy, dh))
        x, weight_ih, weight_hh, mask, hs = saved_cache(ctx)
        dx, dh0, dw_ih, dw_hh, db = load().rnn_backward(
            dy.contiguous(), dh.contiguous(), x, contiguous(weight_ih), contiguous(weight_hh), mask, hs,
            ctx.relu, ctx.needs_input_grad[0], ctx.has_bias)
        db = none_if_empty(db)
        return none_if_empty(dx), dh0, dw_ih, dw_hh, db, db, None, None


def _rnn_twin(*args):
    *tensors, mask, relu = args
    return rnn_unrolled(*tensors, mask3d(mask), RNNOptions("relu" if relu else "tanh"))


def rnn_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.RNN`) on this engine."""
    relu = layer.options.nonlinearity == "relu"

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                params.get("bias_hh"))
        mask = mask2d(mask)
        if needs_graph(*args):
            y, h = RNNFunction.apply(*args, mask, relu)
        else:
            bias = None if args[4] is None else args[4] + args[5]
            y, h, _ = load().rnn_forward(*map(contiguous, args[:4]), bias, mask, relu)
        return y, (h,)

    return sequence


def unsupported(layer) -> str | None:
    """Why this engine cannot compute ``layer``'s configuration, or None."""
    return regularised_unsupported(layer)
