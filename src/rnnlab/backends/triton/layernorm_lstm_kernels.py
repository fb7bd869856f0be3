"""The layer-normalised LSTM inside :mod:`rnnlab.backends.triton.lstm_kernels` (its
``LAYER_NORM`` option); the math is :mod:`rnnlab.bptt.layernorm_lstm`'s.

``xp_t = LN(W_ih x_t)∘γ_ih + b`` comes from the host for all steps. Each step needs two
reductions over a whole row, ``LN(q_t)`` over the 4H recurrent pre-activations and
``LN(c̃_t)`` over the H cells, so a step is three sub-steps; each program shares its rows'
partial moments ``(count, mean, M2)`` and, after the barrier, every program merges them
(:func:`~rnnlab.backends.triton.kernels_common.row_statistics`)::

    0:  q_t = h̄_{t-1} W_hhᵀ of the program's columns (stored), moments of q_t
    1:  q̂_t = LN(q_t);   a = xp_t + q̂_t∘γ_hh;   i, f, g, o;   c̃_t = f∘c_{t-1} + i∘g;
        c_t = d^c∘c_{t-1} + (1-d^c)∘c̃_t;   moments of c̃_t
    2:  n_t = LN(c̃_t)∘γ_c + β_c;   h̃_t = o∘tanh(n_t);   h_t = d^h∘h_{t-1} + (1-d^h)∘h̃_t
    (padded steps carry h and c)

The backward runs four phases per step (``dz = (dẑ - mean dẑ - ẑ∘mean(dẑ∘ẑ))·s`` needs
the row sums of ``dẑ`` and ``dẑ∘ẑ``, shared the same way)::

    0:  g_h = (dy_t + dh)∘(1-d^h);  da_o = g_h∘tanh(n)∘σ'(o);  dn = g_h∘o∘tanh'(n);  sums of dn∘γ_c
    1:  dc = dc_{t+1}∘(1-d^c) + LN_backward(dn∘γ_c);   da_i, da_f, da_g;
        dc_{t-1} = dc∘f + dc_{t+1}∘d^c;   sums of dq̂ = da∘γ_hh
    2:  dq_t = LN_backward(da∘γ_hh)                                      (stored for dW_hh)
    3:  dh_{t-1} = (dq_t W_hh)∘m + (dy_t + dh)∘d^h

Phase 3 of step t writes only the program's own columns of ``dh``, where phase 0 of step t-1
reads them, so the two share a sub-step (a block barrier between them): 3T+1 sub-steps.

σ and tanh are the activations ``GATE_ACT``, ``CAND_ACT`` (of g) and ``OUT_ACT`` (of n_t);
recurrent dropout (``h̄ = m∘h`` from ``hbar``) and zoneout (``d^h``, ``d^c``; ``c_tilde``
keeps ``c̃_t``) as in :mod:`rnnlab.backends.triton.lstm_kernels`. ``RESIDENT`` keeps the
program's slices of the four gate blocks of ``W_hh`` on chip for all steps (forward: for
``q_t`` in sub-step 0; backward: for ``dq_t W_hh`` in phase 3), one ``tl.dot`` per gate block
(:func:`~rnnlab.backends.triton.layernorm_common.recurrent_slices`); streamed otherwise.
Buffers: ``ln`` (6H,) = [γ_hh, γ_c, β_c]; ``pre`` (T or 1, B, 4H): q_t, then q̂_t;
``norms`` (T or 1, B, 3): ``s_q``, mean and ``s`` of c̃_t per row; ``shared`` (2, programs, B, 3)
the partials of two consecutive sub-steps (two regions, so that a fast program never
overwrites what a slow one still reads); ``c_tilde`` (T or 1, B, H) with ``ZONE_C``. Backward
outputs: ``da`` (T, B, 4H), ``dq`` (T, B, 4H) and ``dn`` (T, B, H) (for ``dγ_c = Σ dn∘ĉ``,
``dβ_c = Σ dn``).
"""

import triton
import triton.language as tl

