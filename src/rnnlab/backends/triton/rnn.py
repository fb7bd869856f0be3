"""The Triton engine's Elman RNN (with the regularisers): an autograd Function around
:mod:`rnnlab.backends.triton.rnn_kernels`, and the per-direction ``sequence`` adapter."""

from __future__ import annotations

import torch

from rnnlab.backends.triton.launch import (
    float32,
    grad_needed,
    launch,
    lengths_of,
    masked_output,
    recurrent_input,
    zone_input,
)
from rnnlab.backends.triton.rnn_kernels import rnn_backward_kernel, rnn_forward_kernel
from rnnlab.bptt.common import differentiate_twin, flat, matmul_t, save_cache, saved_cache
from rnnlab.bptt.unrolled import rnn_unrolled


def _forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone, training):
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    bias = None if bias_ih is None else bias_ih + bias_hh
    xp = float32(matmul_t(x, weight_ih, bias))  # W_ih x_t + b for all steps: (T, B, H)
    h_all = x.new_empty(T + 1, B, H, dtype=torch.float32)  # h_all[t] = h_{t-1}
    h_all[0] = h0
    m, hbar = recurrent_input(rec, h_all)
    zone, zone_mode = zone_input(zone, h_all)
    h_tilde = torch.empty_like(h_all[1:]) if zone_mode and training else h_all
    lengths = lengths_of(mask, x)
    w_hh = weight_hh.contiguous()
    launch(rnn_forward_kernel, B, H, T, xp, w_hh, lengths, h_all, m, hbar, zone, h_tilde, T, B,
           H, dtype=x.dtype, device=x.device, RELU=opts.nonlinearity == "relu",
           TRAINING=training, REC=rec is not None, ZONE=zone_mode, gates=1)
    y = masked_output(h_all[1:], mask, x.dtype)
    return y, h_all[T].to(x.dtype), (w_hh, lengths, h_all, m, hbar, zone, h_tilde)


class RNNFunction(torch.autograd.Function):
    """Elman RNN over one direction of one layer: ``(y, h_T)``; weight gradients as GEMMs over
    all steps after the kernel's BPTT (see :class:`rnnlab.backends.triton.lstm.LSTMFunction`)."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone):
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone)
        y, h, saved = _forward(*inputs, training=True)
        save_cache(ctx, (x, weight_ih, *saved), inputs)
        ctx.has_bias, ctx.relu = bias_ih is not None, opts.nonlinearity == "relu"
        ctx.modes = dict(REC=rec is not None, ZONE=zone_input(zone, x)[1])
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, rnn_unrolled, (dy, dh))
        x, weight_ih, w_hh, lengths, h_all, m, hbar, zone, h_tilde = saved_cache(ctx)
        T, B, _ = x.shape
        H = w_hh.shape[1]
        d_a = h_all.new_empty(T, B, H)
        dh_buf = h_all.new_empty(2, B, H)
        dh_buf[T % 2] = dh
        launch(rnn_backward_kernel, B, H, T + 1, float32(dy), w_hh, lengths, h_all, m, zone,
               h_tilde, d_a, dh_buf, T, B, H, dtype=x.dtype, device=x.device, RELU=ctx.relu,
               **ctx.modes, gates=1, backward=True)
        d_a2 = flat(d_a).to(x.dtype)
        dx = (d_a2 @ weight_ih).view_as(x) if ctx.needs_input_grad[0] else None
        dw_ih = d_a2.t() @ flat(x)
        dw_hh = d_a2.t() @ flat(hbar[:-1]).to(x.dtype)  # h_all itself without dropout
        db = d_a.sum((0, 1)).to(x.dtype) if ctx.has_bias else None
        return dx, dh_buf[0].to(x.dtype), dw_ih, dw_hh, db, db, None, None, None, None


def rnn_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.RNN`) on this engine."""
    opts = layer.options

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                params.get("bias_hh"))
        regs = (masks.recurrent, masks.zone_h) if masks else (None, None)
        if grad_needed(*args):
            y, h = RNNFunction.apply(*args, mask, opts, *regs)
        else:
            y, h, _ = _forward(*args, mask, opts, *regs, training=False)
        return y, (h,)

    return sequence


def unsupported(layer) -> str | None:
    """Why the triton kernels cannot compute ``layer``'s configuration, or None."""
    return None
