"""The cpu engine's SRU: an autograd Function around the C++ forward and BPTT
(the math of :mod:`rnnlab.bptt.sru`, with zoneout of c from :mod:`rnnlab.regularisers`), and
the per-direction ``sequence`` adapter that :func:`rnnlab.layers.stack.run_stacked` calls.
Under ``create_graph=True`` the backward differentiates the reference engine's autograd twin
(:mod:`rnnlab.bptt.unrolled`)."""

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
from rnnlab.bptt.unrolled import sru_unrolled


def _forward(x, c0, weight_ih, weight_c, bias, mask, zone):
    """The C++ forward: ``y, c_T, U, cs``."""
    return load().sru_forward(*map(contiguous, (x, c0, weight_ih, weight_c, bias)), mask,
                              contiguous(zone))


class SRUFunction(torch.autograd.Function):
    """SRU over one direction of one layer: ``(y, c_T)``; see :mod:`rnnlab.bptt.sru`. The
    arguments of :class:`rnnlab.bptt.sru.SRUFunction`, with the mask as (T, B) bool."""

    @staticmethod
    def forward(ctx, x, c0, weight_ih, weight_c, bias, mask, zone=None):
        zone = contiguous(zone)
        inputs = (x, c0, weight_ih, weight_c, bias, mask, zone)
        x = x.contiguous()
        y, c, u, cs = _forward(x, *inputs[1:])
        save_cache(ctx, (x, weight_ih, weight_c, mask, zone, u, cs), inputs)
        ctx.has_bias = bias is not None
        return y, c

    @staticmethod
    def backward(ctx, dy, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _sru_twin, (dy, dc))
        x, weight_ih, weight_c, mask, zone, u, cs = saved_cache(ctx)
        dx, dc0, dw_ih, dw_c, db = load().sru_backward(
            dy.contiguous(), dc.contiguous(), x, contiguous(weight_ih), contiguous(weight_c),
            mask, zone, u, cs, ctx.needs_input_grad[0], ctx.has_bias)
        return none_if_empty(dx), dc0, dw_ih, dw_c, none_if_empty(db), None, None


def _sru_twin(x, c0, weight_ih, weight_c, bias, mask, zone):
    return sru_unrolled(x, c0, weight_ih, weight_c, bias, mask3d(mask), zone)


def sru_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.SRU`) on this engine."""

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], params["weight_ih"], params["weight_c"], params.get("bias"),
                mask2d(mask), *mask_args(masks, "zone_c"))
        if needs_graph(*args[:5]):
            y, c = SRUFunction.apply(*args)
        else:  # inference: no autograd node, nothing kept
            y, c, *_ = _forward(*args)
        return y, (c,)

    return sequence
