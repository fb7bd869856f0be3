"""The Triton engine's GRU (both reset forms, activations and regularisers): an autograd
Function around :mod:`rnnlab.backends.triton.gru_kernels`, and the per-direction ``sequence``
adapter."""

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
    recurrent_input,
    zone_input,
)
from rnnlab.backends.triton.layernorm_gru import layernorm_gru_sequence
from rnnlab.bptt.common import differentiate_twin, flat, matmul_t, save_cache, saved_cache
from rnnlab.bptt.gru import GRUOptions
from rnnlab.bptt.unrolled import gru_unrolled


def _input_bias(bias_ih, bias_hh, reset_after):
    """The biases added to ``W_ih x`` before the loop: all of them when the reset comes
    before the product; ``b_hn`` stays inside ``r∘(W_hn h + b_hn)`` when it comes after."""
    if bias_ih is None:
        return None
    if not reset_after:
        return bias_ih + bias_hh
    H = bias_hh.shape[0] // 3
    return bias_ih + torch.cat([bias_hh[:2 * H], bias_hh.new_zeros(H)])


def _activations(opts: GRUOptions) -> dict:
    return {**activation_kwargs("gate", opts.gate_act), **activation_kwargs("cand", opts.cand_act)}


def _forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone, training):
    reset_after = opts.reset_after
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    xp = float32(matmul_t(x, weight_ih, _input_bias(bias_ih, bias_hh, reset_after)))
    h_all = x.new_empty(T + 1, B, H, dtype=torch.float32)  # h_all[t] = h_{t-1}
    h_all[0] = h0
    kept = T if training else 1  # inference overwrites one step's slot
    gates = x.new_empty(kept, B, 3 * H, dtype=torch.float32)  # r, z, n
    aux = x.new_empty(kept, B, H, dtype=torch.float32)  # gh_n (reset_after) or r∘h̄_{t-1}
    m, hbar = recurrent_input(rec, h_all)
    zone, zone_mode = zone_input(zone, h_all)
    lengths = lengths_of(mask, x)
    w_hh = weight_hh.contiguous()
    b_hn = float32(bias_hh[2 * H:]) if bias_hh is not None else h_all
    substeps = T * (1 if reset_after else 2)
    unused = (h_all,) * 4  # the layer norm's buffers
    launch(gru_forward_kernel, B, H, substeps, xp, w_hh, b_hn, lengths, h_all, gates, aux, m,
           hbar, zone, *unused, 0.0, T, B, H, dtype=x.dtype, device=x.device,
           RESET_AFTER=reset_after, HAS_BIAS=bias_hh is not None, TRAINING=training,
           **_activations(opts), REC=rec is not None, ZONE=zone_mode, LAYER_NORM=False,
           gates=3)
    y = masked_output(h_all[1:], mask, x.dtype)
    return y, h_all[T].to(x.dtype), (w_hh, lengths, h_all, gates, aux, m, hbar, zone)


class GRUFunction(torch.autograd.Function):
    """GRU over one direction of one layer: ``(y, h_T)``. After the kernel's BPTT, as GEMMs
    over all steps: ``dW_ih = dgxᵀx``, ``dx = dgx W_ih``, ``db_ih = Σ dgx``, ``db_hh = Σ dgh``,
    ``dW_hh = dghᵀh̄_{t-1}`` (reset before: rows n from ``da_nᵀ(r∘h̄_{t-1})``; ``h̄ = m∘h``
    with recurrent dropout)."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone):
        inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, opts, rec, zone)
        y, h, saved = _forward(*inputs, training=True)
        save_cache(ctx, (x, weight_ih, *saved), inputs)
        ctx.has_bias, ctx.reset_after, ctx.opts = bias_ih is not None, opts.reset_after, opts
        ctx.modes = dict(REC=rec is not None, ZONE=zone_input(zone, x)[1])
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, gru_unrolled, (dy, dh))
        x, weight_ih, w_hh, lengths, h_all, gates, aux, m, hbar, zone = saved_cache(ctx)
        T, B, _ = x.shape
        H = w_hh.shape[1]
        dgx = torch.empty_like(gates)
        dgh = torch.empty_like(gates) if ctx.reset_after else dgx
        dh_buf = h_all.new_empty(2, B, H)
        dh_buf[T % 2] = dh
        substeps = T * (1 if ctx.reset_after else 2) + 1
        unused = (h_all,) * 4  # the layer norm's buffers
        launch(gru_backward_kernel, B, H, substeps, float32(dy), w_hh, lengths, h_all, gates,
               aux, m, hbar, zone, *unused, dgx, dgh, h_all, dh_buf, T, B, H, dtype=x.dtype,
               device=x.device, RESET_AFTER=ctx.reset_after, **_activations(ctx.opts),
               **ctx.modes, LAYER_NORM=False, gates=3, backward=True)
        dgx2, dgh2 = flat(dgx).to(x.dtype), flat(dgh).to(x.dtype)
        dx = (dgx2 @ weight_ih).view_as(x) if ctx.needs_input_grad[0] else None
        dw_ih = dgx2.t() @ flat(x)
        h_in = flat(hbar[:-1]).to(x.dtype)  # h_all itself without recurrent dropout
        if ctx.reset_after:
            dw_hh = dgh2.t() @ h_in
        else:
            dw_hh = torch.cat([dgh2[:, :2 * H].t() @ h_in,
                               dgh2[:, 2 * H:].t() @ flat(aux).to(x.dtype)])
        db_ih = dgx.sum((0, 1)).to(x.dtype) if ctx.has_bias else None
        db_hh = dgh.sum((0, 1)).to(x.dtype) if ctx.has_bias else None
        return dx, dh_buf[0].to(x.dtype), dw_ih, dw_hh, db_ih, db_hh, None, None, None, None


def gru_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.GRU`) on this engine."""
    if layer.layer_norm:
        return layernorm_gru_sequence(layer)
    opts = layer.options

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], params["weight_ih"], params["weight_hh"], params.get("bias_ih"),
                params.get("bias_hh"))
        regs = (masks.recurrent, masks.zone_h) if masks else (None, None)
        if grad_needed(*args):
            y, h = GRUFunction.apply(*args, mask, opts, *regs)
        else:
            y, h, _ = _forward(*args, mask, opts, *regs, training=False)
        return y, (h,)

    return sequence


def unsupported(layer) -> str | None:
    """Why the triton kernels cannot compute ``layer``'s configuration, or None."""
    return None
