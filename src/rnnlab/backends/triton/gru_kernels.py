"""Triton kernels of the GRU in both reset forms, with any activations and the regularisers;
the math is :mod:`rnnlab.bptt.gru`'s.

``xp_t = W_ih x_t + b_ih`` (+ ``b_hr, b_hz``; + ``b_hn`` too when the reset comes before the
product) is computed for all steps beforehand. Per step, for the program's hidden units::

    reset_after:   gh = h̄_{t-1} W_hhᵀ (+ b_hn on the n rows)                 (one sub-step)
                   r, z = σ(xp_r + gh_r), σ(xp_z + gh_z);   n = tanh(xp_n + r∘gh_n)
    reset before:  sub-step A: r, z as above;   rh = r∘h̄_{t-1}
                   sub-step B: n = tanh(xp_n + rh W_hnᵀ)                   (reads all of rh)
    h̃_t = n + z∘(h_{t-1} - n);   h_t = d_t∘h_{t-1} + (1-d_t)∘h̃_t;   padded steps carry h.

σ of r, z and tanh of n are the activations ``GATE_ACT``, ``CAND_ACT`` of
:mod:`rnnlab.backends.triton.activations`; the backward reads their derivatives from the
stored gates. Regularisers as in :mod:`rnnlab.backends.triton.lstm_kernels`: with ``REC`` the
recurrent products read ``h̄ = m∘h`` from ``hbar`` (written beside the state in the
epilogue), else ``h̄ = h``; ``ZONE`` gives the zoneout keep weights ``d_t`` (else ``d = 0``).

``aux`` keeps ``gh_n`` (reset_after) or ``rh`` (reset before) for the backward; without a
backward (``TRAINING`` off) gates and ``aux`` live in one step's slot, overwritten each step.
The backward runs :mod:`rnnlab.bptt.gru`'s loop from step T-1 down, with ``dh`` in a two-slot
buffer as in :mod:`rnnlab.backends.triton.lstm_kernels`; *opening* step t forms ``da_n``,
``da_z`` (and ``da_r``, reset_after) of the program's columns, *closing* it ``dh_{t-1}`` of
its columns (reading all of the step's ``da``); reset before, a middle sub-step forms
``d(r∘h̄) = da_n W_hn`` and ``da_r`` (reading all of ``da_n``)::

    g = dy_t + dh;   g̃ = g∘(1-d_t) (0 if padded);   da_n, da_z, da_r from g̃ as without zoneout
    dh_{t-1} = g∘(z + d_t∘(1-z)) + (dgh W_hh)∘m     (reset before: (d(rh)∘r + …)∘m)

Closing step t and opening step t-1 touch only the program's own columns of ``dh``, so one
sub-step does both (a block barrier between them): T+1 sub-steps with reset_after, 2T+1
with the reset before the product, one grid barrier each. Sub-steps ``S0 ≤ s < S1`` run in
one launch. ``LAYER_NORM`` computes the layer-normalised GRU instead
(:mod:`rnnlab.backends.triton.layernorm_gru_kernels`: two sub-steps per step forward, 2T+1
backward; its buffers ``ln``, ``pre``, ``norms``, ``shared``, ``du`` are placeholders
otherwise). ``RESIDENT`` keeps the program's slices of the three gate blocks of ``W_hh`` on
chip for all steps (see :mod:`rnnlab.backends.triton.kernels_common`).
"""

import triton
import triton.language as tl

from rnnlab.backends.triton.activations import activate, activation_grad
from rnnlab.backends.triton.kernels_common import (
    column_block,
    gate_operand,
    gate_product,
    operand_tile,
    state_product,
    store_state,
    substep_end,
    tile_rows,
    zone_weights,
)
from rnnlab.backends.triton.layernorm_gru_kernels import (
    layernorm_gru_backward,
    layernorm_gru_forward,
)


