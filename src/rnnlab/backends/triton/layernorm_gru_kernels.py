"""The layer-normalised GRU inside :mod:`rnnlab.backends.triton.gru_kernels` (its
``LAYER_NORM`` option, ``reset_after`` form); the math is :mod:`rnnlab.bptt.layernorm_gru`'s.

``xp_t = LN(W_ih x_t)∘γ_ih + b_ih`` comes from the host for all steps. ``LN(u_t)`` of the 3H
recurrent pre-activations needs the whole row, so a step is two sub-steps, the programs of a
tile sharing their rows' partial moments as in
:mod:`rnnlab.backends.triton.layernorm_lstm_kernels`::

    0:  u_t = h̄_{t-1} W_hhᵀ of the program's columns (stored), moments of u_t
    1:  û_t = LN(u_t);   gh = û_t∘γ_hh + b_hh;   r, z = σ(xp_r + gh_r), σ(xp_z + gh_z)
        n = tanh(xp_n + r∘gh_n);   h̃_t = n + z∘(h_{t-1} - n);   h_t = d_t∘h_{t-1} + (1-d_t)∘h̃_t
        (padded steps carry h)

The backward runs three phases per step, with ``g = dy_t + dh``::

    0:  da_n, da_z, da_r from g∘(1-d_t) as the plain GRU's;   dgh = [da_r, da_z, da_n∘r];
        sums of dû = dgh∘γ_hh
    1:  du_t = (dû - mean dû - û∘mean(dû∘û))·s                          (stored for dW_hh)
    2:  dh_{t-1} = g∘(z + d_t∘(1-z)) + (du_t W_hh)∘m

Phase 2 of step t writes only the program's own columns of ``dh``, where phase 0 of step t-1
reads them, so the two share a sub-step (a block barrier between them): 2T+1 sub-steps.

σ and tanh are the activations ``GATE_ACT``, ``CAND_ACT``; recurrent dropout (``h̄ = m∘h``
from ``hbar``) and zoneout (``d_t``) as in :mod:`rnnlab.backends.triton.gru_kernels`.
``RESIDENT`` keeps the program's slices of the three gate blocks of ``W_hh`` on chip for all
steps (forward: for ``u_t`` in sub-step 0; backward: for ``du_t W_hh`` in phase 2), one
``tl.dot`` per gate block (:func:`~rnnlab.backends.triton.layernorm_common.recurrent_slices`);
streamed otherwise.

Buffers: ``ln`` (6H,) = [γ_hh, b_hh]; ``pre`` (T or 1, B, 3H): u_t, then û_t; ``norms``
(T or 1, B): ``s`` per row; ``shared`` (programs, B, 3) the partials; ``aux`` keeps ``gh_n``.
"""

import triton
import triton.language as tl

from rnnlab.backends.triton.activations import activate, activation_grad
from rnnlab.backends.triton.kernels_common import (
    column_block,
    row_statistics,
    share_rows,
    store_state,
    substep_end,
    zone_weights,
)
from rnnlab.backends.triton.layernorm_common import (
    gates_norm_backward,
    gradient_sums,
    normalised_gate,
    recurrent_grad,
    recurrent_moments,
    recurrent_slices,
)


@triton.jit
def _normalised(pre, ln_ptr, k: tl.constexpr, cols, col_mask, tile_mask, mean, s, H,
                TRAINING: tl.constexpr):
    """Gate ``k``'s ``gh = û∘γ_hh + b_hh``; ``pre`` holds u_t, then û_t."""
    shift = tl.load(ln_ptr + (3 + k) * H + cols, mask=col_mask, other=0.0)[None, :]
    return normalised_gate(pre, ln_ptr, k, cols, col_mask, tile_mask, mean, s, H,
                           TRAINING) + shift


