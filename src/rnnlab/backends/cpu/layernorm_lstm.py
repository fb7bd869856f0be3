"""The cpu engine's layer-normalised LSTM: an autograd Function around the C++ forward and
BPTT (``csrc/layernorm_lstm.cpp``, the math of :mod:`rnnlab.bptt.layernorm_lstm`) with every
option the layer accepts (activations, recurrent dropout, zoneout), and the per-direction
``sequence`` adapter that :func:`rnnlab.layers.stack.run_stacked` calls. Under
``create_graph=True`` the backward differentiates the reference engine's autograd twin
(:func:`rnnlab.bptt.unrolled.layernorm_lstm_unrolled`)."""

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
from rnnlab.bptt.unrolled import layernorm_lstm_unrolled


def _forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
             ln_c_weight, ln_c_bias, mask, opts, rec, zone_h, zone_c):
    """The C++ forward: ``[y, h_T, c_T, *saved]``."""
    bias = None if bias_ih is None else bias_ih + bias_hh
    acts = kernel_acts(opts.gate_act, opts.cand_act, opts.out_act)
    return load().layernorm_lstm_forward(
        x, *map(contiguous, (h0, c0, weight_ih, weight_hh)), bias,
        *map(contiguous, (ln_ih_weight, ln_hh_weight, ln_c_weight, ln_c_bias)), mask, acts,
        rec, zone_h, zone_c)


class LayerNormLSTMFunction(torch.autograd.Function):
    """LN-LSTM over one direction of one layer: ``(y, h_T, c_T)``; see
    :mod:`rnnlab.bptt.layernorm_lstm`. ``mask`` (T, B) bool; ``rec``, ``zone_h``, ``zone_c``
    contiguous or None."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                ln_hh_weight, ln_c_weight, ln_c_bias, mask, opts, rec, zone_h, zone_c):
        inputs = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
                  ln_c_weight, ln_c_bias, mask, opts, rec, zone_h, zone_c)
        x = x.contiguous()
        y, h, c, *saved = _forward(x, *inputs[1:])
        save_cache(ctx, (x, weight_ih, weight_hh, ln_ih_weight, ln_hh_weight, ln_c_weight, mask,
                         rec, zone_h, zone_c, *saved), inputs)
        ctx.opts, ctx.has_bias = opts, bias_ih is not None
        return y, h, c

    @staticmethod
    def backward(ctx, dy, dh, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _twin, (dy, dh, dc))
        (x, weight_ih, weight_hh, ln_ih_weight, ln_hh_weight, ln_c_weight, mask, rec, zone_h,
         zone_c, *saved, hin) = saved_cache(ctx)
        o = ctx.opts
        dx, dh0, dc0, dw_ih, dw_hh, db, *dln = load().layernorm_lstm_backward(
            dy.contiguous(), dh.contiguous(), dc.contiguous(), x,
            *map(contiguous, (weight_ih, weight_hh, ln_ih_weight, ln_hh_weight, ln_c_weight)),
            mask, kernel_acts(o.gate_act, o.cand_act, o.out_act), rec, zone_h, zone_c,
            *saved, none_if_empty(hin), ctx.needs_input_grad[0], ctx.has_bias)
        db = none_if_empty(db)
        return (none_if_empty(dx), dh0, dc0, dw_ih, dw_hh, db, db, *dln,
                None, None, None, None, None)


def _twin(*args):
    *tensors, mask, opts, rec, zone_h, zone_c = args
    return layernorm_lstm_unrolled(*tensors, mask3d(mask), opts, rec, zone_h, zone_c)


def layernorm_lstm_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.LSTM` with ``layer_norm``) on
    this engine."""
    opts = layer.options

    def sequence(x, state, params, mask, masks):
        args = (x, *state, params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                params.get("bias_hh"), params["ln_ih_weight"], params["ln_hh_weight"],
                params["ln_c_weight"], params["ln_c_bias"])
        regs = tuple(map(contiguous, mask_args(masks, "recurrent", "zone_h", "zone_c")))
        mask = mask2d(mask)
        if needs_graph(*args):
            y, h, c = LayerNormLSTMFunction.apply(*args, mask, opts, *regs)
        else:  # inference: no autograd node, nothing kept
            y, h, c, *_ = _forward(x.contiguous(), *args[1:], mask, opts, *regs)
        return y, (h, c)

    return sequence
