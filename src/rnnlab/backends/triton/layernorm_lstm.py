"""The Triton engine's layer-normalised LSTM: an autograd Function around the ``LAYER_NORM``
option of :mod:`rnnlab.backends.triton.lstm_kernels`, and the per-direction ``sequence``
adapter. The math is :mod:`rnnlab.bptt.layernorm_lstm`'s."""

from __future__ import annotations

import torch

from rnnlab.backends.triton.launch import (
    column_programs,
    float32,
    grad_needed,
    launch,
    lengths_of,
    masked_output,
)
from rnnlab.backends.triton.lstm_kernels import lstm_backward_kernel, lstm_forward_kernel
from rnnlab.bptt.common import differentiate_twin, flat, matmul_t, save_cache, saved_cache
from rnnlab.bptt.layernorm_lstm import layer_norm, layer_norm_backward
from rnnlab.bptt.unrolled import layernorm_lstm_unrolled
from rnnlab.cells.layernorm_lstm import LN_EPS

# what the kernels' plain LSTM options take without a layer norm: no peepholes, no clip, …
_PLAIN = dict(PEEPHOLE=False, HAS_CLIP=False, COUPLED=False, REC=False, ZONE_H=0, ZONE_C=0,
              LAYER_NORM=True, GATE_ACT=0, CAND_ACT=1, OUT_ACT=1, gate_alpha=0.0,
              gate_beta=0.0, cand_alpha=0.0, cand_beta=0.0, out_alpha=0.0, out_beta=0.0)


def _shared(B, H, x):
    """The partial row statistics the tile's programs exchange: (2, programs, B, 3)."""
    return x.new_empty(2, column_programs(B, H, x.device)[0], B, 3, dtype=torch.float32)


def _forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
             ln_c_weight, ln_c_bias, mask, training):
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
    pre = torch.empty_like(gates)  # q_t = W_hh h_{t-1}, then q̂_t
    norms = x.new_empty(kept, B, 3, dtype=torch.float32)  # s_q, mean and s of c_t
    ln = float32(torch.cat([ln_hh_weight, ln_c_weight, ln_c_bias]))
    lengths = lengths_of(mask, x)
    w_hh = weight_hh.contiguous()
    unused = (h_all,) * 6  # peepholes, clip flags, recurrent dropout and zoneout buffers
    launch(lstm_forward_kernel, B, H, 3 * T, xp, w_hh, h_all, lengths, h_all, c_all, gates,
           *unused, ln, pre, norms, _shared(B, H, x), 0.0, LN_EPS, T, B, H, dtype=x.dtype,
           device=x.device, TRAINING=training, **_PLAIN)
    y = masked_output(h_all[1:], mask, x.dtype)
    saved = (p_hat, s_ih, w_hh, ln, lengths, gates, pre, norms, c_all, h_all)
    return y, h_all[T].to(x.dtype), c_all[T].to(x.dtype), saved


class LayerNormLSTMFunction(torch.autograd.Function):
    """LN-LSTM over one direction of one layer: ``(y, h_T, c_T)``. After the kernel's BPTT
    (``da``, ``dq`` and ``dn`` of every step), over all T·B rows at once:
    ``dp = LN_backward(da∘γ_ih)``, ``dW_ih = dpᵀx``, ``dx = dp W_ih``, ``dW_hh = dqᵀh_{t-1}``,
    ``db = Σ da``, ``dγ_ih = Σ da∘p̂``, ``dγ_hh = Σ da∘q̂``, ``dγ_c = Σ dn∘ĉ``, ``dβ_c = Σ dn``."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                ln_hh_weight, ln_c_weight, ln_c_bias, mask):
        inputs = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
                  ln_c_weight, ln_c_bias, mask)
        y, h, c, saved = _forward(*inputs, training=True)
        save_cache(ctx, (x, weight_ih, ln_ih_weight, *saved), inputs)
        ctx.has_bias = bias_ih is not None
        return y, h, c

    @staticmethod
    def backward(ctx, dy, dh, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, layernorm_lstm_unrolled, (dy, dh, dc))
        (x, weight_ih, ln_ih_weight, p_hat, s_ih, w_hh, ln, lengths, gates, pre, norms, c_all,
         h_all) = saved_cache(ctx)
        T, B, _ = x.shape
        H = c_all.shape[-1]
        d_a, dq = torch.empty_like(gates), torch.empty_like(gates)
        dn = torch.empty_like(c_all[1:])
        dh_buf = gates.new_empty(2, B, H)
        dc_buf = torch.empty_like(dh_buf)
        dh_buf[T % 2], dc_buf[T % 2] = dh, dc
        unused = (h_all,) * 5  # peepholes, clip flags, recurrent dropout and zoneout buffers
        launch(lstm_backward_kernel, B, H, 4 * T, float32(dy), w_hh, h_all, lengths, gates,
               c_all, *unused, ln, pre, norms, _shared(B, H, x), d_a, dq, dn, dh_buf, dc_buf, T,
               B, H, dtype=x.dtype, device=x.device, **_PLAIN)
        d_p = flat(layer_norm_backward(d_a * float32(ln_ih_weight), p_hat, s_ih)).to(x.dtype)
        dx = (d_p @ weight_ih).view_as(x) if ctx.needs_input_grad[0] else None
        dw_ih = d_p.t() @ flat(x)
        dw_hh = flat(dq).to(x.dtype).t() @ flat(h_all[:-1]).to(x.dtype)
        db = d_a.sum((0, 1)).to(x.dtype) if ctx.has_bias else None
        c_hat = (c_all[1:] - norms[..., 1:2]) * norms[..., 2:3]
        grads = (d_a * p_hat, d_a * pre, dn * c_hat, dn)  # dγ_ih, dγ_hh, dγ_c, dβ_c
        dln = [g.sum((0, 1)).to(x.dtype) for g in grads]
        return (dx, dh_buf[0].to(x.dtype), dc_buf[0].to(x.dtype), dw_ih, dw_hh, db, db, *dln,
                None)


def layernorm_lstm_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.LSTM` with ``layer_norm``)
    on this engine (σ and tanh; weight dropout arrives in ``params``)."""

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], state[1], params["weight_ih"], params["weight_hh"],
                params.get("bias_ih"), params.get("bias_hh"), params["ln_ih_weight"],
                params["ln_hh_weight"], params["ln_c_weight"], params["ln_c_bias"])
        if grad_needed(*args):
            y, h, c = LayerNormLSTMFunction.apply(*args, mask)
        else:
            y, h, c, _ = _forward(*args, mask, training=False)
        return y, (h, c)

    return sequence
