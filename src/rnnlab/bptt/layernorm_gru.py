"""Hand-derived BPTT for the layer-normalised GRU (Ba et al. 2016, as Haste's LayerNormGRU).

Forward, per step (``LN`` over the 3H rows, no shift, ε = 1e-5, ``m_t`` the running mask)::

    v_t  = W_ih x_t  (all steps in one GEMM);    gx_t = LN(v_t)∘γ_ih + b_ih   (all steps at once)
    u_t  = W_hh h_{t-1};                         gh_t = LN(u_t)∘γ_hh + b_hh
    r, z = σ(gx_r + gh_r), σ(gx_z + gh_z);   n = tanh(gx_n + r∘gh_n);   h_t = n + z∘(h_{t-1} - n)
    with LN(u) = (u - mean u)∘rstd = û,   rstd = 1/sqrt(var u + ε)   (biased variance)
    padded steps carry the state: h_t = h_{t-1}; their output is 0.

Backward: the GRU's ``reset_after`` loop (:func:`rnnlab.bptt.gru.reset_after_loop`) gives the
gradients ``dgx_t``, ``dgh_t`` on the normalised pre-activations; the layer norm between
``gh_t`` and ``u_t = W_hh h_{t-1}`` is differentiated inside the loop::

    dû = dgh∘γ_hh;   du = rstd∘(dû - mean(dû) - û∘mean(dû∘û));   dh_{t-1} = g∘z + W_hhᵀ du

and the input side, which has no recurrence, after the loop for all steps at once::

    dv = rstd∘(dv̂ - mean(dv̂) - v̂∘mean(dv̂∘v̂)) with dv̂ = dgx∘γ_ih;   dW_ih = Σ dvᵀ x;   dx = dv W_ih
    dW_hh = Σ_t du_tᵀ h_{t-1}   dγ_ih = Σ dgx∘v̂   dγ_hh = Σ dgh∘û   db_ih = Σ dgx   db_hh = Σ dgh

Non-default activations (``GRUOptions.gate_act`` of r, z, ``cand_act`` of n) and the
regularisers enter exactly as in the plain GRU (:mod:`rnnlab.bptt.gru`): recurrent dropout
``h̄ = m∘h_{t-1}`` is the input of the recurrent product, ``u_t = W_hh h̄`` (not in
``z∘h_{t-1}``), and zoneout ``h_t = d_t∘h_{t-1} + (1-d_t)∘h̃_t``. The same loop then gives,
with ``g = dy_t + dh`` and ``g̃ = g∘(1-d_t)``::

    da_n = g̃∘(1-z)∘φ'(n);   da_z = g̃∘(h_{t-1} - n)∘σ'(z);   da_r = da_n∘gh_n∘σ'(r)
    du   = LN_backward(dgh∘γ_hh);   dh_{t-1} = g̃∘z + g∘d_t + (W_hhᵀ du)∘m
    dW_hh = Σ_t du_tᵀ h̄_t
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.bptt.common import (
    activation_into,
    differentiate_twin,
    flat,
    hand_or_unrolled,
    matmul_t,
    save_cache,
    saved_cache,
)
from rnnlab.bptt.gru import GRUOptions, carry_state, outputs, reset_after_loop, steps
from rnnlab.bptt.unrolled import layernorm_gru_unrolled
from rnnlab.cells.gru import LN_EPS

DEFAULTS = GRUOptions()  # σ and tanh, the form of Ba et al.


def layer_norm_backward(d_hat: Tensor, hat: Tensor, rstd: Tensor, out: Tensor | None = None):
    """The gradient on ``u`` from the one on ``û = (u - mean u)∘rstd`` (last dimension):
    ``du = rstd∘(dû - mean(dû) - û∘mean(dû∘û))``."""
    centred = d_hat - d_hat.mean(-1, keepdim=True)
    centred = torch.addcmul(centred, hat, (d_hat * hat).mean(-1, keepdim=True), value=-1)
    return torch.mul(centred, rstd, out=out) if out is not None else centred * rstd


def normalise(u: Tensor, out: Tensor, rstd_out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``û = (u - mean u)∘rstd`` over the last dimension into ``out``; returns ``(û, rstd)``,
    ``rstd = 1/sqrt(var u + ε)`` (biased variance, as :func:`rnnlab.cells.gru.layer_norm`)."""
    var, mean = torch.var_mean(u, -1, keepdim=True, correction=0)
    rstd = torch.add(var, LN_EPS, out=rstd_out).rsqrt_()
    return torch.sub(u, mean, out=out).mul_(rstd), rstd


