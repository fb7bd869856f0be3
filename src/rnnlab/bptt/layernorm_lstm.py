"""Hand-derived BPTT for the layer-normalised LSTM (Ba et al. 2016, as Haste's LayerNormLSTM).

``LN(z) = ẑ = (z - mean z)·s`` over the features of a row, with ``s = 1/sqrt(var z + eps)``.

Forward, per step (``m_t`` the mask of sequences still running; ``σ``, ``tanh`` of the gates,
the candidate and the output are the defaults of ``LSTMOptions.gate_act``, ``cand_act``,
``out_act``, see :mod:`rnnlab.activations`)::

    a_t = LN(W_ih x_t)∘γ_ih + LN(W_hh h_{t-1})∘γ_hh + b_ih + b_hh   (first LN: all steps at once)
    i, f, g, o = σ(a_i), σ(a_f), tanh(a_g), σ(a_o)
    c_t = f∘c_{t-1} + i∘g
    n_t = LN(c_t)∘γ_c + β_c;   h_t = o∘tanh(n_t)
    padded steps carry the state: h_t = h_{t-1}, c_t = c_{t-1}; their output is 0.

Backward of a layer norm (ẑ and s from the forward, ``mean`` over the row)::

    dz = (dẑ - mean(dẑ) - ẑ∘mean(dẑ∘ẑ))·s

Backward, per step from t = T-1 down to 0, with ``dh`` and ``dc`` reaching ``h_t`` and ``c_t``
(``σ'``, ``tanh'`` read from the stored outputs, ``act.grad(y)``)::

    da_o = dh∘tanh(n) ∘ σ'(o)
    dn   = dh∘o∘tanh'(n);   dc += LN_backward(dn∘γ_c, ĉ_t, s_c)
    da_i = dc∘g ∘ σ'(i);   da_f = dc∘c_{t-1} ∘ σ'(f);   da_g = dc∘i ∘ tanh'(g)
    dc_{t-1} = dc∘f
    dq_t = LN_backward(da∘γ_hh, q̂_t, s_hh)                  (q_t = W_hh h_{t-1})
    dh_{t-1} = W_hhᵀ dq_t

and after the loop, over all T·B rows at once (p_t = W_ih x_t)::

    dp = LN_backward(da∘γ_ih, p̂, s_ih);   dW_ih = Σ dpᵀ x;   dx = dp W_ih
    dW_hh = Σ dqᵀ h_{t-1};   db_ih = db_hh = Σ da
    dγ_ih = Σ da∘p̂;   dγ_hh = Σ da∘q̂;   dγ_c = Σ dn∘ĉ;   dβ_c = Σ dn

Regularisers (:mod:`rnnlab.regularisers`, as the plain LSTM of :mod:`rnnlab.bptt.lstm`):
recurrent-dropout mask ``m`` (B, H) on the input of the recurrent product, zoneout keep
weights ``d^h_t``, ``d^c_t`` (T, B, H)::

    forward:  q_t = W_hh (m∘h_{t-1});   c̃_t, h̃_t as above from c_{t-1}, h_{t-1}
              (h̃_t = o∘tanh(LN(c̃_t)∘γ_c + β_c) reads the un-zoned cell)
              c_t = d^c∘c_{t-1} + (1-d^c)∘c̃_t;   h_t = d^h∘h_{t-1} + (1-d^h)∘h̃_t;   y_t = h_t
    backward: with gh = dy_t + dh and dc reaching h_t and c_t, the step above runs on
              gh∘(1-d^h) and dc∘(1-d^c) (ĉ_t the norm of c̃_t); then
              dh_{t-1} = (W_hhᵀ dq_t)∘m + gh∘d^h,   dc_{t-1} += dc∘d^c;   dW_hh = Σ dqᵀ (m∘h_{t-1})
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.bptt.common import (
    activation_into,
    carry,
    differentiate_twin,
    flat,
    hand_or_unrolled,
    masked,
    matmul_t,
    save_cache,
    saved_cache,
)
from rnnlab.bptt.lstm import LSTMOptions
from rnnlab.bptt.unrolled import layernorm_lstm_unrolled
from rnnlab.cells.layernorm_lstm import LN_EPS

DEFAULTS = LSTMOptions()  # σ and tanh, the form of Ba et al.


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
                           ln_hh_weight, ln_c_weight, ln_c_bias, mask,
                           opts: LSTMOptions = DEFAULTS, rec=None, zone_h=None,
                           zone_c=None):
    """Run the recurrence over x (T, B, I). Returns ``y, h_T, c_T, cache``. ``opts``: the
    activations (``cell_clip`` and ``coupled`` are not part of this cell); ``rec`` (B, H),
    ``zone_h``, ``zone_c`` (T, B, H): recurrent-dropout mask and zoneout keep weights, or None."""
    T, B, _ = x.shape
    H = c0.shape[-1]
    # the input term for all steps at once: LN(W_ih x_t)∘γ_ih + b
    p_hat, _, s_ih = layer_norm(matmul_t(x, weight_ih))
    if bias_ih is None:
        a_x = p_hat * ln_ih_weight
    else:
        a_x = torch.addcmul(bias_ih + bias_hh, p_hat, ln_ih_weight)
    gate_act, cand_act = activation_into(opts.gate_act), activation_into(opts.cand_act)
    out_act = activation_into(opts.out_act)
    gates = x.new_empty(T, B, 4 * H)  # σ(i,f,o) and tanh(g)
    c_all = x.new_empty(T + 1, B, H)
    c_new_all = x.new_empty(T, B, H) if zone_c is not None else None  # c̃_t before zoneout
    h_prev_all = x.new_empty(T, B, H)  # the recurrent input (m∘)h_{t-1}
    phi_n = x.new_empty(T, B, H)  # tanh(n_t)
    y = x.new_empty(T, B, H)
    q_stats, c_stats = [], []  # (mean, s) of each step's two norms
    h, c = h0, c0
    c_all[0] = c0
    for t in range(T):
        h_in = h if rec is None else h * rec  # recurrent dropout: W_hh (m∘h_{t-1})
        h_prev_all[t] = h_in
        q_norm, q_mean, q_s = layer_norm(h_in @ weight_hh.t(), ln_hh_weight)  # LN(W_hh h)∘γ_hh
        q_stats.append((q_mean, q_s))
        a = q_norm.add_(a_x[t])
        gate_act(a, out=gates[t])
        cand_act(a[:, 2 * H:3 * H], out=gates[t, :, 2 * H:3 * H])
        i, f, g, o = gates[t].chunk(4, dim=-1)
        c_new = torch.addcmul(f * c, i, g)
        n, c_mean, c_s = layer_norm(c_new, ln_c_weight, ln_c_bias)  # LN(c̃_t)∘γ_c + β_c
        c_stats.append((c_mean, c_s))
        h_new = o * out_act(n, out=phi_n[t])
        if zone_c is not None:  # zoneout: keep c_{t-1} where d^c = 1
            c_new_all[t] = c_new
            c_new = torch.lerp(c_new, c, zone_c[t])
        if zone_h is not None:
            h_new = torch.lerp(h_new, h, zone_h[t])
        h, c = carry(mask, t, h_new, h), carry(mask, t, c_new, c)
        c_all[t + 1] = c
        y[t] = masked(mask, t, h_new)
    q_mean, q_s = (torch.stack(v) for v in zip(*q_stats))
    c_mean, c_s = (torch.stack(v) for v in zip(*c_stats))
    cache = (x, weight_ih, weight_hh, ln_ih_weight, ln_hh_weight, ln_c_weight, p_hat, s_ih,
             q_mean, q_s, c_mean, c_s, gates, phi_n, c_all, h_prev_all, mask,
             bias_ih is not None, opts, rec, zone_h, zone_c, c_new_all)
    return y, h, c, cache


def layernorm_lstm_backward(dy, dh_T, dc_T, cache):
    """Gradients of ``(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
    ln_hh_weight, ln_c_weight, ln_c_bias)``."""
    (x, weight_ih, weight_hh, ln_ih_weight, ln_hh_weight, ln_c_weight, p_hat, s_ih, q_mean,
     q_s, c_mean, c_s, gates, phi_n, c_all, h_prev_all, mask, has_bias, opts, rec, zone_h,
     zone_c, c_new_all) = cache
    T = x.shape[0]
    H = c_all.shape[-1]
    # the normalised values of the forward, recomputed for all steps at once
    q_hat = (matmul_t(h_prev_all, weight_hh) - q_mean) * q_s
    c_tilde = c_all[1:] if c_new_all is None else c_new_all  # c̃_t, before zoneout
    c_hat = (c_tilde - c_mean) * c_s  # on padded steps c_all holds the carried state, but
    #                                   every gradient there is 0, so its value is unused
    # factors of the element-wise derivatives, for all steps at once
    i, f, g, o = gates.chunk(4, dim=-1)
    k_gate = opts.gate_act.grad(gates)  # σ'(i), σ'(f), ·, σ'(o)
    dn_dh = o * opts.out_act.grad(phi_n)  # ∂h/∂n
    k_o = phi_n * k_gate[..., 3 * H:]  # ∂h/∂a_o
    k_c = dn_dh * ln_c_weight  # ∂h/∂ĉ
    k_ifg = torch.stack(  # ∂c_t/∂a_i, ∂c_t/∂a_f, ∂c_t/∂a_g: (T, B, 3, H)
        [g * k_gate[..., :H], c_all[:-1] * k_gate[..., H:2 * H], i * opts.cand_act.grad(g)], 2)
    d_a = torch.empty_like(gates)
    dq_all = torch.empty_like(gates)
    dh_all = torch.empty_like(c_all[1:])  # gradient reaching each step's new h̃_t
    padded = None if mask is None else ~mask
    dh, dc = dh_T, dc_T
    for t in reversed(range(T)):
        dh_new = dh_all[t]
        torch.add(dy[t], dh, out=dh_new)
        if zone_h is not None:  # h_t = lerp(h̃_t, h_{t-1}, d^h): the kept share goes to h_{t-1}
            keep_h = dh_new * zone_h[t]
            dh_new.sub_(keep_h)
        dc_step = dc  # gradient reaching c̃_t from c_t
        if zone_c is not None:
            keep_c = dc * zone_c[t]
            dc_step = dc - keep_c
        if padded is not None:
            dh_new.masked_fill_(padded[t], 0)
        torch.mul(dh_new, k_o[t], out=d_a[t, :, 3 * H:])
        dc_new = masked(mask, t, dc_step) + layer_norm_backward(dh_new * k_c[t], c_hat[t],
                                                                c_s[t])
        torch.mul(dc_new.unsqueeze(1), k_ifg[t], out=d_a[t, :, :3 * H].unflatten(-1, (3, H)))
        dc_prev = dc_new * f[t]
        dq = dq_all[t]
        dq.copy_(layer_norm_backward(d_a[t] * ln_hh_weight, q_hat[t], q_s[t]))
        dh_prev = dq @ weight_hh
        if rec is not None:
            dh_prev = dh_prev * rec
        if zone_h is not None:
            dh_prev = dh_prev + keep_h
        if zone_c is not None:
            dc_prev = dc_prev + keep_c
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
                ln_hh_weight, ln_c_weight, ln_c_bias, mask, opts=DEFAULTS, rec=None,
                zone_h=None, zone_c=None):
        inputs = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
                  ln_c_weight, ln_c_bias, mask, opts, rec, zone_h, zone_c)
        y, h, c, cache = layernorm_lstm_forward(*inputs)
        save_cache(ctx, cache, inputs)
        return y, h, c

    @staticmethod
    def backward(ctx, dy, dh, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, layernorm_lstm_unrolled, (dy, dh, dc))
        grads = layernorm_lstm_backward(*(g.contiguous() for g in (dy, dh, dc)),
                                        saved_cache(ctx))
        return (*grads, None, None, None, None, None)


def _args(params):
    return (params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
            params.get("bias_hh"), params["ln_ih_weight"], params["ln_hh_weight"],
            params["ln_c_weight"], params["ln_c_bias"])


def _mask_args(masks) -> tuple:
    return (masks.recurrent, masks.zone_h, masks.zone_c) if masks is not None else ()


def layernorm_lstm_sequence(x, state, params, mask, opts: LSTMOptions = DEFAULTS,
                            masks=None):
    """Apply the LN-LSTM recurrence to one direction of one layer; ``state = (h0, c0)``;
    ``masks``: the :class:`rnnlab.regularisers.Masks` of this call, or None."""
    y, h, c = hand_or_unrolled(LayerNormLSTMFunction, layernorm_lstm_unrolled, x, *state,
                               *_args(params), mask, opts, *_mask_args(masks))
    return y, (h, c)


def layernorm_lstm_trace(x, state, params, mask, opts: LSTMOptions = DEFAULTS,
                         masks=None):
    """Per-step gates ``i, f, g, o``, cell states ``c`` and outputs ``h`` (T, B, H)."""
    with torch.no_grad():
        y, _, _, cache = layernorm_lstm_forward(x, *state, *_args(params), mask, opts,
                                                *_mask_args(masks))
    gates, c_all = cache[12], cache[14]
    return dict(zip("ifgo", gates.chunk(4, dim=-1)), c=c_all[1:], h=y)
