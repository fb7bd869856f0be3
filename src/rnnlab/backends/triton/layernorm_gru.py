"""The Triton engine's layer-normalised GRU: an autograd Function around the ``LAYER_NORM``
option of :mod:`rnnlab.backends.triton.gru_kernels`, and the per-direction ``sequence``
adapter. The math is :mod:`rnnlab.bptt.layernorm_gru`'s (activations and regularisers
included)."""

from __future__ import annotations

import torch

from rnnlab.backends.triton.gru_kernels import gru_backward_kernel, gru_forward_kernel
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
from rnnlab.bptt.common import differentiate_twin, flat, matmul_t, save_cache, saved_cache
from rnnlab.bptt.gru import GRUOptions
from rnnlab.bptt.layernorm_lstm import layer_norm, layer_norm_backward
from rnnlab.bptt.unrolled import layernorm_gru_unrolled
from rnnlab.cells.gru import LN_EPS


def _options(opts: GRUOptions) -> dict:
    """The kernels' options: the activations, the ``reset_after`` form, the layer norm, and
    W_hh's three gate blocks for :func:`~rnnlab.backends.triton.launch.schedule`."""
    return {**activation_kwargs("gate", opts.gate_act), **activation_kwargs("cand", opts.cand_act),
            "RESET_AFTER": True, "LAYER_NORM": True, "gates": 3}


def _shared(B, H, x, backward=False):
    """The partial row statistics the tile's programs exchange: (programs, B, 3), as many
    programs as the kernel's launch plan has."""
    programs = plan_for(B, H, x.device, 3, x.dtype, backward, layer_norm=True)["columns"]
    return x.new_empty(programs, B, 3, dtype=torch.float32)


def _forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight, mask,
             opts, rec, zone, training):
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    # the input term of every step at once: LN(W_ih x_t)∘γ_ih + b_ih
    v_hat, _, s_ih = layer_norm(float32(matmul_t(x, weight_ih)))
    xp = v_hat * float32(ln_ih_weight)
    if bias_ih is not None:
        xp += float32(bias_ih)
    h_all = x.new_empty(T + 1, B, H, dtype=torch.float32)  # h_all[t] = h_{t-1}
    h_all[0] = h0
    kept = T if training else 1  # inference overwrites one step's slot
    gates = x.new_empty(kept, B, 3 * H, dtype=torch.float32)  # r, z, n
    pre = torch.empty_like(gates)  # u_t = W_hh h̄_{t-1}, then û_t
    aux = x.new_empty(kept, B, H, dtype=torch.float32)  # gh_n
    norms = x.new_empty(kept, B, dtype=torch.float32)  # s of u_t
    b_hh = bias_hh if bias_hh is not None else ln_hh_weight.new_zeros(3 * H)
    ln = float32(torch.cat([ln_hh_weight, b_hh]))
    m, hbar = recurrent_input(rec, h_all)
    zone, zone_mode = zone_input(zone, h_all)
    lengths = lengths_of(mask, x)
    w_hh = weight_hh.contiguous()
    launch(gru_forward_kernel, B, H, 2 * T, xp, w_hh, h_all, lengths, h_all, gates, aux, m, hbar,
           zone, ln, pre, norms, _shared(B, H, x), LN_EPS, T, B, H, dtype=x.dtype,
           device=x.device, HAS_BIAS=bias_hh is not None, TRAINING=training,
           REC=rec is not None, ZONE=zone_mode, **_options(opts))
    y = masked_output(h_all[1:], mask, x.dtype)
    return y, h_all[T].to(x.dtype), (v_hat, s_ih, w_hh, ln, lengths, h_all, gates, aux, pre,
                                     norms, m, hbar, zone)


class LayerNormGRUFunction(torch.autograd.Function):
    """LN-GRU over one direction of one layer: ``(y, h_T)``. After the kernel's BPTT (``dgx``,
    ``dgh`` and ``du`` of every step), over all T·B rows at once:
    ``dv = LN_backward(dgx∘γ_ih)``, ``dW_ih = dvᵀx``, ``dx = dv W_ih``, ``dW_hh = duᵀh̄_{t-1}``,
    ``db_ih = Σ dgx``, ``db_hh = Σ dgh``, ``dγ_ih = Σ dgx∘v̂``, ``dγ_hh = Σ dgh∘û``
    (``h̄ = m∘h`` with recurrent dropout)."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight,
                mask, opts, rec, zone):
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_hh_weight, mask,
                  opts, rec, zone)
        y, h, saved = _forward(*inputs, training=True)
        save_cache(ctx, (x, weight_ih, ln_ih_weight, *saved), inputs)
        ctx.has_bias, ctx.opts = bias_ih is not None, opts
        ctx.modes = dict(REC=rec is not None, ZONE=zone_input(zone, x)[1])
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, _twin, (dy, dh))
        (x, weight_ih, ln_ih_weight, v_hat, s_ih, w_hh, ln, lengths, h_all, gates, aux, pre,
         norms, m, hbar, zone) = saved_cache(ctx)
        T, B, _ = x.shape
        H = w_hh.shape[1]
        dgx, dgh, du = (torch.empty_like(gates) for _ in range(3))
        dh_buf = h_all.new_empty(2, B, H)
        dh_buf[T % 2] = dh
        launch(gru_backward_kernel, B, H, 2 * T + 1, float32(dy), w_hh, lengths, h_all, gates,
               aux, m, hbar, zone, ln, pre, norms, _shared(B, H, x, backward=True), dgx, dgh, du,
               dh_buf, T, B, H, dtype=x.dtype, device=x.device, backward=True,
               **_options(ctx.opts), **ctx.modes)
        d_v = flat(layer_norm_backward(dgx * float32(ln_ih_weight), v_hat, s_ih)).to(x.dtype)
        dx = (d_v @ weight_ih).view_as(x) if ctx.needs_input_grad[0] else None
        dw_ih = d_v.t() @ flat(x)
        dw_hh = flat(du).to(x.dtype).t() @ flat(hbar[:-1]).to(x.dtype)  # h_all without dropout
        db_ih, db_hh = ((dgx.sum((0, 1)).to(x.dtype), dgh.sum((0, 1)).to(x.dtype))
                        if ctx.has_bias else (None, None))
        d_ln_ih = (dgx * v_hat).sum((0, 1)).to(x.dtype)
        d_ln_hh = (dgh * pre).sum((0, 1)).to(x.dtype)
        return (dx, dh_buf[0].to(x.dtype), dw_ih, dw_hh, db_ih, db_hh, d_ln_ih, d_ln_hh, None,
                None, None, None)


def _twin(*inputs):
    """The reference engine's autograd twin, for second derivatives; it takes the options and
    masks only when there are any (σ, tanh and no regulariser is its default form)."""
    *plain, opts, rec, zone = inputs
    extra = (opts, rec, zone)
    if opts == GRUOptions() and rec is None and zone is None:
        extra = ()
    return layernorm_gru_unrolled(*plain, *extra)


def layernorm_gru_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.GRU` with ``layer_norm``) on
    this engine."""
    opts = layer.options

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                params.get("bias_hh"), params["ln_ih_weight"], params["ln_hh_weight"])
        regs = (masks.recurrent, masks.zone_h) if masks else (None, None)
        if grad_needed(*args):
            y, h = LayerNormGRUFunction.apply(*args, mask, opts, *regs)
        else:
            y, h, _ = _forward(*args, mask, opts, *regs, training=False)
        return y, (h,)

    return sequence