@triton.jit
def layernorm_gru_forward(xp_ptr, w_hh_ptr, ln_ptr, h_ptr, gates_ptr, aux_ptr, pre_ptr,
                          norms_ptr, shared_ptr, rec_ptr, hbar_ptr, zone_ptr, tile, rows,
                          row_mask, length, EPS, B, H, S0, S1, sync_ptr, gate_alpha, gate_beta,
                          cand_alpha, cand_beta, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                          BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, SYNC: tl.constexpr,
                          TRAINING: tl.constexpr, GATE_ACT: tl.constexpr,
                          CAND_ACT: tl.constexpr, REC: tl.constexpr, ZONE: tl.constexpr,
                          H_PAD: tl.constexpr, RESIDENT: tl.constexpr):
    """LN-GRU forward over sub-steps ``S0 ≤ s < S1`` (two per step) for one tile."""
    # W_hh: the program's slices of the three gate blocks on chip (RESIDENT), or streamed
    w_r, w_z, w_n, _ = recurrent_slices(w_hh_ptr, H, 3, BLOCK_H, H_PAD, True, PRECISION,
                                        RESIDENT)
    # the tile's rows in one program, which stores their statistics (a tensor: the
    # interpreter cannot combine a scalar condition with a mask)
    stats_rows = row_mask & (rows * 0 + tl.program_id(1) == 0)
    for s in range(S0, S1):
        t = s // 2
        running = (t < length)[:, None]
        t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
        if TRAINING:
            kept = t64  # the step's slot of gates, aux, pre and norms
        else:
            kept = t64 * 0
        h_prev = h_ptr + t64 * B * H
        if s % 2 == 0:  # u_t = h̄_{t-1} W_hhᵀ and its moments
            if REC:
                h_in = hbar_ptr + t64 * B * H
            else:
                h_in = h_prev
            n, mean, m2 = recurrent_moments(h_in, w_hh_ptr, w_r, w_z, w_n, w_n,
                                            pre_ptr + kept * B * 3 * H, rows, row_mask, H, 3,
                                            BLOCK_B, BLOCK_H, BLOCK_K, H_PAD, PRECISION,
                                            RESIDENT)
            share_rows(shared_ptr, rows, row_mask, B, n, mean, m2)
        else:  # û_t, the gates and h_t
            mean_u, s_u = row_statistics(shared_ptr, rows, row_mask, B, EPS, BLOCK_B)
            tl.store(norms_ptr + kept * B + rows, s_u, mask=stats_rows)
            mean_u = mean_u[:, None]
            s_u = s_u[:, None]
            for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                offsets = rows[:, None] * 3 * H + cols[None, :]
                pre = pre_ptr + kept * B * 3 * H + offsets
                xp = xp_ptr + t64 * B * 3 * H + offsets
                gate = gates_ptr + kept * B * 3 * H + offsets
                gh_r = _normalised(pre, ln_ptr, 0, cols, col_mask, tile_mask, mean_u, s_u, H,
                                   TRAINING)
                gh_z = _normalised(pre, ln_ptr, 1, cols, col_mask, tile_mask, mean_u, s_u, H,
                                   TRAINING)
                gh_n = _normalised(pre, ln_ptr, 2, cols, col_mask, tile_mask, mean_u, s_u, H,
                                   TRAINING)
                r = activate(tl.load(xp, mask=tile_mask, other=0.0) + gh_r, GATE_ACT, gate_alpha,
                             gate_beta)
                z = activate(tl.load(xp + H, mask=tile_mask, other=0.0) + gh_z, GATE_ACT,
                             gate_alpha, gate_beta)
                n = activate(tl.load(xp + 2 * H, mask=tile_mask, other=0.0) + r * gh_n,
                             CAND_ACT, cand_alpha, cand_beta)
                if TRAINING:  # what the backward reads
                    tl.store(gate, r, mask=tile_mask)
                    tl.store(gate + H, z, mask=tile_mask)
                    tl.store(gate + 2 * H, n, mask=tile_mask)
                    tl.store(aux_ptr + kept * B * H + at, gh_n, mask=tile_mask)
                h_old = tl.load(h_prev + at, mask=tile_mask, other=0.0)
                store_state(n + z * (h_old - n), h_old, running, h_prev, hbar_ptr, rec_ptr,
                            zone_ptr, t64, at, tile_mask, B, H, REC, ZONE)  # h̃ = n + z∘(h - n)
        substep_end(sync_ptr, tile, s - S0, SYNC)


@triton.jit
def _close_step(t, rows, row_mask, length, dy_ptr, w_hh_ptr, w_r, w_z, w_n, gates_ptr, rec_ptr,
                zone_ptr, du_ptr, dh_ptr, B, H, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                BLOCK_K: tl.constexpr, H_PAD: tl.constexpr, PRECISION: tl.constexpr,
                RESIDENT: tl.constexpr, REC: tl.constexpr, ZONE: tl.constexpr):
    """Close step t's BPTT: ``dh_{t-1} = g∘z̃ + (du_t W_hh)∘m`` of the program's columns
    (``z̃ = z + d_t∘(1-z)``, ``g = dy_t + dh``), the ``dh`` reaching ``h_t`` where padded."""
    running = (t < length)[:, None]
    t64 = tl.cast(t, tl.int64)
    step3 = t64 * B * 3 * H
    dh_in = dh_ptr + ((t + 1) % 2) * B * H
    dh_out = dh_ptr + (t % 2) * B * H
    for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
        cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
        z = tl.load(gates_ptr + step3 + rows[:, None] * 3 * H + H + cols[None, :],
                    mask=tile_mask, other=0.0)
        if ZONE:  # g∘z̃ = g∘(1-d)∘z + g∘d
            z = z + zone_weights(zone_ptr, t64, at, tile_mask, B, H, ZONE) * (1.0 - z)
        dh = tl.load(dh_in + at, mask=tile_mask, other=0.0)
        g = tl.load(dy_ptr + t64 * B * H + at, mask=tile_mask, other=0.0) + dh
        acc = recurrent_grad(du_ptr + step3, w_hh_ptr, w_r, w_z, w_n, w_n, rows, row_mask, cols,
                             col_mask, H, 3, BLOCK_B, BLOCK_H, BLOCK_K, H_PAD, PRECISION,
                             RESIDENT)
        if REC:
            acc *= tl.load(rec_ptr + at, mask=tile_mask, other=0.0)
        tl.store(dh_out + at, tl.where(running, acc + g * z, dh), mask=tile_mask)


