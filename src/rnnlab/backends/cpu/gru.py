"""The cpu engine's GRU: an autograd Function around the C++ forward and BPTT
(the math of :mod:`rnnlab.bptt.gru`), and the per-direction ``sequence`` adapter that
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
from rnnlab.backends.cpu.layernorm_gru import layernorm_gru_sequence
from rnnlab.bptt.common import differentiate_twin, save_cache, saved_cache
from rnnlab.bptt.gru import GRUOptions
from rnnlab.bptt.unrolled import gru_unrolled


class GRUFunction(torch.autograd.Function):
    """GRU over one direction of one layer: ``(y, h_T)``; see :mod:`rnnlab.bptt.gru`."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, reset_after):
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, reset_after)
        x = x.contiguous()
        y, h, gates, hs, aux = load().gru_forward(x, contiguous(h0), contiguous(weight_ih), contiguous(weight_hh),
                                                  contiguous(bias_ih), contiguous(bias_hh), mask,
                                                  bool(reset_after))
        save_cache(ctx, (x, weight_ih, weight_hh, mask, gates, hs, aux), inputs)
        ctx.reset_after, ctx.has_bias = bool(reset_after), bias_ih is not None
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _gru_twin, (dy, dh))
        x, weight_ih, weight_hh, mask, gates, hs, aux = saved_cache(ctx)
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = load().gru_backward(
            dy.contiguous(), dh.contiguous(), x, contiguous(weight_ih), contiguous(weight_hh), mask, gates, hs,
            aux, ctx.reset_after, ctx.needs_input_grad[0], ctx.has_bias)
        return none_if_empty(dx), dh0, dw_ih, dw_hh, none_if_empty(db_ih), none_if_empty(db_hh), None, None


def _gru_twin(*args):
    *tensors, mask, reset_after = args
    return gru_unrolled(*tensors, mask3d(mask), GRUOptions(reset_after=bool(reset_after)))


def gru_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.GRU`) on this engine."""
    if layer.layer_norm:
        return layernorm_gru_sequence(layer)
    reset_after = layer.options.reset_after

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                params.get("bias_hh"))
        mask = mask2d(mask)
        if needs_graph(*args):
            y, h = GRUFunction.apply(*args, mask, reset_after)
        else:
            y, h, *_ = load().gru_forward(*map(contiguous, args), mask, bool(reset_after))
        return y, (h,)

    return sequence


def unsupported(layer) -> str | None:
    """Why this engine cannot compute ``layer``'s configuration, or None."""
    if layer.layer_norm:  # its kernel computes every option the layer accepts
        return None
    return regularised_unsupported(layer)
