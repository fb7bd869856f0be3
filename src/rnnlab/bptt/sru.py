"""Hand-derived BPTT for the SRU (Lei et al. 2018).

Forward (``u`` is the input projection of every step, one GEMM; ``m_t`` the running mask)::

    u_t = W_ih x_t = [x̃_t, u_f, u_r (, x'_t)]            (x'_t = x_t when W_ih has 3H rows)
    f_t = σ(u_f + v_f∘c_{t-1} + b_f);   r_t = σ(u_r + v_r∘c_{t-1} + b_r)
    c_t = f_t∘c_{t-1} + (1-f_t)∘x̃_t                        (the only sequential part)
    h_t = r_t∘c_t + (1-r_t)∘x'_t                            (all steps at once, after the loop)
    padded steps carry the state: c_t = c_{t-1}; their output is 0.

Backward. Everything that does not wait on the recursion is computed for all steps at once;
with ``dy_t`` the gradient of the output h_t (0 on padded steps)::

    da_r  = dy∘(c_t - x'_t) ∘ r(1-r)                        (h_t through r_t)
    dx'_t = dy∘(1-r)                                        (h_t through the highway)
    k_t   = (c_{t-1} - x̃_t) ∘ f(1-f)                        (∂c_t/∂a_f)

then the loop, from t = T-1 down to 0, carries only ``dc`` (the gradient reaching c_t)::

    dc_t     = dc + dy∘r                                    (from step t+1 and from h_t)
    dc_{t-1} = dc_t∘(f + k_t∘v_f) + da_r∘v_r                (c_t directly and through f_t; r_t)

and after it::

    da_f = dc_t∘k_t;   dx̃_t = dc_t∘(1-f);   du = [dx̃, da_f, da_r (, dx')]
    dW_ih = Σ_t du_tᵀ x_t;   dx = du W_ih (+ dx' when x'_t = x_t)
    dv_f = Σ da_f∘c_{t-1};   dv_r = Σ da_r∘c_{t-1};   db_f = Σ da_f;   db_r = Σ da_r

Zoneout (:mod:`rnnlab.regularisers`, keep weights ``d_t`` (T, B, H)): the cell update above
gives c̃_t and the state is ``c_t = d_t∘c_{t-1} + (1-d_t)∘c̃_t``, which ``h_t`` reads. In the
backward loop the gradient reaching c_t splits: ``dc_t∘(1-d_t)`` enters the update (the
``dc_t`` of the formulas above, stored for da_f and dx̃) and ``dc_t∘d_t`` goes to c_{t-1}.
"""

from __future__ import annotations

import torch

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
from rnnlab.bptt.unrolled import sru_unrolled


def sru_forward(x, c0, weight_ih, weight_c, bias, mask, zone=None):
    """Run the recurrence over x (T, B, I). Returns ``y, c_T, cache``. ``zone`` (T, B, H): the
    zoneout keep weights of c, or None."""
    T, B, _ = x.shape
    H = weight_c.shape[1]
    u = matmul_t(x, weight_ih)  # every matrix product of every step in one GEMM: (T, B, 3H|4H)
    x_tilde = u[..., :H]
    x_highway = u[..., 3 * H:] if weight_ih.shape[0] == 4 * H else x
    a_fr = u[..., H:3 * H].unflatten(-1, (2, H))  # (T, B, 2, H): W_f x_t, W_r x_t
    if bias is not None:
        a_fr += bias.view(2, H)
    fr = x.new_empty(T, B, 2, H)  # σ(f), σ(r), stored for the backward
    c_all = x.new_empty(T + 1, B, H)
    c_all[0] = c0
    c = c0
    for t in range(T):
        # f, r = σ(W x_t + b + v∘c_{t-1}) for both gates in one op (v is (2, H))
        torch.sigmoid(torch.addcmul(a_fr[t], weight_c, c.unsqueeze(1)), out=fr[t])
        c_new = c_all[t + 1]
        torch.addcmul(x_tilde[t], fr[t, :, 0], c - x_tilde[t], out=c_new)  # x̃ + f∘(c - x̃)
        if zone is not None:
            torch.lerp(c_new.clone(), c, zone[t], out=c_new)  # d∘c_{t-1} + (1-d)∘c̃_t
        if mask is not None:
            torch.where(mask[t], c_new, c, out=c_new)
        c = c_new
    r = fr[:, :, 1]
    y = torch.addcmul(x_highway, r, c_all[1:] - x_highway)  # h = x' + r∘(c - x'), all steps
    if mask is not None:
        y.masked_fill_(~mask, 0)
    cache = (x, weight_ih, weight_c, u, fr, c_all, mask, bias is not None, zone)
    return y, c.clone(), cache  # c_T apart from the cache (c_all[T] or c0)


