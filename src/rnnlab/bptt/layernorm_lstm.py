"""Hand-derived BPTT for the layer-normalised LSTM (Ba et al. 2016, as Haste's LayerNormLSTM).

``LN(z) = ẑ = (z - mean z)·s`` over the features of a row, with ``s = 1/sqrt(var z + eps)``.

Forward, per step (``m_t`` the mask of sequences still running)::

    a_t = LN(W_ih x_t)∘γ_ih + LN(W_hh h_{t-1})∘γ_hh + b_ih + b_hh   (first LN: all steps at once)
    i, f, g, o = σ(a_i), σ(a_f), tanh(a_g), σ(a_o)
    c_t = f∘c_{t-1} + i∘g
    n_t = LN(c_t)∘γ_c + β_c;   h_t = o∘tanh(n_t)
    padded steps carry the state: h_t = h_{t-1}, c_t = c_{t-1}; their output is 0.

Backward of a layer norm (ẑ and s from the forward, ``mean`` over the row)::

    dz = (dẑ - mean(dẑ) - ẑ∘mean(dẑ∘ẑ))·s

Backward, per step from t = T-1 down to 0, with ``dh`` and ``dc`` reaching ``h_t`` and ``c_t``::

    da_o = dh∘tanh(n) ∘ o(1-o)
    dn   = dh∘o∘(1 - tanh² n);   dc += LN_backward(dn∘γ_c, ĉ_t, s_c)
    da_i = dc∘g ∘ i(1-i);   da_f = dc∘c_{t-1} ∘ f(1-f);   da_g = dc∘i ∘ (1-g²)
    dc_{t-1} = dc∘f
    dq_t = LN_backward(da∘γ_hh, q̂_t, s_hh)                  (q_t = W_hh h_{t-1})
    dh_{t-1} = W_hhᵀ dq_t

and after the loop, over all T·B rows at once (p_t = W_ih x_t)::

    dp = LN_backward(da∘γ_ih, p̂, s_ih);   dW_ih = Σ dpᵀ x;   dx = dp W_ih
    dW_hh = Σ dqᵀ h_{t-1};   db_ih = db_hh = Σ da
    dγ_ih = Σ da∘p̂;   dγ_hh = Σ da∘q̂;   dγ_c = Σ dn∘ĉ;   dβ_c = Σ dn
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.bptt.common import (
    carry,
    differentiate_twin,
    flat,
    hand_or_unrolled,
    masked,
    matmul_t,
    save_cache,
    saved_cache,
)
from rnnlab.bptt.unrolled import layernorm_lstm_unrolled
from rnnlab.cells.layernorm_lstm import LN_EPS


def layer_norm(z: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = LN_EPS) -> tuple[Tensor, Tensor, Tensor]:
    """``(ẑ∘weight + bias, mean z, s)`` over the last dim, ``s = 1/sqrt(var z + eps)``.

    One fused op (``torch.native_layer_norm``, what :func:`torch.nn.functional.layer_norm`
    runs) that also returns the row statistics the backward needs.
    """
    return torch.native_layer_norm(z, (z.shape[-1],), weight, bias, eps)


def layer_norm_backward(dz_hat: Tensor, z_hat: Tensor, s: Tensor) -> Tensor:
    """``dz = (dẑ - mean(dẑ) - ẑ∘mean(dẑ∘ẑ))·s``, the gradient through ``ẑ = LN(z)``."""
    mean_d = dz_hat.mean(-1, keepdim=True)
    mean_dz = (dz_hat * z_hat).mean(-1, keepdim=True)
    return (dz_hat - mean_d).addcmul_(z_hat, mean_dz, value=-1).mul_(s)


def layernorm_lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                           ln_hh_weight, ln_c_weight, ln_c_bias, mask):
    """Run the recurrence over x (T, B, I). Returns ``y, h_T, c_T, cache``."""
    T, B, _ = x.shape
    H = c0.shape[-1]
    # the input term for all steps at once: LN(W_ih x_t)∘γ_ih + b
    p_hat, _, s_ih = layer_norm(matmul_t(x, weight_ih))
    if bias_ih is None:
        a_x = p_hat * ln_ih_weight
    else:
        a_x = torch.addcmul(bias_ih + bias_hh, p_hat, ln_ih_weight)
    gates = x.new_empty(T, B, 4 * H)  # σ(i,f,o) and tanh(g)
    c_all = x.new_empty(T + 1, B, H)
    h_prev_all = x.new_empty(T, B, H)
    y = x.new_empty(T, B, H)
    q_stats, c_stats, tanh_n = [], [], []  # (mean, s) of each step's two norms; tanh(n_t)
    h, c = h0, c0
    c_all[0] = c0
    for t in range(T):
        h_prev_all[t] = h
        q_norm, q_mean, q_s = layer_norm(h @ weight_hh.t(), ln_hh_weight)  # LN(W_hh h)∘γ_hh
        q_stats.append((q_mean, q_s))
        a = q_norm.add_(a_x[t])
        torch.sigmoid(a, out=gates[t])
        torch.tanh(a[:, 2 * H:3 * H], out=gates[t, :, 2 * H:3 * H])
        i, f, g, o = gates[t].chunk(4, dim=-1)
        c_new = torch.addcmul(f * c, i, g)
        n, c_mean, c_s = layer_norm(c_new, ln_c_weight, ln_c_bias)  # LN(c_t)∘γ_c + β_c
        c_stats.append((c_mean, c_s))
        tanh_n.append(n.tanh_())  # n now holds tanh(n_t)
        h_new = o * n
        h, c = carry(mask, t, h_new, h), carry(mask, t, c_new, c)
        c_all[t + 1] = c
        y[t] = masked(mask, t, h_new)
    q_mean, q_s = (torch.stack(v) for v in zip(*q_stats))
    c_mean, c_s = (torch.stack(v) for v in zip(*c_stats))
    cache = (x, weight_ih, weight_hh, ln_ih_weight, ln_hh_weight, ln_c_weight, p_hat, s_ih,
             q_mean, q_s, c_mean, c_s, gates, torch.stack(tanh_n), c_all, h_prev_all, mask,
             bias_ih is not None)
    return y, h, c, cache


def layernorm_lstm_backward(dy, dh_T, dc_T, cache):
    """Gradients of ``(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
    ln_hh_weight, ln_c_weight, ln_c_bias)``."""
    (x, weight_ih, weight_hh, ln_ih_weight, ln_hh_weight, ln_c_weight, p_hat, s_ih, q_mean,
     q_s, c_mean, c_s, gates, tanh_n, c_all, h_prev_all, mask, has_bias) = cache
    T = x.shape[0]
    H = c_all.shape[-1]
    # the normalised values of the forward, recomputed for all steps at once
    q_hat = (matmul_t(h_prev_all, weight_hh) - q_mean) * q_s
    c_hat = (c_all[1:] - c_mean) * c_s  # on padded steps c_all holds the carried state, but
    #                                     every gradient there is 0, so its value is unused
    # factors of the element-wise derivatives, for all steps at once
    i, f, g, o = gates.chunk(4, dim=-1)
    dn_dh = o * (1 - tanh_n * tanh_n)  # ∂h/∂n
    k_o = tanh_n * o * (1 - o)  # ∂h/∂a_o
    k_c = dn_dh * ln_c_weight  # ∂h/∂ĉ
    k_ifg = torch.stack(  # ∂c_t/∂a_i, ∂c_t/∂a_f, ∂c_t/∂a_g: (T, B, 3, H)
        [g * i * (1 - i), c_all[:-1] * f * (1 - f), i * (1 - g * g)], 2)
    d_a = torch.empty_like(gates)
    dq_all = torch.empty_like(gates)
    dh_all = torch.empty_like(c_all[1:])  # gradient reaching each step's new h_t
    padded = None if mask is None else ~mask
    dh, dc = dh_T, dc_T
    for t in reversed(range(T)):
        dh_new = dh_all[t]
        torch.add(dy[t], dh, out=dh_new)
        if padded is not None:
            dh_new.masked_fill_(padded[t], 0)
        torch.mul(dh_new, k_o[t], out=d_a[t, :, 3 * H:])
        dc_new = masked(mask, t, dc) + layer_norm_backward(dh_new * k_c[t], c_hat[t], c_s[t])
        torch.mul(dc_new.unsqueeze(1), k_ifg[t], out=d_a[t, :, :3 * H].unflatten(-1, (3, H)))
        dc_prev = dc_new * f[t]
        dq = dq_all[t]
        dq.copy_(layer_norm_backward(d_a[t] * ln_hh_weight, q_hat[t], q_s[t]))
        dh_prev = dq @ weight_hh
        dh, dc = carry(mask, t, dh_prev, dh), carry(mask, t, dc_prev, dc)
    d_a2 = flat(d_a)
    dp = flat(layer_norm_backward(d_a * ln_ih_weight, p_hat, s_ih))
    dx = (dp @ weight_ih).view_as(x)
    dw_ih = dp.t() @ flat(x)
    dw_hh = flat(dq_all).t() @ flat(h_prev_all)
    db = d_a2.sum(0) if has_bias else None
    dln_ih = (d_a2 * flat(p_hat)).sum(0)
    dln_hh = (d_a2 * flat(q_hat)).sum(0)
    dn = flat(dh_all * dn_dh)
    dln_c = (dn * flat(c_hat)).sum(0)
    dln_c_bias = dn.sum(0)
    return dx, dh, dc, dw_ih, dw_hh, db, db, dln_ih, dln_hh, dln_c, dln_c_bias


@torch.compiler.allow_in_graph  # one call in a compiled graph (rnnlab.transforms)
class LayerNormLSTMFunction(torch.autograd.Function):
    """``torch.autograd.Function`` pairing :func:`layernorm_lstm_forward` with
    :func:`layernorm_lstm_backward`."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                ln_hh_weight, ln_c_weight, ln_c_bias, mask):
        inputs = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
                  ln_c_weight, ln_c_bias, mask)
        y, h, c, cache = layernorm_lstm_forward(*inputs)
        save_cache(ctx, cache, inputs)
        return y, h, c

    @staticmethod
    def backward(ctx, dy, dh, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, layernorm_lstm_unrolled, (dy, dh, dc))
        grads = layernorm_lstm_backward(*(g.contiguous() for g in (dy, dh, dc)),
                                        saved_cache(ctx))
        return (*grads, None)


def _args(params):
    return (params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
            params.get("bias_hh"), params["ln_ih_weight"], params["ln_hh_weight"],
            params["ln_c_weight"], params["ln_c_bias"])


def layernorm_lstm_sequence(x, state, params, mask):
    """Apply the LN-LSTM recurrence to one direction of one layer; ``state = (h0, c0)``."""
    y, h, c = hand_or_unrolled(LayerNormLSTMFunction, layernorm_lstm_unrolled, x, *state,
                               *_args(params), mask)
    return y, (h, c)


def layernorm_lstm_trace(x, state, params, mask):
    """Per-step gates ``i, f, g, o``, cell states ``c`` and outputs ``h`` (T, B, H)."""
    with torch.no_grad():
        y, _, _, cache = layernorm_lstm_forward(x, *state, *_args(params), mask)
    gates, c_all = cache[12], cache[14]
    return dict(zip("ifgo", gates.chunk(4, dim=-1)), c=c_all[1:], h=y)