@triton.jit
def gru_forward_kernel(xp_ptr, w_hh_ptr, b_hn_ptr, lengths_ptr, h_ptr, gates_ptr, aux_ptr,
                       rec_ptr, hbar_ptr, zone_ptr, ln_ptr, pre_ptr, norms_ptr, shared_ptr, EPS,
                       T, B, H, S0, S1, sync_ptr, gate_alpha,
                       gate_beta, cand_alpha, cand_beta, BLOCK_B: tl.constexpr,
                       BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                       SYNC: tl.constexpr, RESET_AFTER: tl.constexpr, HAS_BIAS: tl.constexpr,
                       TRAINING: tl.constexpr, GATE_ACT: tl.constexpr, CAND_ACT: tl.constexpr,
                       REC: tl.constexpr, ZONE: tl.constexpr, LAYER_NORM: tl.constexpr,
                       H_PAD: tl.constexpr, RESIDENT: tl.constexpr):
    """GRU forward over sub-steps ``S0 ≤ s < S1`` for one tile of sequences (both reset forms); see the module docstring for the math."""
    PHASES: tl.constexpr = 1 if RESET_AFTER else 2
    tile, rows, row_mask, length = tile_rows(lengths_ptr, B, BLOCK_B)
    if LAYER_NORM:
        layernorm_gru_forward(xp_ptr, w_hh_ptr, ln_ptr, h_ptr, gates_ptr, aux_ptr, pre_ptr,
                              norms_ptr, shared_ptr, rec_ptr, hbar_ptr, zone_ptr, tile, rows,
                              row_mask, length, EPS, B, H, S0, S1, sync_ptr, gate_alpha,
                              gate_beta, cand_alpha, cand_beta, BLOCK_B, BLOCK_H, BLOCK_K,
                              PRECISION, SYNC, TRAINING, GATE_ACT, CAND_ACT, REC, ZONE, H_PAD,
                              RESIDENT)
    else:
        w_r = gate_operand(w_hh_ptr, 0, H, BLOCK_H, H_PAD, True, PRECISION, RESIDENT)
        w_z = gate_operand(w_hh_ptr, 1, H, BLOCK_H, H_PAD, True, PRECISION, RESIDENT)
        w_n = gate_operand(w_hh_ptr, 2, H, BLOCK_H, H_PAD, True, PRECISION, RESIDENT)
        for s in range(S0, S1):
            t = s // PHASES
            running = (t < length)[:, None]
            t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
            if TRAINING:
                kept = t64  # the step's slot of gates and aux
            else:
                kept = 0
            h_prev = h_ptr + t64 * B * H
            if REC:  # the recurrent products read m∘h_{t-1}
                h_in = hbar_ptr + t64 * B * H
            else:
                h_in = h_prev
            if s % PHASES == 0:  # the products' operand: h̄_{t-1}, or r∘h̄_{t-1} (reset before)
                a_in = h_in
            else:
                a_in = aux_ptr + kept * B * H
            if RESIDENT:  # read once for the sub-step's gates
                a_tile = operand_tile(a_in, H, rows, row_mask, H, w_n, H_PAD)
            else:
                a_tile = a_in
            for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                xp = xp_ptr + t64 * B * 3 * H + rows[:, None] * 3 * H + cols[None, :]
                gate = gates_ptr + kept * B * 3 * H + rows[:, None] * 3 * H + cols[None, :]
                h_old = tl.load(h_prev + at, mask=tile_mask, other=0.0)
                if s % PHASES == 0:  # r, z (and n, h_t with reset_after)
                    a_r = gate_product(tl.load(xp, mask=tile_mask, other=0.0), a_in, a_tile,
                                       w_hh_ptr, w_r, 0, rows, row_mask, cols, col_mask, H,
                                       BLOCK_K, PRECISION, RESIDENT)
                    a_z = gate_product(tl.load(xp + H, mask=tile_mask, other=0.0), a_in, a_tile,
                                       w_hh_ptr, w_z, 1, rows, row_mask, cols, col_mask, H,
                                       BLOCK_K, PRECISION, RESIDENT)
                    r = activate(a_r, GATE_ACT, gate_alpha, gate_beta)
                    z = activate(a_z, GATE_ACT, gate_alpha, gate_beta)
                    tl.store(gate, r, mask=tile_mask)
                    tl.store(gate + H, z, mask=tile_mask)
                    if RESET_AFTER:
                        gh_n = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
                        if HAS_BIAS:
                            gh_n += tl.load(b_hn_ptr + cols, mask=col_mask, other=0.0)[None, :]
                        gh_n = gate_product(gh_n, a_in, a_tile, w_hh_ptr, w_n, 2, rows, row_mask,
                                            cols, col_mask, H, BLOCK_K, PRECISION, RESIDENT)
                        n = activate(tl.load(xp + 2 * H, mask=tile_mask, other=0.0) + r * gh_n,
                                     CAND_ACT, cand_alpha, cand_beta)
                        tl.store(aux_ptr + kept * B * H + at, gh_n, mask=tile_mask)
                        tl.store(gate + 2 * H, n, mask=tile_mask)
                        store_state(n + z * (h_old - n), h_old, running, h_prev, hbar_ptr,
                                    rec_ptr, zone_ptr, t64, at, tile_mask, B, H, REC, ZONE)
                    else:
                        if REC:
                            h_old = tl.load(h_in + at, mask=tile_mask, other=0.0)  # m∘h_{t-1}
                        tl.store(aux_ptr + kept * B * H + at, r * h_old, mask=tile_mask)
                else:  # reset before: n = tanh(xp_n + (r∘h) W_hnᵀ), then h_t
                    a_n = gate_product(tl.load(xp + 2 * H, mask=tile_mask, other=0.0), a_in,
                                       a_tile, w_hh_ptr, w_n, 2, rows, row_mask, cols, col_mask,
                                       H, BLOCK_K, PRECISION, RESIDENT)
                    n = activate(a_n, CAND_ACT, cand_alpha, cand_beta)
                    z = tl.load(gate + H, mask=tile_mask, other=0.0)
                    tl.store(gate + 2 * H, n, mask=tile_mask)
                    store_state(n + z * (h_old - n), h_old, running, h_prev, hbar_ptr, rec_ptr,
                                zone_ptr, t64, at, tile_mask, B, H, REC, ZONE)  # h̃ = n + z∘(h - n)
            substep_end(sync_ptr, tile, s - S0, SYNC)


