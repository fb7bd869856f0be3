"""Hand-derived BPTT for the Elman RNN (tanh or ReLU).

Forward, per step (``m_t`` the mask of sequences still running)::

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh;   h_t = φ(a_t)
    padded steps carry the state: h_t = h_{t-1}; their output is 0.

Backward, per step from t = T-1 down to 0, with ``dh`` the gradient reaching ``h_t`` from
step t+1 and ``dy_t`` the one from the output::

    da_t     = (dy_t + dh) ∘ φ'(a_t)       φ' = 1 - h_t² (tanh) or [h_t > 0] (ReLU); 0 if padded
    dh_{t-1} = W_hhᵀ da_t                  (= dh on a padded step)

and after the loop, as matrix products over all T·B rows at once::

    dW_ih = Σ_t da_tᵀ x_t   dW_hh = Σ_t da_tᵀ h_{t-1}   dx = da W_ih   db_ih = db_hh = Σ_t da_t

With regularisers (:mod:`rnnlab.regularisers`; a separate loop, so the plain one stays as
fast), recurrent dropout mask ``m`` (B, H) and zoneout keep weights ``d_t`` (T, B, H)::

    a_t = W_ih x_t + b + W_hh (m∘h_{t-1});   h̃_t = φ(a_t);   h_t = d_t∘h_{t-1} + (1-d_t)∘h̃_t
    g = dy_t + dh;   da_t = g∘(1-d_t)∘φ'(a_t);   dh_{t-1} = (W_hhᵀ da_t)∘m + g∘d_t
    dW_hh = Σ_t da_tᵀ (m∘h_{t-1})
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnlab.bptt.common import (
    carry,
    differentiate_twin,
    flat,
    hand_or_unrolled,
    matmul_t,
    save_cache,
    saved_cache,
)
from rnnlab.bptt.unrolled import rnn_unrolled


@dataclass(frozen=True)
class RNNOptions:
    nonlinearity: str = "tanh"  # φ: "tanh" or "relu"


def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts: RNNOptions,
                rec=None, zone=None):
    """Run the recurrence over x (T, B, I). Returns ``y, h_T, cache``. ``rec`` (B, H) and
    ``zone`` (T, B, H) are the recurrent-dropout mask and zoneout keep weights, or None."""
    if rec is not None or zone is not None:
        return _regularised_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts,
                                    rec, zone)
    T, B, _ = x.shape
    H = weight_hh.shape[0]
    bias = None if bias_ih is None else bias_ih + bias_hh
    a = matmul_t(x, weight_ih, bias)  # input part of every step in one GEMM, then a_t in place
    h_all = x.new_empty(T + 1, B, H)  # h_all[t] = h_{t-1}: the state each step starts from
    h_all[0] = h0
    relu = opts.nonlinearity == "relu"
    w_hh_t = weight_hh.t()
    a_t, hs = a.unbind(0), h_all.unbind(0)  # per-step views, made once
    for t in range(T):
        torch.addmm(a_t[t], hs[t], w_hh_t, out=a_t[t])  # a_t = W_ih x_t + b + W_hh h_{t-1}
        if relu:
            torch.clamp_min(a_t[t], 0.0, out=hs[t + 1])  # h_t = φ(a_t)
        else:
            torch.tanh(a_t[t], out=hs[t + 1])
        if mask is not None:
            torch.where(mask[t], hs[t + 1], hs[t], out=hs[t + 1])  # padded: h_t = h_{t-1}
    y = h_all[1:].clone() if mask is None else torch.where(mask, h_all[1:], 0.0)
    cache = (x, weight_ih, weight_hh, h_all, mask, opts, bias_ih is not None)
    return y, h_all[T].clone(), cache


def _regularised_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone):
    T, B, _ = x.shape
    H = weight_hh.shape[0]
    bias = None if bias_ih is None else bias_ih + bias_hh
    a = matmul_t(x, weight_ih, bias)
    h_all = x.new_empty(T + 1, B, H)  # the (zoned) states; h_all[t] = h_{t-1}
    h_all[0] = h0
    h_new = x.new_empty(T, B, H)  # h̃_t = φ(a_t), before zoneout
    phi = torch.relu if opts.nonlinearity == "relu" else torch.tanh
    w_hh_t = weight_hh.t()
    a_t, hs, h_news = a.unbind(0), h_all.unbind(0), h_new.unbind(0)
    for t in range(T):
        h_in = hs[t] if rec is None else hs[t] * rec  # recurrent dropout: W_hh (m∘h_{t-1})
        torch.addmm(a_t[t], h_in, w_hh_t, out=a_t[t])
        h_news[t].copy_(phi(a_t[t]))
        if zone is None:
            hs[t + 1].copy_(h_news[t])
        else:
            torch.lerp(h_news[t], hs[t], zone[t], out=hs[t + 1])  # d∘h_{t-1} + (1-d)∘h̃_t
        if mask is not None:
            torch.where(mask[t], hs[t + 1], hs[t], out=hs[t + 1])
    y = h_all[1:].clone() if mask is None else torch.where(mask, h_all[1:], 0.0)
    cache = (x, weight_ih, weight_hh, h_all, mask, opts, bias_ih is not None, h_new, rec, zone)
    return y, h_all[T].clone(), cache


def _regularised_backward(dy, dh_T, cache, need_dx):
    x, weight_ih, weight_hh, h_all, mask, opts, has_bias, h_new, rec, zone = cache
    T = x.shape[0]
    dphi = 1 - h_new * h_new if opts.nonlinearity == "tanh" else (h_new > 0).to(h_new.dtype)
    if zone is not None:
        dphi = dphi * (1 - zone)  # the share of g that enters the step
    if mask is not None:
        dphi = torch.where(mask, dphi, 0.0)
        dy = torch.where(mask, dy, 0.0)
    d_a = torch.empty_like(dy)
    dh = dh_T
    for t in reversed(range(T)):
        g = dy[t] + dh  # the gradient reaching h_t
        torch.mul(g, dphi[t], out=d_a[t])
        prev = d_a[t] @ weight_hh
        if rec is not None:
            prev = prev * rec
        if zone is not None:
            prev = torch.addcmul(prev, g, zone[t])  # the kept share of h_t is h_{t-1}
        dh = carry(mask, t, prev, dh)
    h_in = h_all[:-1] if rec is None else h_all[:-1] * rec
    d_a2 = flat(d_a)
    dx = (d_a2 @ weight_ih).view_as(x) if need_dx else None
    db = d_a2.sum(0) if has_bias else None
    return dx, dh, d_a2.t() @ flat(x), d_a2.t() @ flat(h_in), db, db


def rnn_backward(dy, dh_T, cache, need_dx: bool = True):
    """Gradients of ``(x, h0, weight_ih, weight_hh, bias_ih, bias_hh)``."""
    if len(cache) > 7:
        return _regularised_backward(dy, dh_T, cache, need_dx)
    x, weight_ih, weight_hh, h_all, mask, opts, has_bias = cache
    T = x.shape[0]
    h_out = h_all[1:]
    # φ'(a_t) for every step at once, 0 on padded steps (no gradient enters a padded step)
    dphi = 1 - h_out * h_out if opts.nonlinearity == "tanh" else (h_out > 0).to(h_out.dtype)
    if mask is not None:
        dphi = torch.where(mask, dphi, 0.0)
    d_a = dy * dphi  # the output's share of da_t; the recurrent share is added in the loop
    d_a_t, dphi_t = d_a.unbind(0), dphi.unbind(0)
    dh = dh_T
    for t in reversed(range(T)):
        torch.addcmul(d_a_t[t], dh, dphi_t[t], out=d_a_t[t])  # da_t = (dy_t + dh)∘φ'(a_t)
        dh = carry(mask, t, d_a_t[t] @ weight_hh, dh)  # dh_{t-1} = W_hhᵀ da_t
    d_a2 = flat(d_a)
    dx = (d_a2 @ weight_ih).view_as(x) if need_dx else None
    dw_ih = d_a2.t() @ flat(x)
    dw_hh = d_a2.t() @ flat(h_all[:-1])
    db = d_a2.sum(0) if has_bias else None
    return dx, dh, dw_ih, dw_hh, db, db


@torch.compiler.allow_in_graph  # one call in a compiled graph (rnnlab.transforms)
class RNNFunction(torch.autograd.Function):
    """``torch.autograd.Function`` pairing :func:`rnn_forward` with :func:`rnn_backward`."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec=None,
                zone=None):
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone)
        y, h, cache = rnn_forward(*inputs)
        save_cache(ctx, cache, inputs)
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, rnn_unrolled, (dy, dh))
        grads = rnn_backward(dy.contiguous(), dh.contiguous(), saved_cache(ctx),
                             need_dx=ctx.needs_input_grad[0])
        return (*grads, None, None, None, None)


def rnn_sequence(x, state, params, mask, opts: RNNOptions, masks=None):
    """Apply the RNN recurrence to one direction of one layer; ``state = (h0,)``;
    ``masks``: the :class:`rnnlab.regularisers.Masks` of this call, or None."""
    y, h = hand_or_unrolled(RNNFunction, rnn_unrolled, x, state[0], params["weight_ih"], params["weight_hh"],
                             params.get("bias_ih"), params.get("bias_hh"), mask, opts,
                             *((masks.recurrent, masks.zone_h) if masks else ()))
    return y, (h,)


def rnn_trace(x, state, params, mask, opts: RNNOptions, masks=None):
    """Per-step outputs ``h`` (T, B, H)."""
    with torch.no_grad():
        y, _, _ = rnn_forward(x, state[0], params["weight_ih"], params["weight_hh"],
                              params.get("bias_ih"), params.get("bias_hh"), mask, opts,
                              *((masks.recurrent, masks.zone_h) if masks else ()))
    return {"h": y}