@triton.jit
def layernorm_gru_backward(dy_ptr, w_hh_ptr, ln_ptr, h_ptr, gates_ptr, aux_ptr, pre_ptr,
                           norms_ptr, shared_ptr, rec_ptr, zone_ptr, dgx_ptr, dgh_ptr, du_ptr,
                           dh_ptr, tile, rows, row_mask, length, T, B, H, S0, S1, sync_ptr,
                           gate_alpha, gate_beta, cand_alpha, cand_beta, BLOCK_B: tl.constexpr,
                           BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                           PRECISION: tl.constexpr, SYNC: tl.constexpr, GATE_ACT: tl.constexpr,
                           CAND_ACT: tl.constexpr, REC: tl.constexpr, ZONE: tl.constexpr,
                           H_PAD: tl.constexpr, RESIDENT: tl.constexpr):
    """LN-GRU BPTT over sub-steps (2T+1, from the last step down) for one tile:
    ``dgx`` the gradients of ``xp``, ``dgh`` those of ``gh``, ``du`` those of ``u``."""
    # W_hh: the program's column slices of the three gate blocks on chip (RESIDENT), or streamed
    w_r, w_z, w_n, _ = recurrent_slices(w_hh_ptr, H, 3, BLOCK_H, H_PAD, False, PRECISION,
                                        RESIDENT)
    for s in range(S0, S1):
        k = s // 2
        t = T - 1 - k
        running = (t < length)[:, None]
        t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
        dh_in = dh_ptr + ((t + 1) % 2) * B * H
        step3 = t64 * B * 3 * H
        if s % 2 == 0:  # close step t + 1, open step t
            if k > 0:  # dh_t = g∘z + (du_{t+1} W_hh)∘m of the program's columns
                _close_step(t + 1, rows, row_mask, length, dy_ptr, w_hh_ptr, w_r, w_z, w_n,
                            gates_ptr, rec_ptr, zone_ptr, du_ptr, dh_ptr, B, H, BLOCK_B, BLOCK_H,
                            BLOCK_K, H_PAD, PRECISION, RESIDENT, REC, ZONE)
            # the owner reads what it wrote: a block barrier orders it (and the slot reuse)
            tl.debug_barrier()
            if k < T:  # da_r, da_z, da_n; the sums of dû = dgh∘γ_hh
                part_d = tl.zeros((BLOCK_B,), dtype=tl.float32)
                part_du = tl.zeros((BLOCK_B,), dtype=tl.float32)
                for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                    cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                    offsets = rows[:, None] * 3 * H + cols[None, :]
                    gate = gates_ptr + step3 + offsets
                    r = tl.load(gate, mask=tile_mask, other=0.0)
                    z = tl.load(gate + H, mask=tile_mask, other=0.0)
                    n = tl.load(gate + 2 * H, mask=tile_mask, other=0.0)
                    h_old = tl.load(h_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
                    gh_n = tl.load(aux_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
                    g = (tl.load(dy_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
                         + tl.load(dh_in + at, mask=tile_mask, other=0.0))
                    if ZONE:  # the share of g that enters the step
                        g = g * (1.0 - zone_weights(zone_ptr, t64, at, tile_mask, B, H, ZONE))
                    g = tl.where(running, g, 0.0)
                    da_n = g * (1.0 - z) * activation_grad(n, CAND_ACT, cand_alpha, cand_beta)
                    da_z = g * (h_old - n) * activation_grad(z, GATE_ACT, gate_alpha, gate_beta)
                    da_r = da_n * gh_n * activation_grad(r, GATE_ACT, gate_alpha, gate_beta)
                    dgx = dgx_ptr + step3 + offsets
                    tl.store(dgx, da_r, mask=tile_mask)
                    tl.store(dgx + H, da_z, mask=tile_mask)
                    tl.store(dgx + 2 * H, da_n, mask=tile_mask)
                    dgh = dgh_ptr + step3 + offsets
                    tl.store(dgh, da_r, mask=tile_mask)
                    tl.store(dgh + H, da_z, mask=tile_mask)
                    tl.store(dgh + 2 * H, da_n * r, mask=tile_mask)
                    part_d, part_du = gradient_sums(part_d, part_du, dgh, pre_ptr + step3 + offsets,
                                                    ln_ptr, cols, col_mask, tile_mask, H, 3)
                share_rows(shared_ptr, rows, row_mask, B, part_d, part_du, part_d)
        else:  # du_t = LN_backward(dgh∘γ_hh)
            s_u = tl.load(norms_ptr + t64 * B + rows, mask=row_mask, other=0.0)[:, None]
            gates_norm_backward(dgh_ptr + step3, pre_ptr + step3, du_ptr + step3, ln_ptr,
                                shared_ptr, s_u, rows, row_mask, B, H, 3, BLOCK_B, BLOCK_H)
        substep_end(sync_ptr, tile, s - S0, SYNC)
