"""Hand-derived BPTT for the GRU, in torch's ``reset_after`` form and in the original one.

Forward, per step (``gx = W_ih x_t + b_ih`` for all steps in one GEMM, ``m_t`` the mask of
sequences still running)::

    reset_after=True:   gh = W_hh h_{t-1} + b_hh
                        r, z = σ(gx_r + gh_r), σ(gx_z + gh_z);   n = tanh(gx_n + r∘gh_n)
    reset_after=False:  r, z = σ(gx_r + b_hr + W_hr h_{t-1}), σ(gx_z + b_hz + W_hz h_{t-1})
                        n = tanh(gx_n + b_hn + W_hn (r∘h_{t-1}))
    h_t = n + z∘(h_{t-1} - n)   (= (1-z)∘n + z∘h_{t-1})
    padded steps carry the state: h_t = h_{t-1}; their output is 0.

Backward, per step from t = T-1 down to 0, with ``g`` the gradient reaching ``h_t`` (from the
output y_t and from step t+1); ``a_·`` are the pre-activations of r, z, n::

    da_n = g∘(1-z)∘(1-n²)          da_z = g∘(h_{t-1} - n)∘z(1-z)      (both 0 if padded)
    reset_after=True:   da_r = da_n∘gh_n∘r(1-r)
                        dgh = [da_r, da_z, da_n∘r];   dgx = [da_r, da_z, da_n]
                        dh_{t-1} = g∘z + W_hhᵀ dgh
    reset_after=False:  d(r∘h) = W_hnᵀ da_n;   da_r = d(r∘h)∘h_{t-1}∘r(1-r)
                        dgx = dgh = [da_r, da_z, da_n]
                        dh_{t-1} = g∘z + d(r∘h)∘r + W_hr,zᵀ [da_r, da_z]
    g_{t-1} = dy_{t-1} + dh_{t-1}

A padded step must pass ``g`` through unchanged (``h_t = h_{t-1}``): with its gate gradients 0
this holds when z is taken as 1 there and dy as 0, so the loop needs no masking of its own.
After the loop, as matrix products over all T·B rows at once::

    dW_ih = Σ_t dgx_tᵀ x_t   dx = dgx W_ih   db_ih = Σ_t dgx_t   db_hh = Σ_t dgh_t
    dW_hh = Σ_t dgh_tᵀ h_{t-1}
            (reset_after=False: rows r, z as this, rows n Σ_t da_nᵀ (r∘h_{t-1}))

Speed: every per-step view is made once before the loop (``unbind``); each step is a handful
of fused ATen calls writing into preallocated buffers (``out=``).

Non-default activations (``GRUOptions.gate_act`` of r, z and ``cand_act`` of n, see
:mod:`rnnlab.activations`) and regularisers (:mod:`rnnlab.regularisers`: recurrent-dropout
mask ``m`` (B, H), zoneout keep weights ``d_t`` (T, B, H)) run through the same loops.
``h̄ = m∘h_{t-1}`` replaces ``h_{t-1}`` wherever it enters ``W_hh`` (not in ``z∘h_{t-1}``),
``h_t = d_t∘h_{t-1} + (1-d_t)∘h̃_t`` with ``h̃_t`` the GRU update above, σ' and tanh' become
``act.grad(output)``, and per step, with ``g = dy_t + dh``::

    g̃ = g∘(1-d_t) (0 if padded);   da_n = g̃∘(1-z)∘φ'(n);   da_z = g̃∘(h_{t-1} - n)∘σ'(z)
    dh_{t-1} = g̃∘z + g∘d_t + (W_hhᵀ dgh)∘m        (reset_after=False: as above, then ∘m)
    dW_hh = Σ_t dgh_tᵀ h̄_t   (reset_after=False: rows n Σ_t da_nᵀ (r∘h̄_t))

``1-d_t`` and ``g̃∘z + g∘d_t = g∘(z + d_t∘(1-z))`` are folded into the per-step factors before
the loop, so without regularisers a step makes the same ATen calls as the plain form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnlab.activations import SIGMOID, TANH, Activation
from rnnlab.bptt.common import (
    activation_into,
    differentiate_twin,
    flat,
    hand_or_unrolled,
    matmul_t,
    save_cache,
    saved_cache,
)
from rnnlab.bptt.unrolled import gru_unrolled


@dataclass(frozen=True)
class GRUOptions:
    reset_after: bool = True  # torch's n = tanh(gx_n + r∘(W_hn h + b_hn)); False: W_hn (r∘h)
    gate_act: Activation = SIGMOID  # of r, z
    cand_act: Activation = TANH  # of n

    @property
    def default_activations(self) -> bool:
        return self.gate_act == SIGMOID and self.cand_act == TANH


def steps(t: Tensor, lo: int | None = None, hi: int | None = None) -> tuple[Tensor, ...]:
    """Per-step views ``t[s, ..., lo:hi]`` of a (T, ...) buffer, made in one call."""
    return (t if lo is None else t[..., lo:hi]).unbind(0)


def carry_state(hs, t: int, mask: Tensor | None) -> None:
    """A padded step keeps ``h_{t-1}``: ``hs[t + 1] = hs[t]`` where sequence b has ended."""
    if mask is not None:
        torch.where(mask[t], hs[t + 1], hs[t], out=hs[t + 1])


def outputs(h_all: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """The layer output ``y`` (0 on padded steps) and the final state, apart from the cache."""
    y = h_all[1:].clone() if mask is None else torch.where(mask, h_all[1:], 0.0)
    return y, h_all[-1].clone()


def backward_inputs(dy: Tensor, gates: Tensor, h_prev: Tensor, mask: Tensor | None,
                    opts: GRUOptions, zone: Tensor | None = None):
    """What the backward loop reads, for all steps at once:

    * ``dy_prev[t] = dy_{t-1}`` (0 for t = 0 and on padded steps), ``g_T = dy_{T-1}``;
    * ``z_pass``: the share of ``g`` that goes straight to ``h_{t-1}``: z (zoneout:
      ``z + d∘(1-z)``), 1 on padded steps (there ``dh_{t-1} = g``);
    * ``k_zn`` (T, B, 2, H): ``∂h_t/∂a_z = (h_{t-1}-n) σ'(z)`` and ``∂h_t/∂a_n = (1-z) φ'(n)``
      (zoneout: times ``1-d``), 0 on padded steps (no gradient enters a padded step).
    """
    _, z, n = gates.chunk(3, dim=-1)
    k_zn = torch.stack([(h_prev - n) * opts.gate_act.grad(z), (1 - z) * opts.cand_act.grad(n)],
                       dim=2)
    z_pass = z
    if zone is not None:
        k_zn = k_zn * (1 - zone).unsqueeze(2)
        z_pass = torch.addcmul(z, zone, 1 - z)
    if mask is not None:
        dy = torch.where(mask, dy, 0.0)
        z_pass = torch.where(mask, z_pass, 1.0)
        k_zn = torch.where(mask.unsqueeze(-1), k_zn, 0.0)
    dy_prev = torch.cat([torch.zeros_like(dy[:1]), dy[:-1]])
    return dy[-1], dy_prev, z_pass, k_zn


def reset_after_loop(dy, dh_T, gates, gh_n, h_prev, weight_hh, mask, through_norm=None,
                     opts: GRUOptions = GRUOptions(), rec=None, zone=None):
    """The backward time loop of the ``reset_after`` form. Returns ``(d, dh_0)`` where
    ``d`` (T, B, 4, H) holds ``[da_r, da_z, da_n∘r, da_n]`` per step: its first three rows are
    ``dgh``, rows 0, 1, 3 are ``dgx``.

    ``through_norm(t, dgh_t)``, if given, maps the gradient on ``gh_t`` to the one on the
    recurrent product ``W_hh h_{t-1}`` (the layer-norm backward); identity otherwise.
    """
    T, B, H = h_prev.shape
    r = gates[..., :H]
    g_T, dy_prev, z_pass, k_zn = backward_inputs(dy, gates, h_prev, mask, opts, zone)
    # ∂a_n/∂a_r = gh_n∘σ'(r), ∂a_n/∂gh_n = r
    k_rr = torch.stack([gh_n * opts.gate_act.grad(r), r], dim=2)
    d = dy.new_empty(T, B, 4, H)
    d_zn, d_rr, da_n = steps(d[:, :, 1::2]), steps(d[:, :, 0:3:2]), steps(d[:, :, 3:])
    d_gh = steps(d[:, :, :3].view(T, B, 3 * H))
    k_zn, k_rr, z_pass, dy_prev = steps(k_zn), steps(k_rr), steps(z_pass), steps(dy_prev)
    g = g_T + dh_T  # g = dL/dh_t, starting at t = T-1; updated in place at the end of a step
    g_rows = g.unsqueeze(1)  # g as (B, 1, H), to broadcast against the (B, 2, H) factors
    for t in reversed(range(T)):
        torch.mul(g_rows, k_zn[t], out=d_zn[t])  # [da_z, da_n] = g∘[∂h/∂a_z, ∂h/∂a_n]
        torch.mul(da_n[t], k_rr[t], out=d_rr[t])  # [da_r, dgh_n] = da_n∘[gh_n σ'(r), r]
        d_prod = d_gh[t] if through_norm is None else through_norm(t, d_gh[t])
        # dL/dh_{t-1} = dy_{t-1} + g∘z + (W_hhᵀ d_prod)(∘m)
        direct = torch.addcmul(dy_prev[t], g, z_pass[t])
        if rec is None:
            torch.addmm(direct, d_prod, weight_hh, out=g)
        else:
            torch.addcmul(direct, d_prod @ weight_hh, rec, out=g)
    return d, g


def _original_loop(dy, dh_T, gates, h_prev, h_in, weight_hh, mask, opts, rec, zone):
    """The backward time loop of ``reset_after=False``. Returns ``[da_r, da_z, da_n]``
    (T, B, 3H) and ``dh_0``."""
    T, B, H = h_prev.shape
    r = gates[..., :H]
    g_T, dy_prev, z_pass, k_zn = backward_inputs(dy, gates, h_prev, mask, opts, zone)
    k_r = h_in * opts.gate_act.grad(r)  # ∂(r∘h̄)/∂a_r = h̄∘σ'(r)
    w_rz, w_n = weight_hh[:2 * H], weight_hh[2 * H:]
    d_a = dy.new_empty(T, B, 3 * H)
    d_rz, da_r = steps(d_a, 0, 2 * H), steps(d_a, 0, H)
    d_zn, da_n = steps(d_a[..., H:].view(T, B, 2, H)), steps(d_a, 2 * H)
    k_zn, k_r, r, z_pass, dy_prev = (steps(v) for v in (k_zn, k_r, r, z_pass, dy_prev))
    g = g_T + dh_T  # g = dL/dh_t, starting at t = T-1; updated in place at the end of a step
    g_rows = g.unsqueeze(1)  # g as (B, 1, H), to broadcast against the (B, 2, H) factors
    for t in reversed(range(T)):
        torch.mul(g_rows, k_zn[t], out=d_zn[t])  # [da_z, da_n] = g∘[∂h/∂a_z, ∂h/∂a_n]
        d_rh = da_n[t] @ w_n  # d(r∘h̄) = W_hnᵀ da_n
        torch.mul(d_rh, k_r[t], out=da_r[t])  # da_r = d(r∘h̄)∘h̄∘σ'(r)
        # dL/dh_{t-1} = dy_{t-1} + g∘z + (d(r∘h̄)∘r + W_hr,zᵀ [da_r, da_z])(∘m)
        direct = torch.addcmul(dy_prev[t], g, z_pass[t])
        if rec is None:
            torch.addmm(direct.addcmul_(d_rh, r[t]), d_rz[t], w_rz, out=g)
        else:
            torch.addcmul(direct, torch.addmm(d_rh * r[t], d_rz[t], w_rz), rec, out=g)
    return d_a, g


def gru_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts: GRUOptions,
                rec=None, zone=None):
    """Run the recurrence over x (T, B, I). Returns ``y, h_T, cache``. ``rec`` (B, H) and
    ``zone`` (T, B, H) are the recurrent-dropout mask and zoneout keep weights, or None."""
    T, B, _ = x.shape
    H = weight_hh.shape[0] // 3
    gates = x.new_empty(T, B, 3 * H)  # r, z, n, stored for the backward
    h_all = x.new_empty(T + 1, B, H)  # h_all[t] = h_{t-1}: the state each step starts from
    h_all[0] = h0
    hs, rz = steps(h_all), steps(gates, 0, 2 * H)
    r, z, n = steps(gates, 0, H), steps(gates, H, 2 * H), steps(gates, 2 * H)
    gate_act, cand_act = activation_into(opts.gate_act), activation_into(opts.cand_act)
    if opts.reset_after:
        gx = matmul_t(x, weight_ih, bias_ih)  # all steps in one GEMM: (T, B, 3H)
        # a[t] = [gx_r + gh_r, gx_z + gh_z, gh_n]: filled with gx_rz + b_hh_rz and b_hn, then
        # the step's GEMM accumulates W_hh h̄ into it. Its n rows are read by the backward.
        a = x.new_empty(T, B, 3 * H)
        a[..., :2 * H] = gx[..., :2 * H]
        if bias_hh is None:
            a[..., 2 * H:] = 0.0
        else:
            a[..., :2 * H] += bias_hh[:2 * H]
            a[..., 2 * H:] = bias_hh[2 * H:]
        a_t, a_rz, gh_n, gx_n = steps(a), steps(a, 0, 2 * H), steps(a, 2 * H), steps(gx, 2 * H)
        w_hh_t = weight_hh.t()
        for t in range(T):
            h_in = hs[t] if rec is None else hs[t] * rec  # h̄ = m∘h_{t-1}
            torch.addmm(a_t[t], h_in, w_hh_t, out=a_t[t])  # += W_hh h̄
            gate_act(a_rz[t], out=rz[t])  # r, z = σ(gx + gh)
            n_in = torch.addcmul(gx_n[t], r[t], gh_n[t], out=n[t])
            cand_act(n_in, out=n[t])  # n = tanh(gx_n + r∘gh_n)
            torch.lerp(n[t], hs[t], z[t], out=hs[t + 1])  # h_t = n + z∘(h_{t-1} - n)
            if zone is not None:
                torch.lerp(hs[t + 1], hs[t], zone[t], out=hs[t + 1])  # d∘h_{t-1} + (1-d)∘h̃_t
            carry_state(hs, t, mask)
        saved = a[..., 2 * H:]
    else:
        bias = None if bias_ih is None else bias_ih + bias_hh  # b_hn sits outside r here
        gx = matmul_t(x, weight_ih, bias)
        gx_rz, gx_n = steps(gx, 0, 2 * H), steps(gx, 2 * H)
        w_rz_t, w_n_t = weight_hh[:2 * H].t(), weight_hh[2 * H:].t()
        rh = x.new_empty(T, B, H)  # r∘h̄, the input of W_hn (needed for dW_hn)
        rhs = steps(rh)
        for t in range(T):
            h_in = hs[t] if rec is None else hs[t] * rec  # h̄ = m∘h_{t-1}
            gate_act(torch.addmm(gx_rz[t], h_in, w_rz_t, out=rz[t]), out=rz[t])  # r, z
            torch.mul(r[t], h_in, out=rhs[t])
            n_in = torch.addmm(gx_n[t], rhs[t], w_n_t, out=n[t])
            cand_act(n_in, out=n[t])  # n = tanh(gx_n + W_hn (r∘h̄))
            torch.lerp(n[t], hs[t], z[t], out=hs[t + 1])  # h_t = n + z∘(h_{t-1} - n)
            if zone is not None:
                torch.lerp(hs[t + 1], hs[t], zone[t], out=hs[t + 1])  # d∘h_{t-1} + (1-d)∘h̃_t
            carry_state(hs, t, mask)
        saved = rh
    y, h_T = outputs(h_all, mask)
    cache = (x, weight_ih, weight_hh, gates, h_all, saved, mask, opts, bias_ih is not None, rec,
             zone)
    return y, h_T, cache


def gru_backward(dy, dh_T, cache, need_dx: bool = True):
    """Gradients of ``(x, h0, weight_ih, weight_hh, bias_ih, bias_hh)``."""
    x, weight_ih, weight_hh, gates, h_all, saved, mask, opts, has_bias, rec, zone = cache
    T, B, H = dy.shape
    h_prev = h_all[:-1]
    h_in = h_prev if rec is None else h_prev * rec  # h̄, what W_hh read
    if opts.reset_after:
        d, dh = reset_after_loop(dy, dh_T, gates, saved, h_prev, weight_hh, mask, None, opts,
                                 rec, zone)
        d_gh = d[:, :, :3].reshape(T, B, 3 * H)
        d_gx = torch.cat([d[:, :, :2], d[:, :, 3:]], dim=2).view(T, B, 3 * H)
        dw_hh = flat(d_gh).t() @ flat(h_in)
    else:
        d_gx, dh = _original_loop(dy, dh_T, gates, h_prev, h_in, weight_hh, mask, opts, rec,
                                  zone)
        d_gh = d_gx  # the same pre-activations: gx and gh are summed before the gates
        dw_hh = torch.cat([flat(d_gx[..., :2 * H]).t() @ flat(h_in),
                           flat(d_gx[..., 2 * H:]).t() @ flat(saved)])
    d_gx2 = flat(d_gx)
    dx = (d_gx2 @ weight_ih).view_as(x) if need_dx else None
    dw_ih = d_gx2.t() @ flat(x)
    db_ih = d_gx2.sum(0) if has_bias else None
    db_hh = (db_ih if d_gh is d_gx else flat(d_gh).sum(0)) if has_bias else None
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


@torch.compiler.allow_in_graph  # one call in a compiled graph (rnnlab.transforms)
class GRUFunction(torch.autograd.Function):
    """``torch.autograd.Function`` pairing :func:`gru_forward` with :func:`gru_backward`."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec=None,
                zone=None):
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone)
        y, h, cache = gru_forward(*inputs)
        save_cache(ctx, cache, inputs)
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, gru_unrolled, (dy, dh))
        grads = gru_backward(dy.contiguous(), dh.contiguous(), saved_cache(ctx),
                             need_dx=ctx.needs_input_grad[0])
        return (*grads, None, None, None, None)


def gru_sequence(x, state, params, mask, opts: GRUOptions, masks=None):
    """Apply the GRU recurrence to one direction of one layer; ``state = (h0,)``;
    ``masks``: the :class:`rnnlab.regularisers.Masks` of this call, or None."""
    y, h = hand_or_unrolled(GRUFunction, gru_unrolled, x, state[0], params["weight_ih"], params["weight_hh"],
                             params.get("bias_ih"), params.get("bias_hh"), mask, opts,
                             *((masks.recurrent, masks.zone_h) if masks else ()))
    return y, (h,)


def gru_trace(x, state, params, mask, opts: GRUOptions, masks=None):
    """Per-step gates ``r, z, n`` and outputs ``h`` (T, B, H)."""
    with torch.no_grad():
        y, _, cache = gru_forward(x, state[0], params["weight_ih"], params["weight_hh"],
                                  params.get("bias_ih"), params.get("bias_hh"), mask, opts,
                                  *((masks.recurrent, masks.zone_h) if masks else ()))
    return dict(zip("rzn", cache[3].chunk(3, dim=-1)), h=y)
