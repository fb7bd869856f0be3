"""Triton kernels of the Elman RNN, with the regularisers; the math is :mod:`rnnlab.bptt.rnn`'s.

Forward, one sub-step per step, with ``xp_t = W_ih x_t + b`` computed for all steps
beforehand and φ = tanh or ReLU::

    h̃_t = φ(xp_t + h̄_{t-1} W_hhᵀ);   h_t = d_t∘h_{t-1} + (1-d_t)∘h̃_t;   padded steps carry h

with the regularisers as in :mod:`rnnlab.backends.triton.lstm_kernels`: ``h̄ = m∘h`` with
``REC`` (from ``hbar``, written beside the state), zoneout keep weights ``d_t`` with ``ZONE``
(then ``h̃`` (T, B, H) is kept for the backward when ``TRAINING``).
Backward, from step T-1 down to 0, with ``g = dy_t + dh``: opening step t forms
``da_t = g∘(1-d_t)∘φ'(h̃_t)`` (0 if padded), leaving ``g∘d_t`` in ``dh_out``; closing it forms
``dh_{t-1} = (da_t W_hh)∘m + g∘d_t`` (= dh if padded); ``dh`` in a two-slot buffer, T+1
sub-steps (sub-step s closes step T-s and opens step T-1-s) as in
:mod:`rnnlab.backends.triton.lstm_kernels`. Sub-steps ``S0 ≤ s < S1`` run in one launch.
``RESIDENT`` keeps the program's slice of ``W_hh`` on chip for all steps (see
:mod:`rnnlab.backends.triton.kernels_common`).
"""

import triton
import triton.language as tl

from rnnlab.backends.triton.kernels_common import (
    column_block,
    gate_operand,
    gate_product,
    operand_tile,
    state_grad,
    state_product,
    store_state,
    substep_end,
    tanh,
    tile_rows,
    zone_weights,
)


