"""Triton kernels of the SRU; the math is :mod:`rnnlab.bptt.sru`'s.

The SRU's recurrence is element-wise, so a program owns a (``BLOCK_B`` sequences ×
``BLOCK_H`` units) tile for all T steps and keeps ``c`` (forward) or ``dc`` (backward) in
registers: no barrier, no state buffer, one pass over ``u = W_ih x`` (one GEMM beforehand)::

    f, r = σ(u_f + v_f∘c_{t-1} + b_f), σ(u_r + v_r∘c_{t-1} + b_r)
    c̃_t = x̃_t + f∘(c_{t-1} - x̃_t);   c_t = d_t∘c_{t-1} + (1-d_t)∘c̃_t
    h_t = x'_t + r∘(c_t - x'_t)      (padded: c carried, h = 0)

(zoneout keep weights ``d_t`` with ``ZONE``, modes of
:func:`~rnnlab.backends.triton.kernels_common.zone_weights`; else ``c_t = c̃_t``).
Backward, from T-1 down to 0, with ``dy`` 0 on padded steps::

    da_r = dy∘(c_t - x'_t)∘r(1-r);   dx' = dy∘(1-r);   k = (c_{t-1} - x̃_t)∘f(1-f)
    dc_t = (dc + dy∘r)∘(1-d_t);   da_f = dc_t∘k;   dx̃ = dc_t∘(1-f)
    dc_{t-1} = dc_t∘(f + k∘v_f) + da_r∘v_r + (dc + dy∘r)∘d_t      (dc carried over padded steps)

``du = [dx̃, da_f, da_r, dx']`` goes to the GEMMs of ``dW_ih`` and ``dx``; each program also
sums ``da_f∘c_{t-1}, da_r∘c_{t-1}, da_f, da_r`` over its tile for ``dv`` and ``db``.
"""

import triton
import triton.language as tl

from rnnlab.backends.triton.kernels_common import (
    column_block,
    lerp,
    sigmoid,
    tile_rows,
    zone_weights,
)


@triton.jit
def _tile(lengths_ptr, v_ptr, B, H, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr):
    """The program's (sequences × units) tile: rows, columns and their masks, the tile's mask,
    its offsets in a (B, H) buffer, the running lengths, and the tile's ``v_f, v_r``."""
    _, rows, row_mask, length = tile_rows(lengths_ptr, B, BLOCK_B)
    cols, col_mask, tile, at = column_block(tl.program_id(1) * BLOCK_H, rows, row_mask, H,
                                            BLOCK_H)
    v_f = tl.load(v_ptr + cols, mask=col_mask, other=0.0)[None, :]
    v_r = tl.load(v_ptr + H + cols, mask=col_mask, other=0.0)[None, :]
    return rows, cols, col_mask, tile, at, length, v_f, v_r


@triton.jit
def sru_forward_kernel(u_ptr, x_ptr, v_ptr, b_ptr, lengths_ptr, zone_ptr, c_ptr, fr_ptr, y_ptr,
                       T, B, H, U_COLS, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                       HIGHWAY_PROJ: tl.constexpr, HAS_BIAS: tl.constexpr,
                       TRAINING: tl.constexpr, ZONE: tl.constexpr):
    """SRU forward over all steps for one tile of sequences and hidden units: the element-wise recurrence after the input GEMM ``u``."""
    rows, cols, col_mask, tile, at, length, v_f, v_r = _tile(lengths_ptr, v_ptr, B, H, BLOCK_B,
                                                             BLOCK_H)
    u_at = rows[:, None] * U_COLS + cols[None, :]
    b_f = tl.zeros_like(v_f)
    b_r = tl.zeros_like(v_r)
    if HAS_BIAS:
        b_f += tl.load(b_ptr + cols, mask=col_mask, other=0.0)[None, :]
        b_r += tl.load(b_ptr + H + cols, mask=col_mask, other=0.0)[None, :]
    c = tl.load(c_ptr + at, mask=tile, other=0.0)
    for t in range(T):
        running = (t < length)[:, None]
        t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
        u = u_ptr + t64 * B * U_COLS + u_at
        x_tilde = tl.load(u, mask=tile, other=0.0)
        f = sigmoid(tl.load(u + H, mask=tile, other=0.0) + v_f * c + b_f)
        r = sigmoid(tl.load(u + 2 * H, mask=tile, other=0.0) + v_r * c + b_r)
        if HIGHWAY_PROJ:
            x_high = tl.load(u + 3 * H, mask=tile, other=0.0)
        else:
            x_high = tl.load(x_ptr + t64 * B * H + at, mask=tile, other=0.0)
        c_new = x_tilde + f * (c - x_tilde)
        if ZONE:
            c_new = lerp(c_new, c, zone_weights(zone_ptr, t64, at, tile, B, H, ZONE))
        h = x_high + r * (c_new - x_high)
        c = tl.where(running, c_new, c)
        tl.store(c_ptr + (t64 + 1) * B * H + at, c, mask=tile)
        tl.store(y_ptr + t64 * B * H + at, tl.where(running, h, 0.0), mask=tile)
        if TRAINING:
            fr = fr_ptr + t64 * B * 2 * H + rows[:, None] * 2 * H + cols[None, :]
            tl.store(fr, f, mask=tile)
            tl.store(fr + H, r, mask=tile)