@triton.jit
def _open_step(t, rows, cols, tile_mask, at, length, dy_ptr, h_ptr, gates_ptr, aux_ptr, zone_ptr,
               dgx_ptr, dgh_ptr, dh_ptr, B, H, gate_alpha, gate_beta, cand_alpha, cand_beta,
               RESET_AFTER: tl.constexpr, GATE_ACT: tl.constexpr, CAND_ACT: tl.constexpr,
               ZONE: tl.constexpr):
    """Open step t's BPTT for a tile: ``da_n``, ``da_z`` (and ``da_r`` and ``dgh``,
    reset_after) of its columns from ``g = dy_t + dh`` (``dh`` in slot (t+1) % 2)."""
    running = (t < length)[:, None]
    t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
    at3 = rows[:, None] * 3 * H + cols[None, :]
    gate = gates_ptr + t64 * B * 3 * H + at3
    dgx_t = dgx_ptr + t64 * B * 3 * H
    r = tl.load(gate, mask=tile_mask, other=0.0)
    z = tl.load(gate + H, mask=tile_mask, other=0.0)
    n = tl.load(gate + 2 * H, mask=tile_mask, other=0.0)
    h_old = tl.load(h_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
    g = (tl.load(dy_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
         + tl.load(dh_ptr + ((t + 1) % 2) * B * H + at, mask=tile_mask, other=0.0))
    if ZONE:  # the share of g that enters the step
        g = g * (1.0 - zone_weights(zone_ptr, t64, at, tile_mask, B, H, ZONE))
    g_run = tl.where(running, g, 0.0)
    da_n = g_run * (1.0 - z) * activation_grad(n, CAND_ACT, cand_alpha, cand_beta)
    da_z = g_run * (h_old - n) * activation_grad(z, GATE_ACT, gate_alpha, gate_beta)
    tl.store(dgx_t + at3 + H, da_z, mask=tile_mask)
    tl.store(dgx_t + at3 + 2 * H, da_n, mask=tile_mask)
    if RESET_AFTER:
        gh_n = tl.load(aux_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
        da_r = da_n * gh_n * activation_grad(r, GATE_ACT, gate_alpha, gate_beta)
        tl.store(dgx_t + at3, da_r, mask=tile_mask)
        dgh = dgh_ptr + t64 * B * 3 * H + at3
        tl.store(dgh, da_r, mask=tile_mask)
        tl.store(dgh + H, da_z, mask=tile_mask)
        tl.store(dgh + 2 * H, da_n * r, mask=tile_mask)


@triton.jit
def _close_step(acc, t, rows, cols, tile_mask, at, length, dy_ptr, gates_ptr, rec_ptr, zone_ptr,
                dh_ptr, B, H, RESET_AFTER: tl.constexpr, REC: tl.constexpr, ZONE: tl.constexpr):
    """Close step t's BPTT for a tile: ``dh_{t-1} = g∘z̃ + acc∘m`` with ``acc`` the recurrent
    product of its columns (reset before: plus the partial ``d(r∘h̄)∘r`` the middle sub-step
    left in slot t % 2), ``z̃ = z + d_t∘(1-z)``; the ``dh`` reaching ``h_t`` where padded."""
    running = (t < length)[:, None]
    t64 = tl.cast(t, tl.int64)
    dh_out = dh_ptr + (t % 2) * B * H
    z = tl.load(gates_ptr + t64 * B * 3 * H + rows[:, None] * 3 * H + H + cols[None, :],
                mask=tile_mask, other=0.0)
    if ZONE:  # g∘z̃ = g̃∘z + g∘d
        z = z + zone_weights(zone_ptr, t64, at, tile_mask, B, H, ZONE) * (1.0 - z)
    if not RESET_AFTER:
        acc += tl.load(dh_out + at, mask=tile_mask, other=0.0)
    if REC:  # the recurrent part reached h_{t-1} through m∘h_{t-1}
        acc *= tl.load(rec_ptr + at, mask=tile_mask, other=0.0)
    dh = tl.load(dh_ptr + ((t + 1) % 2) * B * H + at, mask=tile_mask, other=0.0)
    g = tl.load(dy_ptr + t64 * B * H + at, mask=tile_mask, other=0.0) + dh
    tl.store(dh_out + at, tl.where(running, acc + g * z, dh), mask=tile_mask)


@triton.jit
def gru_backward_kernel(dy_ptr, w_hh_ptr, lengths_ptr, h_ptr, gates_ptr, aux_ptr, rec_ptr,
                        hbar_ptr, zone_ptr, ln_ptr, pre_ptr, norms_ptr, shared_ptr, dgx_ptr,
                        dgh_ptr, du_ptr, dh_ptr, T, B, H, S0, S1, sync_ptr,
                        gate_alpha, gate_beta, cand_alpha, cand_beta, BLOCK_B: tl.constexpr,
                        BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                        SYNC: tl.constexpr, RESET_AFTER: tl.constexpr, GATE_ACT: tl.constexpr,
                        CAND_ACT: tl.constexpr, REC: tl.constexpr, ZONE: tl.constexpr,
                        LAYER_NORM: tl.constexpr, H_PAD: tl.constexpr, RESIDENT: tl.constexpr):
    """GRU BPTT over sub-steps from the last step down (T+1 with reset_after, 2T+1 before; see
    the module docstring). ``dgx`` gets the gradients of ``xp`` (= of ``W_ih x + b_ih``),
    ``dgh`` those of the recurrent pre-activations (reset_after; the reset-before form uses
    ``dgx`` for both)."""
    PER_STEP: tl.constexpr = 1 if RESET_AFTER else 2
    tile, rows, row_mask, length = tile_rows(lengths_ptr, B, BLOCK_B)
    if LAYER_NORM:
        layernorm_gru_backward(dy_ptr, w_hh_ptr, ln_ptr, h_ptr, gates_ptr, aux_ptr, pre_ptr,
                               norms_ptr, shared_ptr, rec_ptr, zone_ptr, dgx_ptr, dgh_ptr,
                               du_ptr, dh_ptr, tile, rows, row_mask, length, T, B, H, S0, S1,
                               sync_ptr, gate_alpha, gate_beta, cand_alpha, cand_beta, BLOCK_B,
                               BLOCK_H, BLOCK_K, PRECISION, SYNC, GATE_ACT, CAND_ACT, REC, ZONE,
                               H_PAD, RESIDENT)
    else:
        w_r = gate_operand(w_hh_ptr, 0, H, BLOCK_H, H_PAD, False, PRECISION, RESIDENT)
        w_z = gate_operand(w_hh_ptr, 1, H, BLOCK_H, H_PAD, False, PRECISION, RESIDENT)
        w_n = gate_operand(w_hh_ptr, 2, H, BLOCK_H, H_PAD, False, PRECISION, RESIDENT)
        for s in range(S0, S1):
            k = s // PER_STEP
            if s % PER_STEP == 0:  # close step T - k, open step T - 1 - k
                if k > 0:  # dh_{t-1} of the program's columns (reads all of step t's da)
                    t = T - k
                    if RESET_AFTER:
                        d_t = dgh_ptr + tl.cast(t, tl.int64) * B * 3 * H
                    else:
                        d_t = dgx_ptr + tl.cast(t, tl.int64) * B * 3 * H
                    for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                        cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H,
                                                                     BLOCK_H)
                        acc = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
                        acc = state_product(acc, d_t, 3 * H, w_hh_ptr, w_r, 0, rows, row_mask,
                                            cols, col_mask, H, BLOCK_K, H_PAD, PRECISION,
                                            RESIDENT)
                        acc = state_product(acc, d_t, 3 * H, w_hh_ptr, w_z, 1, rows, row_mask,
                                            cols, col_mask, H, BLOCK_K, H_PAD, PRECISION,
                                            RESIDENT)
                        if RESET_AFTER:  # [da_r, da_z, da_n∘r] W_hh; before: [da_r, da_z] W_hr,z
                            acc = state_product(acc, d_t, 3 * H, w_hh_ptr, w_n, 2, rows,
                                                row_mask, cols, col_mask, H, BLOCK_K, H_PAD,
                                                PRECISION, RESIDENT)
                        _close_step(acc, t, rows, cols, tile_mask, at, length, dy_ptr, gates_ptr,
                                    rec_ptr, zone_ptr, dh_ptr, B, H, RESET_AFTER, REC, ZONE)
                # the owner reads what it wrote: a block barrier orders it (and the slot reuse)
                tl.debug_barrier()
                if k < T:
                    for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                        cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H,
                                                                     BLOCK_H)
                        _open_step(T - 1 - k, rows, cols, tile_mask, at, length, dy_ptr, h_ptr,
                                   gates_ptr, aux_ptr, zone_ptr, dgx_ptr, dgh_ptr, dh_ptr, B, H,
                                   gate_alpha, gate_beta, cand_alpha, cand_beta, RESET_AFTER,
                                   GATE_ACT, CAND_ACT, ZONE)
            else:  # reset before: d(r∘h̄) = da_n W_hn (reads all of da_n);  da_r
                t = T - 1 - k
                t64 = tl.cast(t, tl.int64)
                dgx_t = dgx_ptr + t64 * B * 3 * H
                for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                    cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                    d_rh = state_product(tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32), dgx_t,
                                         3 * H, w_hh_ptr, w_n, 2, rows, row_mask, cols, col_mask,
                                         H, BLOCK_K, H_PAD, PRECISION, RESIDENT)
                    r = tl.load(gates_ptr + t64 * B * 3 * H + rows[:, None] * 3 * H
                                + cols[None, :], mask=tile_mask, other=0.0)
                    if REC:  # r∘h̄ read m∘h_{t-1}
                        h_old = tl.load(hbar_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
                    else:
                        h_old = tl.load(h_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
                    tl.store(dgx_t + rows[:, None] * 3 * H + cols[None, :],
                             d_rh * h_old * activation_grad(r, GATE_ACT, gate_alpha, gate_beta),
                             mask=tile_mask)
                    tl.store(dh_ptr + (t % 2) * B * H + at, d_rh * r,
                             mask=tile_mask)  # partial dh_{t-1}
            substep_end(sync_ptr, tile, s - S0, SYNC)
