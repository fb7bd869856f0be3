"""``torch.autograd.Function`` wrappers of the C++ CPU engine, one per family, and the
``sequence(x, state, params, mask)`` adapters that :func:`rnnlab.layers.stack.run_stacked`
calls for each layer and direction.

Each Function's forward runs the C++ forward (input GEMM, then the fused time loop) and saves
what the C++ backward needs; its backward runs the C++ BPTT. The math is the one of
:mod:`rnnlab.bptt` (the docstrings there derive it); the C++ reproduces it to rounding. Under
``create_graph=True`` the backward differentiates the reference engine's autograd twin
(:mod:`rnnlab.bptt.unrolled`) instead, so second derivatives work.
"""

from __future__ import annotations

import torch

from rnnlab.backends.cpu._build import load
from rnnlab.bptt.common import differentiate_twin, save_cache, saved_cache
from rnnlab.bptt.gru import GRUOptions
from rnnlab.bptt.lstm import LSTMOptions
from rnnlab.bptt.rnn import RNNOptions
from rnnlab.bptt.unrolled import gru_unrolled, lstm_unrolled, rnn_unrolled, sru_unrolled


def _c(t):
    return None if t is None else t.contiguous()


def _mask2d(mask):
    """(T, B, 1) bool -> contiguous (T, B) bool, as the C++ loops read it."""
    return None if mask is None else mask.reshape(mask.shape[0], mask.shape[1]).contiguous()


def _mask3d(mask):
    """The C++ loops' (T, B) mask back to the reference engine's (T, B, 1)."""
    return None if mask is None else mask.unsqueeze(-1)


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
        inputs = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr, mask,
                  cell_clip, coupled)
        bias = None if bias_ih is None else bias_ih + bias_hh
        x = x.contiguous()
        y, h, c, gates, cs, hs, ms, clipped = load().lstm_forward(
            x, _c(h0), _c(c0), _c(weight_ih), _c(weight_hh), bias, _c(peephole),
            _c(weight_hr), mask, float(cell_clip or 0.0), bool(coupled))
        save_cache(ctx, (x, weight_ih, weight_hh, peephole, weight_hr, mask, gates, cs, hs,
                         _none(ms), _none(clipped)), inputs)
        ctx.coupled, ctx.has_bias = bool(coupled), bias_ih is not None
        return y, h, c

    @staticmethod
    def backward(ctx, dy, dh, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _lstm_twin, (dy, dh, dc))
        (x, weight_ih, weight_hh, peephole, weight_hr, mask, gates, cs, hs, ms,
         clipped) = saved_cache(ctx)
        dx, dh0, dc0, dw_ih, dw_hh, db, dpeep, dw_hr = load().lstm_backward(
            dy.contiguous(), dh.contiguous(), dc.contiguous(), x, _c(weight_ih),
            _c(weight_hh), _c(peephole), _c(weight_hr), mask, gates, cs, hs, ms, clipped,
            ctx.coupled, ctx.needs_input_grad[0], ctx.has_bias)
        db = _none(db)
        return (_none(dx), dh0, dc0, dw_ih, dw_hh, db, db, _none(dpeep), _none(dw_hr),
                None, None, None)


def _lstm_twin(*args):
    *tensors, mask, cell_clip, coupled = args
    return lstm_unrolled(*tensors, _mask3d(mask), LSTMOptions(cell_clip, bool(coupled)))


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


