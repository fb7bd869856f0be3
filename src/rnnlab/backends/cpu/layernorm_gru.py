"""The cpu engine's layer-normalised GRU: an autograd Function around the C++ forward and
BPTT (``csrc/layernorm_gru.cpp``, the math of :mod:`rnnlab.bptt.layernorm_gru`) with every
option the layer accepts (activations, recurrent dropout, zoneout), and the per-direction
``sequence`` adapter that :func:`rnnlab.layers.stack.run_stacked` calls. Under
``create_graph=True`` the backward differentiates the reference engine's autograd twin
(:func:`rnnlab.bptt.unrolled.layernorm_gru_unrolled`)."""

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
from rnnlab.bptt.common import differentiate_twin, save_cache, saved_cache
from rnnlab.bptt.unrolled import layernorm_gru_unrolled


def _forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight, mask,
             opts, rec, zone):
    """The C++ forward: ``[y, h_T, *saved]``."""
    return load().layernorm_gru_forward(
        x, *map(contiguous, (h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                             ln_hh_weight)),
        mask, kernel_acts(opts.gate_act, opts.cand_act), rec, zone)


class LayerNormGRUFunction(torch.autograd.Function):
    """LN-GRU over one direction of one layer: ``(y, h_T)``; see
    :mod:`rnnlab.bptt.layernorm_gru`. ``mask`` (T, B) bool; ``rec``, ``zone`` contiguous or
    None."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
                mask, opts, rec, zone):
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
                  mask, opts, rec, zone)
        x = x.contiguous()
        y, h, *saved = _forward(x, *inputs[1:])
        save_cache(ctx, (x, weight_ih, weight_hh, ln_ih_weight, ln_hh_weight, mask, rec, zone,
                         *saved), inputs)
        ctx.opts, ctx.has_bias = opts, bias_ih is not None
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _twin, (dy, dh))
        (x, weight_ih, weight_hh, ln_ih_weight, ln_hh_weight, mask, rec, zone, *saved,
         hin) = saved_cache(ctx)
        o = ctx.opts
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh, *dln = load().layernorm_gru_backward(
            dy.contiguous(), dh.contiguous(), x,
            *map(contiguous, (weight_ih, weight_hh, ln_ih_weight, ln_hh_weight)), mask,
            kernel_acts(o.gate_act, o.cand_act), rec, zone, *saved, none_if_empty(hin),
            ctx.needs_input_grad[0], ctx.has_bias)
        return (none_if_empty(dx), dh0, dw_ih, dw_hh, none_if_empty(db_ih), none_if_empty(db_hh),
                *dln, None, None, None, None)


def _twin(*args):
    *tensors, mask, opts, rec, zone = args
    return layernorm_gru_unrolled(*tensors, mask3d(mask), opts, rec, zone)


def layernorm_gru_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.GRU` with ``layer_norm``) on
    this engine."""
    opts = layer.options

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                params.get("bias_hh"), params["ln_ih_weight"], params["ln_hh_weight"])
        regs = tuple(map(contiguous, mask_args(masks, "recurrent", "zone_h")))
        mask = mask2d(mask)
        if needs_graph(*args):
            y, h = LayerNormGRUFunction.apply(*args, mask, opts, *regs)
        else:  # inference: no autograd node, nothing kept
            y, h, *_ = _forward(x.contiguous(), *args[1:], mask, opts, *regs)
        return y, (h,)

    return sequence
