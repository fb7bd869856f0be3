"""The Triton engine's LSTM (peepholes, cell clipping, coupled gates, projection, activations
and regularisers included): an autograd Function around :mod:`rnnlab.backends.triton.lstm_kernels`,
and the per-direction ``sequence`` adapter."""

from __future__ import annotations

import torch

from rnnlab.backends.triton.launch import (
    activation_kwargs,
    float32,
    grad_needed,
    launch,
    lengths_of,
    masked_output,
    recurrent_input,
    zone_input,
)
from rnnlab.backends.triton.layernorm_lstm import layernorm_lstm_sequence
from rnnlab.backends.triton.lstm_kernels import lstm_backward_kernel, lstm_forward_kernel
from rnnlab.bptt.common import differentiate_twin, flat, matmul_t, save_cache, saved_cache
from rnnlab.bptt.lstm import LSTMOptions
from rnnlab.bptt.unrolled import lstm_unrolled


def _activations(opts: LSTMOptions) -> dict:
    return {**activation_kwargs("gate", opts.gate_act), **activation_kwargs("cand", opts.cand_act),
            **activation_kwargs("out", opts.out_act)}


def _forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr, mask,
             opts, rec, zone_h, zone_c, training):
    T, B, _ = x.shape
    H, P = c0.shape[-1], h0.shape[-1]  # P = proj_size, or H
    proj = weight_hr is not None
    bias = None if bias_ih is None else bias_ih + bias_hh
    xp = float32(matmul_t(x, weight_ih, bias))  # W_ih x_t + b for all steps: (T, B, 4H)
    h_all = x.new_empty(T + 1, B, P, dtype=torch.float32)  # h_all[t] = h_{t-1}
    c_all = x.new_empty(T + 1, B, H, dtype=torch.float32)
    h_all[0], c_all[0] = h0, c0
    gates = x.new_empty(T, B, 4 * H, dtype=torch.float32) if training else h_all
    has_clip = opts.cell_clip is not None
    clipped = x.new_empty(T, B, H, dtype=torch.int8) if has_clip and training else h_all
    peep = float32(peephole) if peephole is not None else h_all
    # h̃_t = o∘tanh c̃_t before the projection: every step's for dW_hr, one slot in inference
    h_tilde = x.new_empty(T if training else 1, B, H, dtype=torch.float32) if proj else h_all
    w_hr = weight_hr.contiguous() if proj else h_all
    m, hbar = recurrent_input(rec, h_all)
    zone_h, zone_h_mode = zone_input(zone_h, h_all)
    zone_c, zone_c_mode = zone_input(zone_c, h_all)
    c_tilde = torch.empty_like(c_all[1:]) if zone_c_mode and training else h_all
    lengths = lengths_of(mask, x)
    w_hh = weight_hh.contiguous()
    unused = (h_all,) * 4  # the layer norm's buffers
    launch(lstm_forward_kernel, B, H, 2 * T if proj else T, xp, w_hh, peep, w_hr, lengths,
           h_all, c_all, gates, clipped, h_tilde, m, hbar, zone_h, zone_c, c_tilde, *unused,
           float(opts.cell_clip or 0.0), 0.0, T, B, H, P, dtype=x.dtype, device=x.device,
           TRAINING=training, PEEPHOLE=peephole is not None, HAS_CLIP=has_clip,
           COUPLED=opts.coupled, **_activations(opts), REC=rec is not None, ZONE_H=zone_h_mode,
           ZONE_C=zone_c_mode, PROJ=proj, LAYER_NORM=False,
           gates=0 if proj else 4)
    y = masked_output(h_all[1:], mask, x.dtype)
    saved = (w_hh, peep, w_hr, lengths, gates, c_all, h_all, clipped, h_tilde, m, hbar, zone_h,
             zone_c, c_tilde)
    return y, h_all[T].to(x.dtype), c_all[T].to(x.dtype), saved