@triton.jit
def rnn_forward_kernel(xp_ptr, w_hh_ptr, lengths_ptr, h_ptr, rec_ptr, hbar_ptr, zone_ptr,
                       h_tilde_ptr, T, B, H, S0, S1, sync_ptr, BLOCK_B: tl.constexpr,
                       BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                       SYNC: tl.constexpr, RELU: tl.constexpr, TRAINING: tl.constexpr,
                       REC: tl.constexpr, ZONE: tl.constexpr, H_PAD: tl.constexpr,
                       RESIDENT: tl.constexpr):
    """Elman RNN forward over sub-steps ``S0 ≤ s < S1`` for one tile of sequences: ``h_t = φ(xp_t + h̄_{t-1} W_hhᵀ)``, zoned."""
    tile, rows, row_mask, length = tile_rows(lengths_ptr, B, BLOCK_B)
    w = gate_operand(w_hh_ptr, 0, H, BLOCK_H, H_PAD, True, PRECISION, RESIDENT)
    for t in range(S0, S1):
        running = (t < length)[:, None]
        t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
        h_prev = h_ptr + t64 * B * H
        if REC:  # the recurrent product reads m∘h_{t-1}
            h_in = hbar_ptr + t64 * B * H
        else:
            h_in = h_prev
        if RESIDENT:
            h_tile = operand_tile(h_in, H, rows, row_mask, H, w, H_PAD)
        else:
            h_tile = h_in
        for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
            cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
            a = tl.load(xp_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
            a = gate_product(a, h_in, h_tile, w_hh_ptr, w, 0, rows, row_mask, cols, col_mask, H,
                             BLOCK_K, PRECISION, RESIDENT)
            h_new = tl.maximum(a, 0.0) if RELU else tanh(a)
            h_old = tl.load(h_prev + at, mask=tile_mask, other=0.0)
            if ZONE and TRAINING:  # the backward reads h̃_t
                tl.store(h_tilde_ptr + t64 * B * H + at, h_new, mask=tile_mask)
            store_state(h_new, h_old, running, h_prev, hbar_ptr, rec_ptr, zone_ptr, t64, at,
                        tile_mask, B, H, REC, ZONE)
        substep_end(sync_ptr, tile, t - S0, SYNC)


@triton.jit
def _state_slope(t, at, tile_mask, length, dy_ptr, h_ptr, zone_ptr, h_tilde_ptr, da_ptr, dh_ptr,
                 B, H, RELU: tl.constexpr, ZONE: tl.constexpr):
    """Open step t's BPTT for a tile: ``da_t = g∘(1-d_t)∘φ'(h̃_t)`` (0 if padded) with
    ``g = dy_t + dh`` (slot (t+1) % 2); with ``ZONE`` the kept share ``g∘d_t`` is left in slot
    t % 2 for :func:`~rnnlab.backends.triton.kernels_common.state_grad`."""
    running = (t < length)[:, None]
    t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
    if ZONE:  # h̃_t, before zoneout
        h = tl.load(h_tilde_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
    else:
        h = tl.load(h_ptr + (t64 + 1) * B * H + at, mask=tile_mask, other=0.0)
    g = (tl.load(dy_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
         + tl.load(dh_ptr + ((t + 1) % 2) * B * H + at, mask=tile_mask, other=0.0))
    if ZONE:  # the kept share of h_t is h_{t-1}'s
        keep = g * zone_weights(zone_ptr, t64, at, tile_mask, B, H, ZONE)
        tl.store(dh_ptr + (t % 2) * B * H + at, keep, mask=tile_mask)
        g = g - keep
    slope = tl.where(h > 0.0, 1.0, 0.0) if RELU else 1.0 - h * h
    tl.store(da_ptr + t64 * B * H + at, tl.where(running, g * slope, 0.0), mask=tile_mask)


@triton.jit
def rnn_backward_kernel(dy_ptr, w_hh_ptr, lengths_ptr, h_ptr, rec_ptr, zone_ptr, h_tilde_ptr,
                        da_ptr, dh_ptr, T, B, H, S0, S1, sync_ptr, BLOCK_B: tl.constexpr,
                        BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                        SYNC: tl.constexpr, RELU: tl.constexpr, REC: tl.constexpr,
                        ZONE: tl.constexpr, H_PAD: tl.constexpr, RESIDENT: tl.constexpr):
    """Elman RNN BPTT over sub-steps from the last step down (T+1 of them, see the module docstring): ``da_t = g∘(1-d_t)∘φ'``, then ``dh_{t-1} = (da_t W_hh)∘m + g∘d_t``."""
    tile, rows, row_mask, length = tile_rows(lengths_ptr, B, BLOCK_B)
    w = gate_operand(w_hh_ptr, 0, H, BLOCK_H, H_PAD, False, PRECISION, RESIDENT)
    for s in range(S0, S1):  # sub-step s closes step T - s and opens step T - 1 - s
        if s > 0:  # dh_{T-s-1} = (da_{T-s} W_hh)∘m + g∘d of the program's columns
            t = T - s
            for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                acc = state_product(tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32),
                                    da_ptr + tl.cast(t, tl.int64) * B * H, H, w_hh_ptr, w, 0,
                                    rows, row_mask, cols, col_mask, H, BLOCK_K, H_PAD, PRECISION,
                                    RESIDENT)
                state_grad(acc, t, at, tile_mask, length, rec_ptr, dh_ptr, B, H, REC, ZONE)
        # the owner reads what it wrote: a block barrier orders it (and the slot reuse)
        tl.debug_barrier()
        if s < T:
            t = T - 1 - s
            for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                _state_slope(t, at, tile_mask, length, dy_ptr, h_ptr, zone_ptr, h_tilde_ptr,
                             da_ptr, dh_ptr, B, H, RELU, ZONE)
        substep_end(sync_ptr, tile, s - S0, SYNC)
