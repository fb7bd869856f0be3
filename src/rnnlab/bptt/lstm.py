"""Hand-derived BPTT for the LSTM family (peepholes, cell clipping, coupled gates, projection).

Forward, per step (``a`` are pre-activations, ``m_t`` the mask of sequences still running)::

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh (+ p_i∘c_{t-1}, p_f∘c_{t-1} on the i, f rows)
    i, f, g = σ(a_i) (or 1 - f), σ(a_f), tanh(a_g)
    c_t = clip(f∘c_{t-1} + i∘g);   o = σ(a_o + p_o∘c_t);   h_t = W_hr (o∘tanh c_t)
    padded steps carry the state: h_t = h_{t-1}, c_t = c_{t-1}; their output is 0.

Backward, per step from t = T-1 down to 0, with ``dh`` and ``dc`` the gradients reaching
``h_t`` and ``c_t`` (from the output ``y_t`` and from step t+1)::

    dm    = W_hrᵀ dh                       (m = o∘tanh c_t)
    da_o  = dm∘tanh(c_t) ∘ o(1-o)
    dc   += dm∘o∘(1 - tanh² c_t) + da_o∘p_o,   then dc = 0 where the clip was active
    da_g  = dc∘i ∘ (1-g²);   da_i = dc∘g ∘ i(1-i);   da_f = dc∘c_{t-1} ∘ f(1-f)
            (coupled: da_f = dc∘(c_{t-1} - g) ∘ f(1-f), da_i = 0)
    dc_{t-1} = dc∘f + da_i∘p_i + da_f∘p_f
    dh_{t-1} = W_hhᵀ da

and after the loop, as matrix products over all T·B rows at once::

    dW_hh = Σ_t da_tᵀ h_{t-1}   dW_ih = Σ_t da_tᵀ x_t   dx = da W_ih   db_ih = db_hh = Σ_t da_t
    dW_hr = Σ_t dh_tᵀ m_t       dp_i = Σ da_i∘c_{t-1}   dp_f = Σ da_f∘c_{t-1}   dp_o = Σ da_o∘c_t

Activations (:mod:`rnnlab.activations`): σ of the gates, tanh of ``g`` and tanh of ``c_t`` in
``h_t`` may be replaced (``LSTMOptions``); the backward then reads each derivative from the
stored output, ``act.grad(y)``, in place of ``σ(1-σ)`` and ``1 - tanh²``.

Regularisers (:mod:`rnnlab.regularisers`), recurrent-dropout mask ``m`` (B, H_out) and zoneout
keep weights ``d^h_t`` (T, B, H_out), ``d^c_t`` (T, B, H)::

    forward:  a_t uses W_hh (m∘h_{t-1});   c̃_t, h̃_t as above from c_{t-1}, h_{t-1}
              c_t = d^c∘c_{t-1} + (1-d^c)∘c̃_t;   h_t = d^h∘h_{t-1} + (1-d^h)∘h̃_t;   y_t = h_t
    backward: with gh = dy_t + dh and dc reaching h_t and c_t, the step above runs on
              gh∘(1-d^h) and dc∘(1-d^c); then dh_{t-1} = (W_hhᵀ da)∘m + gh∘d^h and
              dc_{t-1} += dc∘d^c;   dW_hh = Σ_t da_tᵀ (m∘h_{t-1})
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnlab.activations import SIGMOID, TANH, Activation
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
from rnnlab.bptt.unrolled import lstm_unrolled


@dataclass(frozen=True)
class LSTMOptions:
    cell_clip: float | None = None  # clamp c_t to [-cell_clip, cell_clip]
    coupled: bool = False  # i_t = 1 - f_t
    gate_act: Activation = SIGMOID  # of i, f, o
    cand_act: Activation = TANH  # of g
    out_act: Activation = TANH  # of c_t in h_t = o∘act(c_t)

    @property
    def default_activations(self) -> bool:
        return self.gate_act == SIGMOID and self.cand_act == TANH and self.out_act == TANH


def lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr,
                 mask, opts: LSTMOptions, rec=None, zone_h=None, zone_c=None):
    """Run the recurrence over x (T, B, I). Returns ``y, h_T, c_T, cache``. ``rec`` (B, H_out),
    ``zone_h`` (T, B, H_out), ``zone_c`` (T, B, H): recurrent-dropout mask and zoneout keep
    weights, or None."""
    T, B, _ = x.shape
    H = weight_hh.shape[0] // 4
    bias = None if bias_ih is None else bias_ih + bias_hh
    x_proj = matmul_t(x, weight_ih, bias)  # all steps in one GEMM: (T, B, 4H)
    gates = x.new_empty(T, B, 4 * H)  # σ(i,f,o) and tanh(g), stored for the backward
    c_all = x.new_empty(T + 1, B, H)
    c_new_all = x.new_empty(T, B, H) if zone_c is not None else None  # c̃_t before zoneout
    h_prev_all = x.new_empty(T, B, h0.shape[-1])  # the recurrent input (m∘)h_{t-1}
    m_all = x.new_empty(T, B, H) if weight_hr is not None else None
    clipped = x.new_empty(T, B, H, dtype=torch.bool) if opts.cell_clip is not None else None
    y = x.new_empty(T, B, h0.shape[-1])
    fused = peephole is None and not opts.coupled and opts.default_activations
    gate_act, cand_act, out_act = opts.gate_act, opts.cand_act, opts.out_act
    h, c = h0, c0
    c_all[0] = c0
    for t in range(T):
        h_in = h if rec is None else h * rec  # recurrent dropout: W_hh (m∘h_{t-1})
        h_prev_all[t] = h_in
        a = torch.addmm(x_proj[t], h_in, weight_hh.t())
        if fused:
            torch.sigmoid(a, out=gates[t])
            gates[t, :, 2 * H:3 * H].copy_(a[:, 2 * H:3 * H].tanh())
        else:
            a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
            if peephole is not None:
                a_i, a_f = a_i + peephole[0] * c, a_f + peephole[1] * c
            gates[t, :, H:2 * H] = gate_act(a_f)
            gates[t, :, :H] = 1 - gates[t, :, H:2 * H] if opts.coupled else gate_act(a_i)
            gates[t, :, 2 * H:3 * H] = cand_act(a_g)
            gates[t, :, 3 * H:] = gate_act(a_o)  # peepholes redo o once c_t is known
        i, f, g, o = gates[t].chunk(4, dim=-1)
        c_new = torch.addcmul(f * c, i, g)
        if clipped is not None:
            clipped[t] = c_new.abs() > opts.cell_clip
            c_new = c_new.clamp(-opts.cell_clip, opts.cell_clip)
        if peephole is not None:
            o.copy_(gate_act(a[:, 3 * H:] + peephole[2] * c_new))
        h_new = o * (c_new.tanh() if fused else out_act(c_new))
        if m_all is not None:
            m_all[t] = h_new
            h_new = h_new @ weight_hr.t()
        if zone_c is not None:  # zoneout: keep c_{t-1} where d^c = 1
            c_new_all[t] = c_new
            c_new = torch.lerp(c_new, c, zone_c[t])
        if zone_h is not None:
            h_new = torch.lerp(h_new, h, zone_h[t])
        h, c = carry(mask, t, h_new, h), carry(mask, t, c_new, c)
        c_all[t + 1] = c
        y[t] = masked(mask, t, h_new)
    cache = (x, weight_ih, weight_hh, peephole, weight_hr, gates, c_all, h_prev_all, m_all,
             clipped, mask, opts, bias_ih is not None, rec, zone_h, zone_c, c_new_all)
    return y, h, c, cache


def lstm_backward(dy, dh_T, dc_T, cache):
    """Gradients of ``(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr)``."""
    (x, weight_ih, weight_hh, peephole, weight_hr, gates, c_all, h_prev_all, m_all, clipped,
     mask, opts, has_bias, rec, zone_h, zone_c, c_new_all) = cache
    T = x.shape[0]
    H = c_all.shape[-1]
    d_a = torch.empty_like(gates)
    dh_out = torch.empty_like(dy) if weight_hr is not None else None
    c_tilde = c_all[1:] if c_new_all is None else c_new_all  # c̃_t, before zoneout
    # element-wise derivative factors of every step at once, from the stored outputs:
    # k = ∂gate/∂a for i, f, g, o; tanh_c = φ(c̃_t); k_c = ∂(o∘φ(c̃))/∂c̃ = o∘φ'
    k = opts.gate_act.grad(gates)
    k[..., 2 * H:3 * H] = opts.cand_act.grad(gates[..., 2 * H:3 * H])
    tanh_c = opts.out_act(c_tilde)
    k_c = opts.out_act.grad(tanh_c).mul_(gates[..., 3 * H:])
    dh, dc = dh_T, dc_T
    for t in reversed(range(T)):
        g_h = dy[t] + dh  # gradient reaching h_t
        if zone_h is not None:  # h_t = lerp(h̃_t, h_{t-1}, d^h): the kept share goes to h_{t-1}
            keep_h = g_h * zone_h[t]
            g_h = g_h - keep_h
        dc_step = dc  # gradient reaching c̃_t from c_t
        if zone_c is not None:
            keep_c = dc * zone_c[t]
            dc_step = dc - keep_c
        dh_new = masked(mask, t, g_h)  # gradient reaching this step's new h_t
        dc_new = masked(mask, t, dc_step)
        i, f, g, _ = gates[t].chunk(4, dim=-1)
        k_i, k_f, k_g, k_o = k[t].chunk(4, dim=-1)
        c_prev = c_all[t]
        if dh_out is not None:
            dh_out[t] = dh_new
            dh_new = dh_new @ weight_hr  # dm = W_hrᵀ dh
        da_i, da_f, da_g, da_o = d_a[t].chunk(4, dim=-1)
        torch.mul(dh_new * tanh_c[t], k_o, out=da_o)
        dc_new = torch.addcmul(dc_new, dh_new, k_c[t])
        if peephole is not None:
            dc_new = dc_new + da_o * peephole[2]
        if clipped is not None:
            dc_new = dc_new.masked_fill(clipped[t], 0)
        torch.mul(dc_new * i, k_g, out=da_g)
        if opts.coupled:
            torch.mul(dc_new * (c_prev - g), k_f, out=da_f)
            da_i.zero_()
        else:
            torch.mul(dc_new * c_prev, k_f, out=da_f)
            torch.mul(dc_new * g, k_i, out=da_i)
        dc_prev = dc_new * f
        if peephole is not None:
            dc_prev = dc_prev + da_i * peephole[0] + da_f * peephole[1]
        dh_prev = d_a[t] @ weight_hh
        if rec is not None:
            dh_prev = dh_prev * rec
        if zone_h is not None:
            dh_prev = dh_prev + keep_h
        if zone_c is not None:
            dc_prev = dc_prev + keep_c
        dh, dc = carry(mask, t, dh_prev, dh), carry(mask, t, dc_prev, dc)
    d_a2, x2 = flat(d_a), flat(x)
    dx = (d_a2 @ weight_ih).view_as(x)
    dw_ih = d_a2.t() @ x2
    dw_hh = d_a2.t() @ flat(h_prev_all)
    db = d_a2.sum(0) if has_bias else None
    dpeep = None
    if peephole is not None:
        dpeep = torch.stack([
            (d_a[..., :H] * c_all[:-1]).sum((0, 1)),
            (d_a[..., H:2 * H] * c_all[:-1]).sum((0, 1)),
            (d_a[..., 3 * H:] * c_tilde).sum((0, 1)),
        ])
    dw_hr = flat(dh_out).t() @ flat(m_all) if weight_hr is not None else None
    return dx, dh, dc, dw_ih, dw_hh, db, db, dpeep, dw_hr


@torch.compiler.allow_in_graph  # one call in a compiled graph (rnnlab.transforms)
class LSTMFunction(torch.autograd.Function):
    """``torch.autograd.Function`` pairing :func:`lstm_forward` with :func:`lstm_backward`."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr,
                mask, opts, rec=None, zone_h=None, zone_c=None):
        inputs = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, weight_hr, mask,
                  opts, rec, zone_h, zone_c)
        y, h, c, cache = lstm_forward(*inputs)
        save_cache(ctx, cache, inputs)
        return y, h, c

    @staticmethod
    def backward(ctx, dy, dh, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, lstm_unrolled, (dy, dh, dc))
        grads = lstm_backward(*(g.contiguous() for g in (dy, dh, dc)), saved_cache(ctx))
        return (*grads, None, None, None, None, None)


