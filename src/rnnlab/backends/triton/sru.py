"""The Triton engine's SRU (with zoneout): an autograd Function around
:mod:`rnnlab.backends.triton.sru_kernels`, and the per-direction ``sequence`` adapter."""

from __future__ import annotations

import torch
import triton

from rnnlab.backends.triton.launch import float32, grad_needed, lengths_of, zone_input
from rnnlab.backends.triton.sru_kernels import sru_backward_kernel, sru_forward_kernel
from rnnlab.bptt.common import differentiate_twin, flat, matmul_t, save_cache, saved_cache
from rnnlab.bptt.unrolled import sru_unrolled


def _tiles(B: int, H: int) -> tuple[tuple[int, int], dict]:
    blocks = {"BLOCK_B": min(16, triton.next_power_of_2(B)),
              "BLOCK_H": min(128, triton.next_power_of_2(H))}
    return (triton.cdiv(B, blocks["BLOCK_B"]), triton.cdiv(H, blocks["BLOCK_H"])), blocks


def _forward(x, c0, weight_ih, weight_c, bias, mask, zone, training):
    T, B, _ = x.shape
    H = weight_c.shape[1]
    u = float32(matmul_t(x, weight_ih))  # [x̃, u_f, u_r (, x')] for all steps: (T, B, 3H|4H)
    x32 = float32(x)
    c_all = x.new_empty(T + 1, B, H, dtype=torch.float32)
    c_all[0] = c0
    y = torch.empty_like(c_all[1:])
    fr = x.new_empty(T, B, 2 * H, dtype=torch.float32) if training else y
    lengths = lengths_of(mask, x)
    zone, zone_mode = zone_input(zone, u)
    grid, blocks = _tiles(B, H)
    sru_forward_kernel[grid](u, x32, float32(weight_c), float32(bias) if bias is not None else u,
                             lengths, zone, c_all, fr, y, T, B, H, u.shape[-1], **blocks,
                             HIGHWAY_PROJ=u.shape[-1] == 4 * H, HAS_BIAS=bias is not None,
                             TRAINING=training, ZONE=zone_mode)
    return y.to(x.dtype), c_all[T].to(x.dtype), (u, x32, lengths, zone, c_all, fr)


class SRUFunction(torch.autograd.Function):
    """SRU over one direction of one layer: ``(y, c_T)``. After the kernel's BPTT:
    ``dW_ih = duᵀx``, ``dx = du W_ih (+ dx' when x' = x)``, ``dv`` and ``db`` from the
    per-tile sums."""

    @staticmethod
    def forward(ctx, x, c0, weight_ih, weight_c, bias, mask, zone):
        inputs = (x, c0, weight_ih, weight_c, bias, mask, zone)
        y, c, saved = _forward(*inputs, training=True)
        save_cache(ctx, (x, weight_ih, weight_c, *saved), inputs)
        ctx.has_bias, ctx.zone_mode = bias is not None, zone_input(zone, x)[1]
        return y, c

    @staticmethod
    def backward(ctx, dy, dc):
        if torch.is_grad_enabled():  # create_graph=True: a graph to differentiate again
            return differentiate_twin(ctx, sru_unrolled, (dy, dc))
        x, weight_ih, weight_c, u, x32, lengths, zone, c_all, fr = saved_cache(ctx)
        T, B, _ = x.shape
        H = weight_c.shape[1]
        rows = weight_ih.shape[0]
        du = u.new_empty(T, B, 4 * H)
        dc_buf = float32(dc).clone()
        grid, blocks = _tiles(B, H)
        sums = u.new_empty(grid[0], 4, H)
        sru_backward_kernel[grid](float32(dy), dc_buf, u, x32, float32(weight_c), lengths, zone,
                                  c_all, fr, du, sums, T, B, H, u.shape[-1], **blocks,
                                  HIGHWAY_PROJ=rows == 4 * H, ZONE=ctx.zone_mode)
        du2 = flat(du[..., :rows]).to(x.dtype)
        dx = None
        if ctx.needs_input_grad[0]:
            dx = (du2 @ weight_ih).view_as(x)
            if rows == 3 * H:  # the highway reads x itself
                dx += du[..., 3 * H:].to(x.dtype)
        dw_ih = du2.t() @ flat(x)
        sums = sums.sum(0)
        db = sums[2:].flatten().to(x.dtype) if ctx.has_bias else None
        return dx, dc_buf.to(x.dtype), dw_ih, sums[:2].to(x.dtype), db, None, None


def sru_sequence(layer):
    """The per-direction function of ``layer`` (an :class:`rnnlab.SRU`) on this engine."""

    def sequence(x, state, params, mask, masks):
        args = (x, state[0], params["weight_ih"], params["weight_c"], params.get("bias"))
        zone = masks.zone_c if masks else None
        if grad_needed(*args):
            y, c = SRUFunction.apply(*args, mask, zone)
        else:
            y, c, _ = _forward(*args, mask, zone, training=False)
        return y, (c,)

    return sequence


def unsupported(layer) -> str | None:
    """Why the triton kernels cannot compute ``layer``'s configuration, or None."""
    return None