# ---- GRU ----------------------------------------------------------------------------------------
class GRUFunction(torch.autograd.Function):
    """GRU over one direction of one layer: ``(y, h_T)``; see :mod:`rnnlab.bptt.gru`."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, reset_after):
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, reset_after)
        x = x.contiguous()
        y, h, gates, hs, aux = load().gru_forward(x, _c(h0), _c(weight_ih), _c(weight_hh),
                                                  _c(bias_ih), _c(bias_hh), mask,
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
            dy.contiguous(), dh.contiguous(), x, _c(weight_ih), _c(weight_hh), mask, gates, hs,
            aux, ctx.reset_after, ctx.needs_input_grad[0], ctx.has_bias)
        return _none(dx), dh0, dw_ih, dw_hh, _none(db_ih), _none(db_hh), None, None


def _gru_twin(*args):
    *tensors, mask, reset_after = args
    return gru_unrolled(*tensors, _mask3d(mask), GRUOptions(reset_after=bool(reset_after)))


def gru_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.GRU`) on this engine."""
    reset_after = layer.options.reset_after

    def sequence(x, state, params, mask):
        args = (x, state[0], params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                params.get("bias_hh"))
        mask = _mask2d(mask)
        if _needs_graph(*args):
            y, h = GRUFunction.apply(*args, mask, reset_after)
        else:
            y, h, *_ = load().gru_forward(*map(_c, args), mask, bool(reset_after))
        return y, (h,)

    return sequence


# ---- RNN ----------------------------------------------------------------------------------------
class RNNFunction(torch.autograd.Function):
    """Elman RNN over one direction of one layer: ``(y, h_T)``; see :mod:`rnnlab.bptt.rnn`."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, relu):
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, relu)
        x = x.contiguous()
        bias = None if bias_ih is None else bias_ih + bias_hh
        y, h, hs = load().rnn_forward(x, _c(h0), _c(weight_ih), _c(weight_hh), bias, mask,
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
            dy.contiguous(), dh.contiguous(), x, _c(weight_ih), _c(weight_hh), mask, hs,
            ctx.relu, ctx.needs_input_grad[0], ctx.has_bias)
        db = _none(db)
        return _none(dx), dh0, dw_ih, dw_hh, db, db, None, None


def _rnn_twin(*args):
    *tensors, mask, relu = args
    return rnn_unrolled(*tensors, _mask3d(mask), RNNOptions("relu" if relu else "tanh"))


def rnn_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.RNN`) on this engine."""
    relu = layer.options.nonlinearity == "relu"

    def sequence(x, state, params, mask):
        args = (x, state[0], params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                params.get("bias_hh"))
        mask = _mask2d(mask)
        if _needs_graph(*args):
            y, h = RNNFunction.apply(*args, mask, relu)
        else:
            bias = None if args[4] is None else args[4] + args[5]
            y, h, _ = load().rnn_forward(*map(_c, args[:4]), bias, mask, relu)
        return y, (h,)

    return sequence


# ---- SRU ----------------------------------------------------------------------------------------
class SRUFunction(torch.autograd.Function):
    """SRU over one direction of one layer: ``(y, c_T)``; see :mod:`rnnlab.bptt.sru`."""

    @staticmethod
    def forward(ctx, x, c0, weight_ih, weight_c, bias, mask):
        inputs = (x, c0, weight_ih, weight_c, bias, mask)
        x = x.contiguous()
        y, c, u, cs = load().sru_forward(x, _c(c0), _c(weight_ih), _c(weight_c), _c(bias), mask)
        save_cache(ctx, (x, weight_ih, weight_c, mask, u, cs), inputs)
        ctx.has_bias = bias is not None
        return y, c

    @staticmethod
    def backward(ctx, dy, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _sru_twin, (dy, dc))
        x, weight_ih, weight_c, mask, u, cs = saved_cache(ctx)
        dx, dc0, dw_ih, dw_c, db = load().sru_backward(
            dy.contiguous(), dc.contiguous(), x, _c(weight_ih), _c(weight_c), mask, u, cs,
            ctx.needs_input_grad[0], ctx.has_bias)
        return _none(dx), dc0, dw_ih, dw_c, _none(db), None


def _sru_twin(x, c0, weight_ih, weight_c, bias, mask):
    return sru_unrolled(x, c0, weight_ih, weight_c, bias, _mask3d(mask))


def sru_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.SRU`) on this engine."""

    def sequence(x, state, params, mask):
        args = (x, state[0], params["weight_ih"], params["weight_c"], params.get("bias"))
        mask = _mask2d(mask)
        if _needs_graph(*args):
            y, c = SRUFunction.apply(*args, mask)
        else:
            y, c, *_ = load().sru_forward(*map(_c, args), mask)
        return y, (c,)

    return sequence