def sru_backward(dy, dc_T, cache):
    """Gradients of ``(x, c0, weight_ih, weight_c, bias)``."""
    x, weight_ih, weight_c, u, fr, c_all, mask, has_bias, zone = cache
    T = x.shape[0]
    H = weight_c.shape[1]
    highway_proj = weight_ih.shape[0] == 4 * H
    x_tilde = u[..., :H]
    x_highway = u[..., 3 * H:] if highway_proj else x
    f, r = fr[:, :, 0], fr[:, :, 1]
    c_prev, c_t = c_all[:-1], c_all[1:]
    if mask is not None:
        dy = dy.masked_fill(~mask, 0)  # a padded step's output is the constant 0
    du = torch.empty_like(u)
    dx_tilde, da_f, da_r = du[..., :H], du[..., H:2 * H], du[..., 2 * H:3 * H]
    # h_t = r∘c_t + (1-r)∘x'_t, for all steps at once
    torch.mul(dy * (c_t - x_highway), r * (1 - r), out=da_r)
    dx_highway = dy * (1 - r)
    if highway_proj:
        du[..., 3 * H:] = dx_highway
    dc_from_h = dy * r
    # c_t = f∘c_{t-1} + (1-f)∘x̃_t:  k = ∂c_t/∂a_f,  through = ∂c_t/∂c_{t-1} (direct + via f)
    k_f = (c_prev - x_tilde) * (f * (1 - f))
    through = torch.addcmul(f, k_f, weight_c[0])
    from_r = da_r * weight_c[1]  # gradient into c_{t-1} through r_t
    dc_all = torch.empty_like(c_t)  # gradient reaching each step's new c_t (c̃_t with zoneout)
    dc = dc_T
    for t in reversed(range(T)):
        dc_new = dc_all[t]
        torch.add(masked(mask, t, dc), dc_from_h[t], out=dc_new)
        if zone is not None:
            keep = dc_new * zone[t]  # the kept share of c_t is c_{t-1}
            dc_new.sub_(keep)
        dc_prev = torch.addcmul(from_r[t], dc_new, through[t])
        if zone is not None:
            dc_prev += keep
        dc = carry(mask, t, dc_prev, dc)
    torch.mul(dc_all, k_f, out=da_f)
    torch.mul(dc_all, 1 - f, out=dx_tilde)
    du2 = flat(du)
    dx = (du2 @ weight_ih).view_as(x)
    if not highway_proj:
        dx += dx_highway
    dw_ih = du2.t() @ flat(x)
    da_fr = du[..., H:3 * H].unflatten(-1, (2, H))
    dweight_c = (da_fr * c_prev.unsqueeze(2)).sum((0, 1))
    db = da_fr.sum((0, 1)).flatten() if has_bias else None
    return dx, dc, dw_ih, dweight_c, db


@torch.compiler.allow_in_graph  # one call in a compiled graph (rnnlab.transforms)
class SRUFunction(torch.autograd.Function):
    """``torch.autograd.Function`` pairing :func:`sru_forward` with :func:`sru_backward`."""

    @staticmethod
    def forward(ctx, x, c0, weight_ih, weight_c, bias, mask, zone=None):
        inputs = (x, c0, weight_ih, weight_c, bias, mask, zone)
        y, c, cache = sru_forward(*inputs)
        save_cache(ctx, cache, inputs)
        return y, c

    @staticmethod
    def backward(ctx, dy, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, sru_unrolled, (dy, dc))
        return (*sru_backward(dy.contiguous(), dc.contiguous(), saved_cache(ctx)), None, None)


def sru_sequence(x, state, params, mask, masks=None):
    """Apply the SRU recurrence to one direction of one layer; ``state = (c0,)``;
    ``masks``: the :class:`rnnlab.regularisers.Masks` of this call (zoneout of c), or None."""
    y, c = hand_or_unrolled(SRUFunction, sru_unrolled, x, state[0], params["weight_ih"], params["weight_c"],
                             params.get("bias"), mask, masks.zone_c if masks else None)
    return y, (c,)


def sru_trace(x, state, params, mask, masks=None):
    """Per-step gates ``f, r``, cell states ``c`` and outputs ``h`` (T, B, H)."""
    with torch.no_grad():
        y, _, cache = sru_forward(x, state[0], params["weight_ih"], params["weight_c"],
                                  params.get("bias"), mask, masks.zone_c if masks else None)
    fr, c_all = cache[4], cache[5]
    return {"f": fr[:, :, 0], "r": fr[:, :, 1], "c": c_all[1:], "h": y}