def _mask_args(masks) -> tuple:
    return (masks.recurrent, masks.zone_h, masks.zone_c) if masks is not None else ()


def lstm_sequence(x, state, params, mask, opts: LSTMOptions, masks=None):
    """Apply the LSTM recurrence to one direction of one layer; ``state = (h0, c0)``;
    ``masks``: the :class:`rnnlab.regularisers.Masks` of this call, or None."""
    y, h, c = hand_or_unrolled(LSTMFunction, lstm_unrolled, x, *state, params["weight_ih"], params["weight_hh"],
                                 params.get("bias_ih"), params.get("bias_hh"),
                                 params.get("peephole"), params.get("weight_hr"), mask, opts,
                                 *_mask_args(masks))
    return y, (h, c)


def lstm_trace(x, state, params, mask, opts: LSTMOptions, masks=None):
    """Per-step gates ``i, f, g, o``, cell states ``c`` and outputs ``h`` (T, B, ·)."""
    with torch.no_grad():
        y, _, _, cache = lstm_forward(x, *state, params["weight_ih"], params["weight_hh"],
                                      params.get("bias_ih"), params.get("bias_hh"),
                                      params.get("peephole"), params.get("weight_hr"), mask,
                                      opts, *_mask_args(masks))
    gates, c_all = cache[5], cache[6]
    return dict(zip("ifgo", gates.chunk(4, dim=-1)), c=c_all[1:], h=y)