from rnnlab.backends.triton.activations import activate, activation_grad
from rnnlab.backends.triton.kernels_common import (
    column_block,
    lerp,
    merge_moments,
    row_statistics,
    row_sums,
    share_rows,
    state_grad,
    store_state,
    substep_end,
    tile_moments,
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
def _gate_input(pre, xp, ln_ptr, k: tl.constexpr, cols, col_mask, tile_mask, mean_q, s_q, H,
                TRAINING: tl.constexpr):
    """Gate ``k``'s pre-activation ``xp_t + q̂_t∘γ_hh``; ``pre`` holds q_t, then q̂_t."""
    return tl.load(xp + k * H, mask=tile_mask, other=0.0) + normalised_gate(
        pre, ln_ptr, k, cols, col_mask, tile_mask, mean_q, s_q, H, TRAINING)


@triton.jit
def _cell_norm(c_ptr, at, tile_mask, mean_c, s_c, ln_ptr, cols, col_mask, H):
    """``ĉ_t`` of a tile (0 outside it) and the gain ``γ_c`` of its columns."""
    c_hat = (tl.load(c_ptr + at, mask=tile_mask, other=0.0) - mean_c) * s_c
    gain = tl.load(ln_ptr + 4 * H + cols, mask=col_mask, other=0.0)[None, :]
    return tl.where(tile_mask, c_hat, 0.0), gain


@triton.jit
def layernorm_lstm_forward(xp_ptr, w_hh_ptr, ln_ptr, h_ptr, c_ptr, gates_ptr, pre_ptr,
                           norms_ptr, shared_ptr, rec_ptr, hbar_ptr, zone_h_ptr, zone_c_ptr,
                           c_tilde_ptr, tile, rows, row_mask, length, EPS, B, H, S0, S1,
                           sync_ptr, gate_alpha, gate_beta, cand_alpha, cand_beta, out_alpha,
                           out_beta, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                           BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, SYNC: tl.constexpr,
                           TRAINING: tl.constexpr, GATE_ACT: tl.constexpr,
                           CAND_ACT: tl.constexpr, OUT_ACT: tl.constexpr, REC: tl.constexpr,
                           ZONE_H: tl.constexpr, ZONE_C: tl.constexpr, H_PAD: tl.constexpr,
                           RESIDENT: tl.constexpr):
    """LN-LSTM forward over sub-steps ``S0 ≤ s < S1`` (three per step) for one tile."""
    # W_hh: the program's slices of the four gate blocks on chip (RESIDENT), or streamed
    w_i, w_f, w_g, w_o = recurrent_slices(w_hh_ptr, H, 4, BLOCK_H, H_PAD, True, PRECISION,
                                          RESIDENT)
    # the tile's rows in one program, which stores their statistics (a tensor: the
    # interpreter cannot combine a scalar condition with a mask)
    stats_rows = row_mask & (rows * 0 + tl.program_id(1) == 0)
    second = shared_ptr + B * 3 * tl.num_programs(1)  # the second region of shared partials
    for s in range(S0, S1):
        t = s // 3
        phase = s % 3
        running = (t < length)[:, None]
        t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
        if TRAINING:
            kept = t64  # the step's slot of gates, pre, norms and c̃
        else:
            kept = t64 * 0
        norms = norms_ptr + (kept * B + rows) * 3
        h_prev = h_ptr + t64 * B * H
        c_prev = c_ptr + t64 * B * H
        if ZONE_C:  # the cell LN(·) reads: c̃_t
            c_new_ptr = c_tilde_ptr + kept * B * H
        else:
            c_new_ptr = c_prev + B * H
        if phase == 0:  # q_t = h̄_{t-1} W_hhᵀ and its moments
            if REC:
                h_in = hbar_ptr + t64 * B * H
            else:
                h_in = h_prev
            n, mean, m2 = recurrent_moments(h_in, w_hh_ptr, w_i, w_f, w_g, w_o,
                                            pre_ptr + kept * B * 4 * H, rows, row_mask, H, 4,
                                            BLOCK_B, BLOCK_H, BLOCK_K, H_PAD, PRECISION,
                                            RESIDENT)
            share_rows(shared_ptr, rows, row_mask, B, n, mean, m2)
        elif phase == 1:  # q̂_t, the gates, c̃_t and its moments, c_t
            mean_q, s_q = row_statistics(shared_ptr, rows, row_mask, B, EPS, BLOCK_B)
            tl.store(norms, s_q, mask=stats_rows)
            mean_q = mean_q[:, None]
            s_q = s_q[:, None]
            n = tl.zeros((BLOCK_B,), dtype=tl.float32)
            mean = tl.zeros((BLOCK_B,), dtype=tl.float32)
            m2 = tl.zeros((BLOCK_B,), dtype=tl.float32)
            for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                offsets = rows[:, None] * 4 * H + cols[None, :]
                pre = pre_ptr + kept * B * 4 * H + offsets
                xp = xp_ptr + t64 * B * 4 * H + offsets
                gate = gates_ptr + kept * B * 4 * H + offsets
                i = activate(_gate_input(pre, xp, ln_ptr, 0, cols, col_mask, tile_mask, mean_q,
                                         s_q, H, TRAINING), GATE_ACT, gate_alpha, gate_beta)
                f = activate(_gate_input(pre, xp, ln_ptr, 1, cols, col_mask, tile_mask, mean_q,
                                         s_q, H, TRAINING), GATE_ACT, gate_alpha, gate_beta)
                g = activate(_gate_input(pre, xp, ln_ptr, 2, cols, col_mask, tile_mask, mean_q,
                                         s_q, H, TRAINING), CAND_ACT, cand_alpha, cand_beta)
                o = activate(_gate_input(pre, xp, ln_ptr, 3, cols, col_mask, tile_mask, mean_q,
                                         s_q, H, TRAINING), GATE_ACT, gate_alpha, gate_beta)
                tl.store(gate, i, mask=tile_mask)
                tl.store(gate + H, f, mask=tile_mask)
                tl.store(gate + 2 * H, g, mask=tile_mask)
                tl.store(gate + 3 * H, o, mask=tile_mask)
                c_old = tl.load(c_prev + at, mask=tile_mask, other=0.0)
                c_new = f * c_old + i * g
                c_norm = tl.where(running, c_new, c_old)  # what LN(·) reads; padded: carried
                if ZONE_C:
                    tl.store(c_new_ptr + at, c_norm, mask=tile_mask)
                    c_new = lerp(c_new, c_old, zone_weights(zone_c_ptr, t64, at, tile_mask, B,
                                                            H, ZONE_C))
                tl.store(c_prev + B * H + at, tl.where(running, c_new, c_old), mask=tile_mask)
                n_c, mean_c, m2_c = tile_moments(c_norm, tile_mask)
                n, mean, m2 = merge_moments(n, mean, m2, n_c, mean_c, m2_c)
            share_rows(second, rows, row_mask, B, n, mean, m2)
        else:  # h_t = o∘tanh(LN(c̃_t)∘γ_c + β_c), zoned
            mean_c, s_c = row_statistics(second, rows, row_mask, B, EPS, BLOCK_B)
            tl.store(norms + 1, mean_c, mask=stats_rows)
            tl.store(norms + 2, s_c, mask=stats_rows)
            for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                c_hat, gain = _cell_norm(c_new_ptr, at, tile_mask, mean_c[:, None],
                                         s_c[:, None], ln_ptr, cols, col_mask, H)
                shift = tl.load(ln_ptr + 5 * H + cols, mask=col_mask, other=0.0)[None, :]
                o = tl.load(gates_ptr + kept * B * 4 * H + rows[:, None] * 4 * H + 3 * H
                            + cols[None, :], mask=tile_mask, other=0.0)
                h_old = tl.load(h_prev + at, mask=tile_mask, other=0.0)
                h_new = o * activate(c_hat * gain + shift, OUT_ACT, out_alpha, out_beta)
                store_state(h_new, h_old, running, h_prev, hbar_ptr, rec_ptr, zone_h_ptr, t64, at,
                            tile_mask, B, H, REC, ZONE_H)
        substep_end(sync_ptr, tile, s - S0, SYNC)


@triton.jit
def layernorm_lstm_backward(dy_ptr, w_hh_ptr, ln_ptr, gates_ptr, c_ptr, pre_ptr, norms_ptr,
                            shared_ptr, rec_ptr, zone_h_ptr, zone_c_ptr, c_tilde_ptr, da_ptr,
                            dq_ptr, dn_ptr, dh_ptr, dc_ptr, tile, rows, row_mask, length, T, B,
                            H, S0, S1, sync_ptr, gate_alpha, gate_beta, cand_alpha, cand_beta,
                            out_alpha, out_beta, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                            BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                            SYNC: tl.constexpr, GATE_ACT: tl.constexpr, CAND_ACT: tl.constexpr,
                            OUT_ACT: tl.constexpr, REC: tl.constexpr, ZONE_H: tl.constexpr,
                            ZONE_C: tl.constexpr, H_PAD: tl.constexpr, RESIDENT: tl.constexpr):
    """LN-LSTM BPTT over sub-steps (3T+1, from the last step down) for one tile."""
    # W_hh: the program's column slices of the four gate blocks on chip (RESIDENT), or streamed
    w_i, w_f, w_g, w_o = recurrent_slices(w_hh_ptr, H, 4, BLOCK_H, H_PAD, False, PRECISION,
                                          RESIDENT)
    second = shared_ptr + B * 3 * tl.num_programs(1)  # the second region of shared partials
    for s in range(S0, S1):
        k = s // 3
        phase = s % 3
        t = T - 1 - k
        running = (t < length)[:, None]
        t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
        dh_in = dh_ptr + ((t + 1) % 2) * B * H  # dh, dc reaching h_t, c_t from step t+1
        dc_in = dc_ptr + ((t + 1) % 2) * B * H
        dh_out = dh_ptr + (t % 2) * B * H
        dc_out = dc_ptr + (t % 2) * B * H
        norms = norms_ptr + (t64 * B + rows) * 3
        if ZONE_C:  # c̃_t, what LN(·) read
            c_t = c_tilde_ptr + t64 * B * H
        else:
            c_t = c_ptr + (t64 + 1) * B * H
        step4 = t64 * B * 4 * H
        if phase == 0:  # close step t + 1, open step t
            if k > 0:  # dh_t = (dq_{t+1} W_hh)∘m + g_h∘d^h of the program's columns
                for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                    cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                    acc = recurrent_grad(dq_ptr + step4 + B * 4 * H, w_hh_ptr, w_i, w_f, w_g,
                                         w_o, rows, row_mask, cols, col_mask, H, 4, BLOCK_B,
                                         BLOCK_H, BLOCK_K, H_PAD, PRECISION, RESIDENT)
                    state_grad(acc, t + 1, at, tile_mask, length, rec_ptr, dh_ptr, B, H, REC,
                               ZONE_H)
            # the owner reads what it wrote: a block barrier orders it (and the slot reuse)
            tl.debug_barrier()
            if k < T:  # da_o, dn and the sums of dĉ = dn∘γ_c
                mean_c = tl.load(norms + 1, mask=row_mask, other=0.0)[:, None]
                s_c = tl.load(norms + 2, mask=row_mask, other=0.0)[:, None]
                part_d = tl.zeros((BLOCK_B,), dtype=tl.float32)
                part_dz = tl.zeros((BLOCK_B,), dtype=tl.float32)
                for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                    cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                    c_hat, gain = _cell_norm(c_t, at, tile_mask, mean_c, s_c, ln_ptr, cols,
                                             col_mask, H)
                    shift = tl.load(ln_ptr + 5 * H + cols, mask=col_mask, other=0.0)[None, :]
                    offsets = rows[:, None] * 4 * H + cols[None, :]
                    o = tl.load(gates_ptr + step4 + offsets + 3 * H, mask=tile_mask, other=0.0)
                    g_h = (tl.load(dy_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
                           + tl.load(dh_in + at, mask=tile_mask, other=0.0))
                    if ZONE_H:  # the kept share of h_t is h_{t-1}'s: left in dh_out for closing
                        keep_h = g_h * zone_weights(zone_h_ptr, t64, at, tile_mask, B, H, ZONE_H)
                        tl.store(dh_out + at, keep_h, mask=tile_mask)
                        g_h = g_h - keep_h
                    g_h = tl.where(running, g_h, 0.0)
                    tn = activate(c_hat * gain + shift, OUT_ACT, out_alpha, out_beta)
                    tl.store(da_ptr + step4 + offsets + 3 * H,
                             g_h * tn * activation_grad(o, GATE_ACT, gate_alpha, gate_beta),
                             mask=tile_mask)
                    dn = g_h * o * activation_grad(tn, OUT_ACT, out_alpha, out_beta)
                    tl.store(dn_ptr + t64 * B * H + at, dn, mask=tile_mask)
                    part_d += tl.sum(dn * gain, axis=1)
                    part_dz += tl.sum(dn * gain * c_hat, axis=1)
                share_rows(shared_ptr, rows, row_mask, B, part_d, part_dz, part_d)
        elif phase == 1:  # dc_t, da_i, da_f, da_g, dc_{t-1}; the sums of dq̂ = da∘γ_hh
            mean_c = tl.load(norms + 1, mask=row_mask, other=0.0)[:, None]
            s_c = tl.load(norms + 2, mask=row_mask, other=0.0)[:, None]
            sum_d, sum_dz = row_sums(shared_ptr, rows, row_mask, B, BLOCK_B)
            mean_d = (sum_d / H)[:, None]
            mean_dz = (sum_dz / H)[:, None]
            part_d = tl.zeros((BLOCK_B,), dtype=tl.float32)
            part_dz = tl.zeros((BLOCK_B,), dtype=tl.float32)
            for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                c_hat, gain = _cell_norm(c_t, at, tile_mask, mean_c, s_c, ln_ptr, cols,
                                         col_mask, H)
                offsets = rows[:, None] * 4 * H + cols[None, :]
                gate = gates_ptr + step4 + offsets
                da = da_ptr + step4 + offsets
                d_c_hat = tl.load(dn_ptr + t64 * B * H + at, mask=tile_mask, other=0.0) * gain
                dc = tl.load(dc_in + at, mask=tile_mask, other=0.0)
                if ZONE_C:  # the kept share of c_t is c_{t-1}'s
                    keep_c = dc * zone_weights(zone_c_ptr, t64, at, tile_mask, B, H, ZONE_C)
                    dc_step = dc - keep_c
                else:
                    dc_step = dc
                dc_new = tl.where(running, dc_step, 0.0) + (d_c_hat - mean_d
                                                            - c_hat * mean_dz) * s_c
                i = tl.load(gate, mask=tile_mask, other=0.0)
                f = tl.load(gate + H, mask=tile_mask, other=0.0)
                g = tl.load(gate + 2 * H, mask=tile_mask, other=0.0)
                c_before = tl.load(c_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
                tl.store(da, dc_new * g * activation_grad(i, GATE_ACT, gate_alpha, gate_beta),
                         mask=tile_mask)
                tl.store(da + H, dc_new * c_before * activation_grad(f, GATE_ACT, gate_alpha,
                                                                     gate_beta), mask=tile_mask)
                tl.store(da + 2 * H, dc_new * i * activation_grad(g, CAND_ACT, cand_alpha,
                                                                  cand_beta), mask=tile_mask)
                dc_prev = dc_new * f
                if ZONE_C:
                    dc_prev += keep_c
                tl.store(dc_out + at, tl.where(running, dc_prev, dc), mask=tile_mask)
                part_d, part_dz = gradient_sums(part_d, part_dz, da, pre_ptr + step4 + offsets,
                                                ln_ptr, cols, col_mask, tile_mask, H, 4)
            share_rows(second, rows, row_mask, B, part_d, part_dz, part_d)
        elif phase == 2:  # dq_t = LN_backward(da∘γ_hh)
            s_q = tl.load(norms, mask=row_mask, other=0.0)[:, None]
            gates_norm_backward(da_ptr + step4, pre_ptr + step4, dq_ptr + step4, ln_ptr, second,
                                s_q, rows, row_mask, B, H, 4, BLOCK_B, BLOCK_H)
        substep_end(sync_ptr, tile, s - S0, SYNC)