def scale_shift(u_hat: Tensor, gain: Tensor, bias: Tensor | None) -> Tensor:
    """``û∘γ + b``."""
    return u_hat * gain if bias is None else torch.addcmul(bias, u_hat, gain)


def layernorm_gru_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                          ln_hh_weight, mask, opts: GRUOptions = DEFAULTS, rec=None,
                          zone=None):
    """Run the recurrence over x (T, B, I). Returns ``y, h_T, cache``. ``opts``: the
    activations (the form is ``reset_after``); ``rec`` (B, H) and ``zone`` (T, B, H): the
    recurrent-dropout mask and zoneout keep weights, or None."""
    T, B, _ = x.shape
    H = weight_hh.shape[0] // 3
    v_hat, v_rstd = normalise(matmul_t(x, weight_ih), x.new_empty(T, B, 3 * H))  # all steps
    gx = scale_shift(v_hat, ln_ih_weight, bias_ih)  # gx_t = LN(W_ih x_t)∘γ_ih + b_ih
    gates = x.new_empty(T, B, 3 * H)  # r, z, n, stored for the backward
    u_hat = x.new_empty(T, B, 3 * H)  # LN(W_hh h̄_t), stored for the backward
    u_rstd = x.new_empty(T, B, 1)
    h_all = x.new_empty(T + 1, B, H)  # h_all[t] = h_{t-1}
    h_all[0] = h0
    hs, u_hats, u_rstds = steps(h_all), steps(u_hat), steps(u_rstd)
    rz, r, z, n = steps(gates, 0, 2 * H), steps(gates, 0, H), steps(gates, H, 2 * H), \
        steps(gates, 2 * H)
    gx_rz, gx_n = steps(gx, 0, 2 * H), steps(gx, 2 * H)
    gate_act, cand_act = activation_into(opts.gate_act), activation_into(opts.cand_act)
    w_hh_t = weight_hh.t()
    for t in range(T):
        h_in = hs[t] if rec is None else hs[t] * rec  # h̄ = m∘h_{t-1}
        normalise(h_in @ w_hh_t, u_hats[t], u_rstds[t])  # û_t = LN(W_hh h̄)
        gh = scale_shift(u_hats[t], ln_hh_weight, bias_hh)  # gh_t = û_t∘γ_hh + b_hh
        gate_act(torch.add(gx_rz[t], gh[:, :2 * H], out=rz[t]), out=rz[t])  # r, z = σ(gx + gh)
        cand_act(torch.addcmul(gx_n[t], r[t], gh[:, 2 * H:], out=n[t]), out=n[t])  # n
        torch.lerp(n[t], hs[t], z[t], out=hs[t + 1])  # h_t = n + z∘(h_{t-1} - n)
        if zone is not None:
            torch.lerp(hs[t + 1], hs[t], zone[t], out=hs[t + 1])  # d∘h_{t-1} + (1-d)∘h̃_t
        carry_state(hs, t, mask)
    y, h_T = outputs(h_all, mask)
    cache = (x, weight_ih, weight_hh, bias_hh, ln_ih_weight, ln_hh_weight, v_hat, v_rstd,
             u_hat, u_rstd, gates, h_all, mask, opts, rec, zone)
    return y, h_T, cache


