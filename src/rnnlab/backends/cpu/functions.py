"""``torch.autograd.Function`` wrappers of the C++ CPU engine, one per family, and the
``sequence(x, state, params, mask)`` adapters that :func:`rnnlab.layers.stack.run_stacked`
calls for each layer and direction.

Each Function's forward runs the C++ forward (input GEMM, then the fused time loop) and saves
what the C++ backward needs; its backward runs the C++ BPTT. The math is the one of
:mod:`rnnlab.bptt` (the docstrings there derive it); the C++ reproduces it to rounding.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnlab.backends.cpu._build import load


def _c(t):
    return None if t is None else t.contiguous()


def _mask2d(mask):
    """(T, B, 1) bool -> contiguous (T, B) bool, as the C++ loops read it."""
    return None if mask is None else mask.reshape(mask.shape[0], mask.shape[1]).contiguous()


def _none(t):
    """Empty tensors stand for outputs a configuration does not produce."""
    return None if t is None or t.numel() == 0 else t


def _needs_graph(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# ---- LSTM ---------------------------------------------------------------------------------------
class LSTMFunction(torch.autograd.Function):
    """LSTM over one direction of one layer: ``(y, h_T, c_T)``; see :mod:`rnnlab.bptt.lstm`."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr,
                mask, cell_clip, coupled):
        ops = load()
        bias = None if bias_ih is None else bias_ih + bias_hh
        x = x.contiguous()
        y, h, c, gates, cs, hs, ms, clipped = ops.lstm_forward(
            x, _c(h0), _c(c0), _c(weight_ih), _c(weight_hh), bias, _c(peephole),
            _c(weight_hr), mask, float(cell_clip or 0.0), bool(coupled))
        ctx.save_for_backward(x, weight_ih, weight_hh, peephole, weight_hr, mask, gates, cs, hs,
                              _none(ms), _none(clipped))
        ctx.coupled, ctx.has_bias = bool(coupled), bias_ih is not None
        return y, h, c

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh, dc):
        (x, weight_ih, weight_hh, peephole, weight_hr, mask, gates, cs, hs, ms,
         clipped) = ctx.saved_tensors
        dx, dh0, dc0, dw_ih, dw_hh, db, dpeep, dw_hr = load().lstm_backward(
            dy.contiguous(), dh.contiguous(), dc.contiguous(), x, _c(weight_ih),
            _c(weight_hh), _c(peephole), _c(weight_hr), mask, gates, cs, hs, ms, clipped,
            ctx.coupled, ctx.needs_input_grad[0], ctx.has_bias)
        db = _none(db)
        return (_none(dx), dh0, dc0, dw_ih, dw_hh, db, db, _none(dpeep), _none(dw_hr),
                None, None, None)


def lstm_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.LSTM`) on this engine."""
    clip, coupled = layer.options.cell_clip, layer.options.coupled

    def sequence(x, state, params, mask):
        args = (x, state[0], state[1], params["weight_ih"], params["weight_hh"],
                params.get("bias_ih"), params.get("bias_hh"), params.get("peephole"),
                params.get("weight_hr"))
        mask = _mask2d(mask)
        if _needs_graph(*args):
            y, h, c = LSTMFunction.apply(*args, mask, clip, coupled)
        else:  # inference: no autograd node, nothing kept
            bias = None if args[5] is None else args[5] + args[6]
            y, h, c, *_ = load().lstm_forward(*map(_c, args[:5]), bias, *map(_c, args[7:]),
                                              mask, float(clip or 0.0), bool(coupled))
        return y, (h, c)

    return sequence
