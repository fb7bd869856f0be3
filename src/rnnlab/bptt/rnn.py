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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnlab.bptt.common import carry, flat, matmul_t


@dataclass(frozen=True)
class RNNOptions:
    nonlinearity: str = "tanh"  # φ: "tanh" or "relu"


def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts: RNNOptions):
    """Run the recurrence over x (T, B, I). Returns ``y, h_T, cache``."""
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


def rnn_backward(dy, dh_T, cache, need_dx: bool = True):
    """Gradients of ``(x, h0, weight_ih, weight_hh, bias_ih, bias_hh)``."""
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


def save_cache(ctx, cache: tuple) -> None:
    """Keep a forward's cache on ``ctx``: its tensors through ``save_for_backward`` (freed after
    the backward unless the graph is retained; in-place changes to them are detected), the rest
    as plain attributes."""
    ctx.save_for_backward(*(c if isinstance(c, Tensor) else None for c in cache))
    ctx.cache_rest = tuple(None if isinstance(c, Tensor) else c for c in cache)


def saved_cache(ctx) -> tuple:
    """The cache stored by :func:`save_cache`."""
    return tuple(r if s is None else s for s, r in zip(ctx.saved_tensors, ctx.cache_rest))


class RNNFunction(torch.autograd.Function):
    """``torch.autograd.Function`` pairing :func:`rnn_forward` with :func:`rnn_backward`."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts):
        y, h, cache = rnn_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts)
        save_cache(ctx, cache)
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        grads = rnn_backward(dy.contiguous(), dh.contiguous(), saved_cache(ctx),
                             need_dx=ctx.needs_input_grad[0])
        return (*grads, None, None)


def rnn_sequence(x, state, params, mask, opts: RNNOptions):
    """Apply the RNN recurrence to one direction of one layer; ``state = (h0,)``."""
    y, h = RNNFunction.apply(x, state[0], params["weight_ih"], params["weight_hh"],
                             params.get("bias_ih"), params.get("bias_hh"), mask, opts)
    return y, (h,)


def rnn_trace(x, state, params, mask, opts: RNNOptions):
    """Per-step outputs ``h`` (T, B, H)."""
    with torch.no_grad():
        y, _, _ = rnn_forward(x, state[0], params["weight_ih"], params["weight_hh"],
                              params.get("bias_ih"), params.get("bias_hh"), mask, opts)
    return {"h": y}
