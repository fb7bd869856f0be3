"""The Triton engine's layer-normalised LSTM: an autograd Function around the ``LAYER_NORM``
option of :mod:`rnnlab.backends.triton.lstm_kernels`, and the per-direction ``sequence``
adapter. The math is :mod:`rnnlab.bptt.layernorm_lstm`'s (activations and regularisers
included)."""

from __future__ import annotations

import torch

from rnnlab.backends.triton.launch import (
    activation_kwargs,
    float32,
    grad_needed,
    launch,
    lengths_of,
    masked_output,
    plan_for,
    recurrent_input,
    zone_input,
)
from rnnlab.backends.triton.lstm_kernels import lstm_backward_kernel, lstm_forward_kernel
from rnnlab.bptt.common import differentiate_twin, flat, matmul_t, save_cache, saved_cache
from rnnlab.bptt.layernorm_lstm import layer_norm, layer_norm_backward
from rnnlab.bptt.lstm import LSTMOptions
from rnnlab.bptt.unrolled import layernorm_lstm_unrolled
from rnnlab.cells.layernorm_lstm import LN_EPS

# the plain LSTM's options the layer-normalised cell does not have
_NOT_IN_THIS_CELL = dict(PEEPHOLE=False, HAS_CLIP=False, COUPLED=False, PROJ=False,
                         LAYER_NORM=True)


def _options(opts: LSTMOptions) -> dict:
    return {**activation_kwargs("gate", opts.gate_act), **activation_kwargs("cand", opts.cand_act),
            **activation_kwargs("out", opts.out_act), **_NOT_IN_THIS_CELL,
            "gates": 4}  # W_hh's gate blocks, for the resident form


def _shared(B, H, x, backward=False):
    """The partial row statistics the tile's programs exchange: (2, programs, B, 3), as many
    programs as the kernel's launch plan has."""
    programs = plan_for(B, H, x.device, 4, x.dtype, backward, layer_norm=True)["columns"]
    return x.new_empty(2, programs, B, 3, dtype=torch.float32)


def _forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
             ln_c_weight, ln_c_bias, mask, opts, rec, zone_h, zone_c, training):
    T, B, _ = x.shape
    H = c0.shape[-1]
    # the input term of every step at once: LN(W_ih x_t)∘γ_ih + b
    p_hat, _, s_ih = layer_norm(float32(matmul_t(x, weight_ih)))
    xp = p_hat * float32(ln_ih_weight)
    if bias_ih is not None:
        xp += float32(bias_ih + bias_hh)
    h_all = x.new_empty(T + 1, B, H, dtype=torch.float32)  # h_all[t] = h_{t-1}
    c_all = torch.empty_like(h_all)
    h_all[0], c_all[0] = h0, c0
    kept = T if training else 1  # inference overwrites one step's slot
    gates = x.new_empty(kept, B, 4 * H, dtype=torch.float32)
    pre = torch.empty_like(gates)  # q_t = W_hh h̄_{t-1}, then q̂_t
    norms = x.new_empty(kept, B, 3, dtype=torch.float32)  # s_q, mean and s of c̃_t
    ln = float32(torch.cat([ln_hh_weight, ln_c_weight, ln_c_bias]))
    m, hbar = recurrent_input(rec, h_all)
    zone_h, zone_h_mode = zone_input(zone_h, h_all)
    zone_c, zone_c_mode = zone_input(zone_c, h_all)
    c_tilde = x.new_empty(kept, B, H, dtype=torch.float32) if zone_c_mode else h_all
    lengths = lengths_of(mask, x)
    w_hh = weight_hh.contiguous()
    launch(lstm_forward_kernel, B, H, 3 * T, xp, w_hh, h_all, h_all, lengths, h_all, c_all,
           gates, h_all, h_all, m, hbar, zone_h, zone_c, c_tilde, ln, pre, norms,
           _shared(B, H, x), 0.0, LN_EPS, T, B, H, H, dtype=x.dtype, device=x.device,
           TRAINING=training, REC=rec is not None, ZONE_H=zone_h_mode, ZONE_C=zone_c_mode,
           **_options(opts))
    y = masked_output(h_all[1:], mask, x.dtype)
    saved = (p_hat, s_ih, w_hh, ln, lengths, gates, pre, norms, c_all, h_all, m, hbar, zone_h,
             zone_c, c_tilde)
    return y, h_all[T].to(x.dtype), c_all[T].to(x.dtype), saved


