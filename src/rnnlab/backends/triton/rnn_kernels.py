"""Triton kernels of the Elman RNN; the math is :mod:`rnnlab.bptt.rnn`'s (plain cell).

Forward, per step: ``h_t = φ(xp_t + h_{t-1} W_hhᵀ)`` with ``xp_t = W_ih x_t + b`` computed for
all steps beforehand, φ = tanh or ReLU; padded steps carry h.
Backward, per step from T-1 down to 0: phase 1 ``da_t = (dy_t + dh)∘φ'`` (0 if padded),
phase 2 ``dh_{t-1} = da_t W_hh`` (= dh if padded); ``dh`` in a two-slot buffer as in
:mod:`rnnlab.backends.triton.lstm_kernels`.
"""

import triton
import triton.language as tl

from rnnlab.backends.triton.kernels_common import dot_accumulate, tanh


@triton.jit
def rnn_forward_kernel(xp_ptr, w_hh_ptr, lengths_ptr, h_ptr, T, B, H, BLOCK_B: tl.constexpr,
                       BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                       RELU: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    length = tl.load(lengths_ptr + rows, mask=row_mask, other=0)
    for t in range(T):
        running = (t < length)[:, None]
        t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
        h_prev = h_ptr + t64 * B * H
        for j in range(0, H, BLOCK_H):
            cols = j + tl.arange(0, BLOCK_H)
            col_mask = cols < H
            tile = row_mask[:, None] & col_mask[None, :]
            at = rows[:, None] * H + cols[None, :]
            a = tl.load(xp_ptr + t64 * B * H + at, mask=tile, other=0.0)
            a = dot_accumulate(a, h_prev, H, rows, row_mask, w_hh_ptr, H, 1, cols, col_mask, H,
                               BLOCK_K, PRECISION)
            h_new = tl.maximum(a, 0.0) if RELU else tanh(a)
            h_old = tl.load(h_prev + at, mask=tile, other=0.0)
            tl.store(h_prev + B * H + at, tl.where(running, h_new, h_old), mask=tile)
        tl.debug_barrier()


@triton.jit
def rnn_backward_kernel(dy_ptr, w_hh_ptr, lengths_ptr, h_ptr, da_ptr, dh_ptr, T, B, H,
                        BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                        PRECISION: tl.constexpr, RELU: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    length = tl.load(lengths_ptr + rows, mask=row_mask, other=0)
    for s in range(T):
        t = T - 1 - s
        running = (t < length)[:, None]
        t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
        dh_in = dh_ptr + ((t + 1) % 2) * B * H
        dh_out = dh_ptr + (t % 2) * B * H
        for j in range(0, H, BLOCK_H):  # phase 1: da_t = (dy_t + dh)∘φ'(a_t)
            cols = j + tl.arange(0, BLOCK_H)
            tile = row_mask[:, None] & (cols < H)[None, :]
            at = rows[:, None] * H + cols[None, :]
            h = tl.load(h_ptr + (t64 + 1) * B * H + at, mask=tile, other=0.0)
            g = tl.load(dy_ptr + t64 * B * H + at, mask=tile, other=0.0)
            g += tl.load(dh_in + at, mask=tile, other=0.0)
            slope = tl.where(h > 0.0, 1.0, 0.0) if RELU else 1.0 - h * h
            tl.store(da_ptr + t64 * B * H + at, tl.where(running, g * slope, 0.0), mask=tile)
        tl.debug_barrier()
        for j in range(0, H, BLOCK_H):  # phase 2: dh_{t-1} = da_t W_hh
            cols = j + tl.arange(0, BLOCK_H)
            col_mask = cols < H
            tile = row_mask[:, None] & col_mask[None, :]
            at = rows[:, None] * H + cols[None, :]
            acc = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
            acc = dot_accumulate(acc, da_ptr + t64 * B * H, H, rows, row_mask, w_hh_ptr, 1, H,
                                 cols, col_mask, H, BLOCK_K, PRECISION)
            dh = tl.load(dh_in + at, mask=tile, other=0.0)
            tl.store(dh_out + at, tl.where(running, acc, dh), mask=tile)
        tl.debug_barrier()
