"""The cpu engine's GRU: an autograd Function around the C++ forward and BPTT
(the math of :mod:`rnnlab.bptt.gru`, both forms and any activations of
:class:`rnnlab.bptt.gru.GRUOptions`, with the recurrent-dropout and zoneout masks of
:mod:`rnnlab.regularisers`), and the per-direction ``sequence`` adapter that
:func:`rnnlab.layers.stack.run_stacked` calls. Under ``create_graph=True`` the backward
differentiates the reference engine's autograd twin (:mod:`rnnlab.bptt.unrolled`)."""

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
from rnnlab.backends.cpu.layernorm_gru import layernorm_gru_sequence
from rnnlab.bptt.common import differentiate_twin, save_cache, saved_cache
from rnnlab.bptt.gru import GRUOptions
from rnnlab.bptt.unrolled import gru_unrolled


def _options(opts: GRUOptions) -> tuple:
    """``reset_after, acts`` as the C++ ops take them."""
    return bool(opts.reset_after), kernel_acts(opts.gate_act, opts.cand_act)


def _forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone):
    """The C++ forward: ``y, h_T, gates, hs, aux, hin``."""
    return load().gru_forward(*map(contiguous, (x, h0, weight_ih, weight_hh, bias_ih, bias_hh)),
                              mask, contiguous(rec), contiguous(zone), *_options(opts))


class GRUFunction(torch.autograd.Function):
    """GRU over one direction of one layer: ``(y, h_T)``; see :mod:`rnnlab.bptt.gru`. The
    arguments of :class:`rnnlab.bptt.gru.GRUFunction`, with the mask as (T, B) bool."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts: GRUOptions,
                rec=None, zone=None):
        rec, zone = contiguous(rec), contiguous(zone)
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone)
        x = x.contiguous()
        y, h, gates, hs, aux, hin = _forward(x, *inputs[1:])
        save_cache(ctx, (x, weight_ih, weight_hh, mask, rec, zone, gates, hs, aux,
                         none_if_empty(hin)), inputs)
        ctx.opts, ctx.has_bias = opts, bias_ih is not None
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _gru_twin, (dy, dh))
        x, weight_ih, weight_hh, mask, rec, zone, gates, hs, aux, hin = saved_cache(ctx)
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = load().gru_backward(
            dy.contiguous(), dh.contiguous(), x, contiguous(weight_ih), contiguous(weight_hh),
            mask, rec, zone, gates, hs, aux, hin, *_options(ctx.opts), ctx.needs_input_grad[0],
            ctx.has_bias)
        return (none_if_empty(dx), dh0, dw_ih, dw_hh, none_if_empty(db_ih),
                none_if_empty(db_hh), None, None, None, None)


def _gru_twin(*args):
    *tensors, mask, opts, rec, zone = args
    return gru_unrolled(*tensors, mask3d(mask), opts, rec, zone)


def gru_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.GRU`) on this engine."""
    if layer.layer_norm:
        return layernorm_gru_sequence(layer)
    opts = layer.options

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                params.get("bias_hh"), mask2d(mask), opts, *mask_args(masks, "recurrent", "zone_h"))
        if needs_graph(*args[:6]):
            y, h = GRUFunction.apply(*args)
        else:  # inference: no autograd node, nothing kept
            y, h, *_ = _forward(*args)
        return y, (h,)

    return sequence
