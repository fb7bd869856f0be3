"""The cpu engine's SRU: an autograd Function around the C++ forward and BPTT
(the math of :mod:`rnnlab.bptt.sru`), and the per-direction ``sequence`` adapter that
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
from rnnlab.bptt.unrolled import sru_unrolled


class SRUFunction(torch.autograd.Function):
    """SRU over one direction of one layer: ``(y, c_T)``; see :mod:`rnnlab.bptt.sru`."""

    @staticmethod
    def forward(ctx, x, c0, weight_ih, weight_c, bias, mask):
        inputs = (x, c0, weight_ih, weight_c, bias, mask)
        x = x.contiguous()
        y, c, u, cs = load().sru_forward(x, contiguous(c0), contiguous(weight_ih), contiguous(weight_c), contiguous(bias), mask)
        save_cache(ctx, (x, weight_ih, weight_c, mask, u, cs), inputs)
        ctx.has_bias = bias is not None
        return y, c

    @staticmethod
    def backward(ctx, dy, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _sru_twin, (dy, dc))
        x, weight_ih, weight_c, mask, u, cs = saved_cache(ctx)
        dx, dc0, dw_ih, dw_c, db = load().sru_backward(
            dy.contiguous(), dc.contiguous(), x, contiguous(weight_ih), contiguous(weight_c), mask, u, cs,
            ctx.needs_input_grad[0], ctx.has_bias)
        return none_if_empty(dx), dc0, dw_ih, dw_c, none_if_empty(db), None


def _sru_twin(x, c0, weight_ih, weight_c, bias, mask):
    return sru_unrolled(x, c0, weight_ih, weight_c, bias, mask3d(mask))


def sru_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.SRU`) on this engine."""

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], params["weight_ih"], params["weight_c"], params.get("bias"))
        mask = mask2d(mask)
        if needs_graph(*args):
            y, c = SRUFunction.apply(*args, mask)
        else:
            y, c, *_ = load().sru_forward(*map(contiguous, args), mask)
        return y, (c,)

    return sequence


def unsupported(layer) -> str | None:
    """Why this engine cannot compute ``layer``'s configuration, or None."""
    return regularised_unsupported(layer)