class LSTMFunction(torch.autograd.Function):
    """LSTM over one direction of one layer: ``(y, h_T, c_T)``. Backward: the kernel's BPTT
    gives ``da`` of every step (and with a projection ``e``, the gradient entering
    ``h̃_t W_hrᵀ``), then ``dW_ih = daᵀx``, ``dW_hh = daᵀh̄_{t-1}``, ``dx = da W_ih``,
    ``db = Σ da``, ``dW_hr = eᵀh̃`` as GEMMs over all T·B rows, and the peepholes'
    ``dp_i, dp_f, dp_o = Σ da_i∘c_{t-1}, Σ da_f∘c_{t-1}, Σ da_o∘c̃_t``
    (``h̄ = m∘h`` with recurrent dropout, ``c̃_t`` the cell state before zoneout)."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr,
                mask, opts, rec, zone_h, zone_c):
        inputs = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr, mask,
                  opts, rec, zone_h, zone_c)
        y, h, c, saved = _forward(*inputs, training=True)
        save_cache(ctx, (x, weight_ih, *saved), inputs)
        ctx.has_bias, ctx.has_peephole = bias_ih is not None, peephole is not None
        ctx.proj, ctx.opts = weight_hr is not None, opts
        ctx.modes = dict(REC=rec is not None, ZONE_H=zone_input(zone_h, x)[1],
                         ZONE_C=zone_input(zone_c, x)[1])
        return y, h, c

    @staticmethod
    def backward(ctx, dy, dh, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _twin, (dy, dh, dc))
        (x, weight_ih, w_hh, peep, w_hr, lengths, gates, c_all, h_all, clipped, h_tilde, m,
         hbar, zone_h, zone_c, c_tilde) = saved_cache(ctx)
        T, B, _ = x.shape
        H, P = c_all.shape[-1], h_all.shape[-1]
        d_a = torch.empty_like(gates)
        dh_buf = gates.new_empty(2, B, P)
        dc_buf = gates.new_empty(2, B, H)
        dh_buf[T % 2], dc_buf[T % 2] = dh, dc
        dproj = gates.new_empty(T, B, P) if ctx.proj else h_all  # e_t
        unused = (h_all,) * 4  # the layer norm's buffers
        launch(lstm_backward_kernel, B, H, 2 * T + 1 if ctx.proj else T + 1, float32(dy), w_hh,
               peep, w_hr, lengths, gates, c_all, clipped, m, zone_h, zone_c, c_tilde, *unused,
               d_a, h_all, h_all, dproj, dh_buf, dc_buf, T, B, H, P, dtype=x.dtype,
               device=x.device, PEEPHOLE=ctx.has_peephole,
               HAS_CLIP=ctx.opts.cell_clip is not None, COUPLED=ctx.opts.coupled,
               **_activations(ctx.opts), **ctx.modes, PROJ=ctx.proj, LAYER_NORM=False,
               gates=0 if ctx.proj else 4, backward=True)
        d_a2 = flat(d_a).to(x.dtype)
        dx = (d_a2 @ weight_ih).view_as(x) if ctx.needs_input_grad[0] else None
        dw_ih = d_a2.t() @ flat(x)
        dw_hh = d_a2.t() @ flat(hbar[:-1]).to(x.dtype)  # h_all itself without dropout
        db = d_a.sum((0, 1)).to(x.dtype) if ctx.has_bias else None
        dpeep = None
        if ctx.has_peephole:
            c_prev = c_all[:-1]
            c_new = c_tilde if ctx.modes["ZONE_C"] else c_all[1:]
            dpeep = torch.stack([(d_a[..., :H] * c_prev).sum((0, 1)),
                                 (d_a[..., H:2 * H] * c_prev).sum((0, 1)),
                                 (d_a[..., 3 * H:] * c_new).sum((0, 1))]).to(x.dtype)
        dw_hr = (flat(dproj).t() @ flat(h_tilde)).to(x.dtype) if ctx.proj else None
        return (dx, dh_buf[0].to(x.dtype), dc_buf[0].to(x.dtype), dw_ih, dw_hh, db, db, dpeep,
                dw_hr, None, None, None, None, None)


def _twin(*inputs):
    """The reference engine's autograd twin, for second derivatives."""
    return lstm_unrolled(*inputs)


def lstm_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.LSTM`) on this engine."""
    if layer.layer_norm:
        return layernorm_lstm_sequence(layer)
    opts = layer.options

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], state[1], params["weight_ih"], params["weight_hh"],
                params.get("bias_ih"), params.get("bias_hh"), params.get("peephole"),
                params.get("weight_hr"))
        regs = (masks.recurrent, masks.zone_h, masks.zone_c) if masks else (None, None, None)
        if grad_needed(*args):
            y, h, c = LSTMFunction.apply(*args, mask, opts, *regs)
        else:
            y, h, c, _ = _forward(*args, mask, opts, *regs, training=False)
        return y, (h, c)

    return sequence


def unsupported(layer) -> str | None:
    """Why the triton kernels cannot compute ``layer``'s configuration, or None: every option
    of the LSTM is computed (layer norm with ``proj_size`` is refused by the layer itself)."""
    return None