def layernorm_gru_backward(dy, dh_T, cache, need_dx: bool = True):
    """Gradients of ``(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
    ln_hh_weight)``."""
    (x, weight_ih, weight_hh, bias_hh, ln_ih_weight, ln_hh_weight, v_hat, v_rstd, u_hat, u_rstd,
     gates, h_all, mask, opts, rec, zone) = cache
    T, B, H = dy.shape
    h_prev = h_all[:-1]
    h_in = h_prev if rec is None else h_prev * rec  # h̄, what W_hh read
    gh_n = scale_shift(u_hat[..., 2 * H:], ln_hh_weight[2 * H:],
                       None if bias_hh is None else bias_hh[2 * H:])
    d_u = torch.empty_like(gates)
    d_us, u_hats, u_rstds = steps(d_u), steps(u_hat), steps(u_rstd)

    def through_norm(t, d_gh_t):  # du_t from dgh_t, through gh = û∘γ_hh + b_hh
        return layer_norm_backward(d_gh_t * ln_hh_weight, u_hats[t], u_rstds[t], out=d_us[t])

    d, dh = reset_after_loop(dy, dh_T, gates, gh_n, h_prev, weight_hh, mask, through_norm,
                             opts, rec, zone)
    d_gh = flat(d[:, :, :3].reshape(T, B, 3 * H))
    d_gx = flat(torch.cat([d[:, :, :2], d[:, :, 3:]], dim=2).view(T, B, 3 * H))
    d_v = layer_norm_backward(d_gx * ln_ih_weight, flat(v_hat), flat(v_rstd))
    dx = (d_v @ weight_ih).view_as(x) if need_dx else None
    dw_ih = d_v.t() @ flat(x)
    dw_hh = flat(d_u).t() @ flat(h_in)
    db_ih, db_hh = (d_gx.sum(0), d_gh.sum(0)) if bias_hh is not None else (None, None)
    d_ln_ih = (d_gx * flat(v_hat)).sum(0)
    d_ln_hh = (d_gh * flat(u_hat)).sum(0)
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh, d_ln_ih, d_ln_hh


@torch.compiler.allow_in_graph  # one call in a compiled graph (rnnlab.transforms)
class LayerNormGRUFunction(torch.autograd.Function):
    """``torch.autograd.Function`` pairing :func:`layernorm_gru_forward` with
    :func:`layernorm_gru_backward`."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
                mask, opts=DEFAULTS, rec=None, zone=None):
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight, mask,
                  opts, rec, zone)
        y, h, cache = layernorm_gru_forward(*inputs)
        save_cache(ctx, cache, inputs)
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, layernorm_gru_unrolled, (dy, dh))
        grads = layernorm_gru_backward(dy.contiguous(), dh.contiguous(), saved_cache(ctx),
                                       need_dx=ctx.needs_input_grad[0])
        return (*grads, None, None, None, None)


def _args(x, state, params, mask, opts, masks):
    return (x, state[0], params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
            params.get("bias_hh"), params["ln_ih_weight"], params["ln_hh_weight"], mask, opts,
            *((masks.recurrent, masks.zone_h) if masks is not None else ()))


def layernorm_gru_sequence(x, state, params, mask, opts: GRUOptions = DEFAULTS, masks=None):
    """Apply the layer-normalised GRU to one direction of one layer; ``state = (h0,)``;
    ``masks``: the :class:`rnnlab.regularisers.Masks` of this call, or None."""
    y, h = hand_or_unrolled(LayerNormGRUFunction, layernorm_gru_unrolled,
                            *_args(x, state, params, mask, opts, masks))
    return y, (h,)


def layernorm_gru_trace(x, state, params, mask, opts: GRUOptions = DEFAULTS, masks=None):
    """Per-step gates ``r, z, n`` and outputs ``h`` (T, B, H)."""
    with torch.no_grad():
        y, _, cache = layernorm_gru_forward(*_args(x, state, params, mask, opts, masks))
    return dict(zip("rzn", cache[10].chunk(3, dim=-1)), h=y)