class LayerNormLSTMFunction(torch.autograd.Function):
    """LN-LSTM over one direction of one layer: ``(y, h_T, c_T)``. After the kernel's BPTT
    (``da``, ``dq`` and ``dn`` of every step), over all T·B rows at once:
    ``dp = LN_backward(da∘γ_ih)``, ``dW_ih = dpᵀx``, ``dx = dp W_ih``, ``dW_hh = dqᵀh̄_{t-1}``,
    ``db = Σ da``, ``dγ_ih = Σ da∘p̂``, ``dγ_hh = Σ da∘q̂``, ``dγ_c = Σ dn∘ĉ``, ``dβ_c = Σ dn``
    (``h̄ = m∘h`` with recurrent dropout)."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                ln_hh_weight, ln_c_weight, ln_c_bias, mask, opts, rec, zone_h, zone_c):
        inputs = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
                  ln_c_weight, ln_c_bias, mask, opts, rec, zone_h, zone_c)
        y, h, c, saved = _forward(*inputs, training=True)
        save_cache(ctx, (x, weight_ih, ln_ih_weight, *saved), inputs)
        ctx.has_bias, ctx.opts = bias_ih is not None, opts
        ctx.modes = dict(REC=rec is not None, ZONE_H=zone_input(zone_h, x)[1],
                         ZONE_C=zone_input(zone_c, x)[1])
        return y, h, c

    @staticmethod
    def backward(ctx, dy, dh, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _twin, (dy, dh, dc))
        (x, weight_ih, ln_ih_weight, p_hat, s_ih, w_hh, ln, lengths, gates, pre, norms, c_all,
         h_all, m, hbar, zone_h, zone_c, c_tilde) = saved_cache(ctx)
        T, B, _ = x.shape
        H = c_all.shape[-1]
        d_a, dq = torch.empty_like(gates), torch.empty_like(gates)
        dn = torch.empty_like(c_all[1:])
        dh_buf = gates.new_empty(2, B, H)
        dc_buf = torch.empty_like(dh_buf)
        dh_buf[T % 2], dc_buf[T % 2] = dh, dc
        launch(lstm_backward_kernel, B, H, 3 * T + 1, float32(dy), w_hh, h_all, h_all, lengths,
               gates, c_all, h_all, m, zone_h, zone_c, c_tilde, ln, pre, norms,
               _shared(B, H, x, backward=True), d_a, dq, dn, h_all, dh_buf, dc_buf, T, B, H, H,
               dtype=x.dtype, device=x.device, backward=True, **_options(ctx.opts), **ctx.modes)
        d_p = flat(layer_norm_backward(d_a * float32(ln_ih_weight), p_hat, s_ih)).to(x.dtype)
        dx = (d_p @ weight_ih).view_as(x) if ctx.needs_input_grad[0] else None
        dw_ih = d_p.t() @ flat(x)
        dw_hh = flat(dq).to(x.dtype).t() @ flat(hbar[:-1]).to(x.dtype)  # h_all without dropout
        db = d_a.sum((0, 1)).to(x.dtype) if ctx.has_bias else None
        c_new = c_tilde if ctx.modes["ZONE_C"] else c_all[1:]  # c̃_t, what LN(·) read
        c_hat = (c_new - norms[..., 1:2]) * norms[..., 2:3]
        grads = (d_a * p_hat, d_a * pre, dn * c_hat, dn)  # dγ_ih, dγ_hh, dγ_c, dβ_c
        dln = [g.sum((0, 1)).to(x.dtype) for g in grads]
        return (dx, dh_buf[0].to(x.dtype), dc_buf[0].to(x.dtype), dw_ih, dw_hh, db, db, *dln,
                None, None, None, None, None)


def _twin(*inputs):
    """The reference engine's autograd twin, for second derivatives; it takes the options and
    masks only when there are any (σ, tanh and no regulariser is its default form)."""
    *plain, opts, rec, zone_h, zone_c = inputs
    extra = (opts, rec, zone_h, zone_c)
    if opts == LSTMOptions() and rec is None and zone_h is None and zone_c is None:
        extra = ()
    return layernorm_lstm_unrolled(*plain, *extra)


def layernorm_lstm_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.LSTM` with ``layer_norm``)
    on this engine."""
    opts = layer.options

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], state[1], params["weight_ih"], params["weight_hh"],
                params.get("bias_ih"), params.get("bias_hh"), params["ln_ih_weight"],
                params["ln_hh_weight"], params["ln_c_weight"], params["ln_c_bias"])
        regs = (masks.recurrent, masks.zone_h, masks.zone_c) if masks else (None, None, None)
        if grad_needed(*args):
            y, h, c = LayerNormLSTMFunction.apply(*args, mask, opts, *regs)
        else:
            y, h, c, _ = _forward(*args, mask, opts, *regs, training=False)
        return y, (h, c)

    return sequence