@triton.jit
def sru_backward_kernel(dy_ptr, dc_ptr, u_ptr, x_ptr, v_ptr, lengths_ptr, zone_ptr, c_ptr,
                        fr_ptr, du_ptr, sums_ptr, T, B, H, U_COLS, BLOCK_B: tl.constexpr,
                        BLOCK_H: tl.constexpr, HIGHWAY_PROJ: tl.constexpr, ZONE: tl.constexpr):
    """``dc_ptr`` holds dc_T on entry and dc_0 on exit; ``sums_ptr`` (tiles, 4, H) gets this
    tile's ``Σ da_f∘c_{t-1}, Σ da_r∘c_{t-1}, Σ da_f, Σ da_r``; ``du`` is (T, B, 4H)."""
    rows, cols, col_mask, tile, at, length, v_f, v_r = _tile(lengths_ptr, v_ptr, B, H, BLOCK_B,
                                                             BLOCK_H)
    u_at = rows[:, None] * U_COLS + cols[None, :]
    dc = tl.load(dc_ptr + at, mask=tile, other=0.0)
    dv_f = tl.zeros((BLOCK_H,), dtype=tl.float32)
    dv_r = tl.zeros((BLOCK_H,), dtype=tl.float32)
    db_f = tl.zeros((BLOCK_H,), dtype=tl.float32)
    db_r = tl.zeros((BLOCK_H,), dtype=tl.float32)
    for s in range(T):
        t = T - 1 - s
        running = (t < length)[:, None]
        t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
        u = u_ptr + t64 * B * U_COLS + u_at
        fr = fr_ptr + t64 * B * 2 * H + rows[:, None] * 2 * H + cols[None, :]
        x_tilde = tl.load(u, mask=tile, other=0.0)
        if HIGHWAY_PROJ:
            x_high = tl.load(u + 3 * H, mask=tile, other=0.0)
        else:
            x_high = tl.load(x_ptr + t64 * B * H + at, mask=tile, other=0.0)
        f = tl.load(fr, mask=tile, other=0.0)
        r = tl.load(fr + H, mask=tile, other=0.0)
        c_t = tl.load(c_ptr + (t64 + 1) * B * H + at, mask=tile, other=0.0)
        c_prev = tl.load(c_ptr + t64 * B * H + at, mask=tile, other=0.0)
        dy = tl.where(running, tl.load(dy_ptr + t64 * B * H + at, mask=tile, other=0.0), 0.0)
        da_r = dy * (c_t - x_high) * r * (1.0 - r)
        k = (c_prev - x_tilde) * f * (1.0 - f)
        dc_t = tl.where(running, dc, 0.0) + dy * r
        if ZONE:  # the kept share of c_t is c_{t-1}'s
            keep = dc_t * zone_weights(zone_ptr, t64, at, tile, B, H, ZONE)
            dc_t = dc_t - keep
        da_f = dc_t * k
        du = du_ptr + t64 * B * 4 * H + rows[:, None] * 4 * H + cols[None, :]
        tl.store(du, dc_t * (1.0 - f), mask=tile)
        tl.store(du + H, da_f, mask=tile)
        tl.store(du + 2 * H, da_r, mask=tile)
        tl.store(du + 3 * H, dy * (1.0 - r), mask=tile)
        dv_f += tl.sum(da_f * c_prev, axis=0)
        dv_r += tl.sum(da_r * c_prev, axis=0)
        db_f += tl.sum(da_f, axis=0)
        db_r += tl.sum(da_r, axis=0)
        dc_prev = dc_t * (f + k * v_f) + da_r * v_r
        if ZONE:
            dc_prev += keep
        dc = tl.where(running, dc_prev, dc)
    tl.store(dc_ptr + at, dc, mask=tile)
    sums = sums_ptr + tl.program_id(0) * 4 * H + cols
    tl.store(sums, dv_f, mask=col_mask)
    tl.store(sums + H, dv_r, mask=col_mask)
    tl.store(sums + 2 * H, db_f, mask=col_mask)
    tl.store(sums + 3 * H, db_r, mask=col_mask)
