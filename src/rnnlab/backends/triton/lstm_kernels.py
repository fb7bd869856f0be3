"""Triton kernels of the LSTM recurrence, with peepholes, cell clipping, coupled gates, any
activations and the regularisers; the math is :mod:`rnnlab.bptt.lstm`'s.

Forward, per step, for the program's sequences and each block of hidden units::

    a = xp_t + h̄_{t-1} W_hhᵀ        (xp_t = W_ih x_t + b, all steps in one GEMM beforehand)
    f = σ(a_f + p_f∘c_{t-1});   i = σ(a_i + p_i∘c_{t-1}) (coupled: 1 - f);   g = tanh(a_g)
    c̃_t = clip(f∘c_{t-1} + i∘g);   o = σ(a_o + p_o∘c̃_t);   h̃_t = o∘tanh c̃_t
    c_t = d^c_t∘c_{t-1} + (1-d^c_t)∘c̃_t;   h_t = d^h_t∘h_{t-1} + (1-d^h_t)∘h̃_t
    padded steps (t ≥ length) carry h and c.

``p`` only with ``PEEPHOLE``, ``clip`` to [-CLIP, CLIP] only with ``HAS_CLIP``; σ of the
gates, tanh of ``g`` and tanh of ``c̃_t`` are the activations ``GATE_ACT``, ``CAND_ACT``,
``OUT_ACT`` of :mod:`rnnlab.backends.triton.activations`, their derivatives read from the
stored outputs in the backward. Regularisers (:mod:`rnnlab.regularisers`): with ``REC`` the
recurrent input is ``h̄ = m∘h`` (recurrent-dropout mask ``m`` (B, H)), written beside the state
in the step's epilogue (``hbar`` (T+1, B, H), ``hbar[0] = m∘h_0`` from the host); without it
``h̄ = h``. Zoneout keep weights ``d^h``, ``d^c`` with ``ZONE_H``, ``ZONE_C`` (modes of
:func:`~rnnlab.backends.triton.kernels_common.zone_weights`); with ``ZONE_C`` the backward
reads ``c̃_t`` from ``c_tilde`` (T, B, H). One sub-step per step. ``LAYER_NORM`` computes the
layer-normalised LSTM instead (:mod:`rnnlab.backends.triton.layernorm_lstm_kernels`: three
sub-steps per step forward, three per step (and one) backward; its buffers ``ln``, ``pre``, ``norms``, ``shared``,
``dq``, ``dn`` are placeholders otherwise).

Backward, from step T-1 down to 0: *opening* step t forms the gate gradients ``da_t`` of the
program's columns from ``dh, dc``; *closing* it (which reads all of ``da_t``) forms
``dh_{t-1} = (da_t W_hh)∘m + g_h∘d^h`` of the program's columns. Zoneout splits the gradient
reaching each state: ``g_h∘d^h``, ``dc∘d^c`` go straight to ``h_{t-1}``, ``c_{t-1}``, the rest
enters the step. ``dh, dc`` live in two-slot buffers: step t reads slot (t+1) % 2 and writes
slot t % 2 (opening leaves ``g_h∘d^h`` there for closing). Closing step t writes only the
program's own columns of ``dh_{t-1}``, and opening step t-1 reads ``dh``, ``dc`` only there, so
sub-step s closes step T-s and opens step T-1-s with a block barrier between them: T+1
sub-steps, one grid barrier each. Sub-steps ``S0 ≤ s < S1`` run in one launch.

``RESIDENT`` keeps the program's slices of ``W_hh`` on chip for all steps (forward: the rows
of its columns in each gate block; backward: its columns of all 4H rows), see
:mod:`rnnlab.backends.triton.kernels_common`; the cell code is the same in both forms.
"""

import triton
import triton.language as tl

from rnnlab.backends.triton.activations import activate, activation_grad
from rnnlab.backends.triton.kernels_common import (
    column_block,
    gate_product,
    lerp,
    operand_tile,
    resident_slice,
    state_grad,
    state_product,
    store_state,
    substep_end,
    tile_rows,
    zone_weights,
)
from rnnlab.backends.triton.layernorm_lstm_kernels import (
    layernorm_lstm_backward,
    layernorm_lstm_forward,
)


@triton.jit
def _cell(a_i, a_f, a_g, a_o, t64, running, rows, cols, col_mask, tile_mask, at, h_prev, c_prev,
          peep_ptr, gates_ptr, clipped_ptr, rec_ptr, hbar_ptr, zone_h_ptr, zone_c_ptr,
          c_tilde_ptr, CLIP, B, H, gate_alpha, gate_beta, cand_alpha, cand_beta, out_alpha,
          out_beta, TRAINING: tl.constexpr, PEEPHOLE: tl.constexpr, HAS_CLIP: tl.constexpr,
          COUPLED: tl.constexpr, GATE_ACT: tl.constexpr, CAND_ACT: tl.constexpr,
          OUT_ACT: tl.constexpr, REC: tl.constexpr, ZONE_H: tl.constexpr, ZONE_C: tl.constexpr):
    """Step t's cell for a tile from the gates' pre-activations ``a = xp_t + h̄_{t-1} W_hhᵀ``
    (``a_i`` unused when ``COUPLED``): the gates (kept for the backward when ``TRAINING``),
    ``c_t`` and ``h_t`` stored one step past ``c_prev``, ``h_prev``."""
    c_old = tl.load(c_prev + at, mask=tile_mask, other=0.0)
    h_old = tl.load(h_prev + at, mask=tile_mask, other=0.0)
    if PEEPHOLE:
        p_i = tl.load(peep_ptr + cols, mask=col_mask, other=0.0)[None, :]
        p_f = tl.load(peep_ptr + H + cols, mask=col_mask, other=0.0)[None, :]
        p_o = tl.load(peep_ptr + 2 * H + cols, mask=col_mask, other=0.0)[None, :]
        a_f += p_f * c_old
    f = activate(a_f, GATE_ACT, gate_alpha, gate_beta)
    if COUPLED:
        i = 1.0 - f
    else:
        if PEEPHOLE:
            a_i += p_i * c_old
        i = activate(a_i, GATE_ACT, gate_alpha, gate_beta)
    g = activate(a_g, CAND_ACT, cand_alpha, cand_beta)
    c_new = f * c_old + i * g
    if HAS_CLIP:
        if TRAINING:
            tl.store(clipped_ptr + t64 * B * H + at, (tl.abs(c_new) > CLIP).to(tl.int8),
                     mask=tile_mask)
        c_new = tl.minimum(tl.maximum(c_new, -CLIP), CLIP)
    if PEEPHOLE:
        a_o += p_o * c_new
    o = activate(a_o, GATE_ACT, gate_alpha, gate_beta)
    h_new = o * activate(c_new, OUT_ACT, out_alpha, out_beta)
    if TRAINING:  # the gates are what the backward reads; inference keeps none
        gate = gates_ptr + t64 * B * 4 * H + rows[:, None] * 4 * H + cols[None, :]
        tl.store(gate, i, mask=tile_mask)
        tl.store(gate + H, f, mask=tile_mask)
        tl.store(gate + 2 * H, g, mask=tile_mask)
        tl.store(gate + 3 * H, o, mask=tile_mask)
    if ZONE_C:  # c_t = lerp(c̃_t, c_{t-1}, d^c); the backward reads c̃_t
        if TRAINING:
            tl.store(c_tilde_ptr + t64 * B * H + at, c_new, mask=tile_mask)
        c_new = lerp(c_new, c_old, zone_weights(zone_c_ptr, t64, at, tile_mask, B, H, ZONE_C))
    tl.store(c_prev + B * H + at, tl.where(running, c_new, c_old), mask=tile_mask)
    store_state(h_new, h_old, running, h_prev, hbar_ptr, rec_ptr, zone_h_ptr, t64, at,
                tile_mask, B, H, REC, ZONE_H)


@triton.jit
def lstm_forward_kernel(xp_ptr, w_hh_ptr, peep_ptr, lengths_ptr, h_ptr, c_ptr, gates_ptr,
                        clipped_ptr, rec_ptr, hbar_ptr, zone_h_ptr, zone_c_ptr, c_tilde_ptr,
                        ln_ptr, pre_ptr, norms_ptr, shared_ptr, CLIP, EPS, T, B, H, S0, S1,
                        sync_ptr, gate_alpha, gate_beta, cand_alpha,
                        cand_beta, out_alpha, out_beta, BLOCK_B: tl.constexpr,
                        BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                        SYNC: tl.constexpr, TRAINING: tl.constexpr, PEEPHOLE: tl.constexpr,
                        HAS_CLIP: tl.constexpr, COUPLED: tl.constexpr, GATE_ACT: tl.constexpr,
                        CAND_ACT: tl.constexpr, OUT_ACT: tl.constexpr, REC: tl.constexpr,
                        ZONE_H: tl.constexpr, ZONE_C: tl.constexpr, LAYER_NORM: tl.constexpr,
                        H_PAD: tl.constexpr, RESIDENT: tl.constexpr):
    """LSTM forward over sub-steps ``S0 ≤ s < S1`` for one tile of sequences; see the module docstring."""
    tile, rows, row_mask, length = tile_rows(lengths_ptr, B, BLOCK_B)
    if LAYER_NORM:
        layernorm_lstm_forward(xp_ptr, w_hh_ptr, ln_ptr, h_ptr, c_ptr, gates_ptr, pre_ptr,
                               norms_ptr, shared_ptr, rec_ptr, hbar_ptr, zone_h_ptr, zone_c_ptr,
                               c_tilde_ptr, tile, rows, row_mask, length, EPS, B, H, S0, S1,
                               sync_ptr, gate_alpha, gate_beta, cand_alpha, cand_beta,
                               out_alpha, out_beta, BLOCK_B, BLOCK_H, BLOCK_K, PRECISION, SYNC,
                               TRAINING, GATE_ACT, CAND_ACT, OUT_ACT, REC, ZONE_H, ZONE_C)
    else:
        if RESIDENT:  # the program's one block of columns: its W_hh slices stay on chip
            j0 = tl.program_id(1) * BLOCK_H
            if not COUPLED:
                w_i = resident_slice(w_hh_ptr, 0, j0, H, BLOCK_H, H_PAD, True, PRECISION)
            w_f = resident_slice(w_hh_ptr, H, j0, H, BLOCK_H, H_PAD, True, PRECISION)
            w_g = resident_slice(w_hh_ptr, 2 * H, j0, H, BLOCK_H, H_PAD, True, PRECISION)
            w_o = resident_slice(w_hh_ptr, 3 * H, j0, H, BLOCK_H, H_PAD, True, PRECISION)
        else:  # streamed: dot_accumulate reads W_hh at w_hh_ptr every step
            w_i = w_hh_ptr
            w_f = w_hh_ptr
            w_g = w_hh_ptr
            w_o = w_hh_ptr
        for t in range(S0, S1):
            running = (t < length)[:, None]
            t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
            h_prev = h_ptr + t64 * B * H
            c_prev = c_ptr + t64 * B * H
            if REC:  # the recurrent product reads m∘h_{t-1}
                h_in = hbar_ptr + t64 * B * H
            else:
                h_in = h_prev
            if RESIDENT:  # h̄_{t-1} read once for the four gates
                h_tile = operand_tile(h_in, H, rows, row_mask, H, w_f, H_PAD)
            else:
                h_tile = h_in
            for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                xp = xp_ptr + t64 * B * 4 * H + rows[:, None] * 4 * H + cols[None, :]
                a_f = gate_product(tl.load(xp + H, mask=tile_mask, other=0.0), h_in, h_tile,
                                   w_hh_ptr, w_f, 1, rows, row_mask, cols, col_mask, H, BLOCK_K,
                                   PRECISION, RESIDENT)
                a_g = gate_product(tl.load(xp + 2 * H, mask=tile_mask, other=0.0), h_in, h_tile,
                                   w_hh_ptr, w_g, 2, rows, row_mask, cols, col_mask, H, BLOCK_K,
                                   PRECISION, RESIDENT)
                a_o = gate_product(tl.load(xp + 3 * H, mask=tile_mask, other=0.0), h_in, h_tile,
                                   w_hh_ptr, w_o, 3, rows, row_mask, cols, col_mask, H, BLOCK_K,
                                   PRECISION, RESIDENT)
                if COUPLED:
                    a_i = a_f  # unused: i = 1 - f
                else:
                    a_i = gate_product(tl.load(xp, mask=tile_mask, other=0.0), h_in, h_tile,
                                       w_hh_ptr, w_i, 0, rows, row_mask, cols, col_mask, H,
                                       BLOCK_K, PRECISION, RESIDENT)
                _cell(a_i, a_f, a_g, a_o, t64, running, rows, cols, col_mask, tile_mask, at,
                      h_prev, c_prev, peep_ptr, gates_ptr, clipped_ptr, rec_ptr, hbar_ptr,
                      zone_h_ptr, zone_c_ptr, c_tilde_ptr, CLIP, B, H, gate_alpha, gate_beta,
                      cand_alpha, cand_beta, out_alpha, out_beta, TRAINING, PEEPHOLE, HAS_CLIP,
                      COUPLED, GATE_ACT, CAND_ACT, OUT_ACT, REC, ZONE_H, ZONE_C)
            substep_end(sync_ptr, tile, t - S0, SYNC)


@triton.jit
def _gate_grads(t, rows, cols, col_mask, tile_mask, at, length, dy_ptr, peep_ptr, gates_ptr,
                c_ptr, clipped_ptr, zone_h_ptr, zone_c_ptr, c_tilde_ptr, da_ptr, dh_ptr, dc_ptr,
                B, H, gate_alpha, gate_beta, cand_alpha, cand_beta, out_alpha, out_beta,
                PEEPHOLE: tl.constexpr, HAS_CLIP: tl.constexpr, COUPLED: tl.constexpr,
                GATE_ACT: tl.constexpr, CAND_ACT: tl.constexpr, OUT_ACT: tl.constexpr,
                ZONE_H: tl.constexpr, ZONE_C: tl.constexpr):
    """Open step t's BPTT for a tile: ``da_t`` of its columns from the ``dh``, ``dc`` reaching
    ``h_t``, ``c_t`` (slot (t+1) % 2), and ``dc_{t-1}`` (slot t % 2; with ``ZONE_H`` the kept
    share ``g_h∘d^h`` is left in ``dh``'s slot t % 2 for :func:`state_grad`)."""
    running = (t < length)[:, None]
    t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
    dh_out = dh_ptr + (t % 2) * B * H
    gate = gates_ptr + t64 * B * 4 * H + rows[:, None] * 4 * H + cols[None, :]
    da = da_ptr + t64 * B * 4 * H + rows[:, None] * 4 * H + cols[None, :]
    i = tl.load(gate, mask=tile_mask, other=0.0)
    f = tl.load(gate + H, mask=tile_mask, other=0.0)
    g = tl.load(gate + 2 * H, mask=tile_mask, other=0.0)
    o = tl.load(gate + 3 * H, mask=tile_mask, other=0.0)
    if ZONE_C:  # c̃_t, before zoneout
        c_t = tl.load(c_tilde_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
    else:
        c_t = tl.load(c_ptr + (t64 + 1) * B * H + at, mask=tile_mask, other=0.0)
    c_before = tl.load(c_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
    dy = tl.load(dy_ptr + t64 * B * H + at, mask=tile_mask, other=0.0)
    dh = tl.load(dh_ptr + ((t + 1) % 2) * B * H + at, mask=tile_mask, other=0.0)
    dc = tl.load(dc_ptr + ((t + 1) % 2) * B * H + at, mask=tile_mask, other=0.0)
    if PEEPHOLE:
        p_i = tl.load(peep_ptr + cols, mask=col_mask, other=0.0)[None, :]
        p_f = tl.load(peep_ptr + H + cols, mask=col_mask, other=0.0)[None, :]
        p_o = tl.load(peep_ptr + 2 * H + cols, mask=col_mask, other=0.0)[None, :]
    if ZONE_H:  # the kept share of h_t is h_{t-1}'s
        keep_h = (dy + dh) * zone_weights(zone_h_ptr, t64, at, tile_mask, B, H, ZONE_H)
        tl.store(dh_out + at, keep_h, mask=tile_mask)
        g_h = tl.where(running, dy + dh - keep_h, 0.0)
    else:
        g_h = tl.where(running, dy + dh, 0.0)
    if ZONE_C:  # likewise the kept share of c_t
        keep_c = dc * zone_weights(zone_c_ptr, t64, at, tile_mask, B, H, ZONE_C)
        dc_step = dc - keep_c
    else:
        dc_step = dc
    tc = activate(c_t, OUT_ACT, out_alpha, out_beta)
    da_o = g_h * tc * activation_grad(o, GATE_ACT, gate_alpha, gate_beta)
    dc_new = tl.where(running, dc_step, 0.0) + g_h * o * activation_grad(
        tc, OUT_ACT, out_alpha, out_beta)
    if PEEPHOLE:
        dc_new += da_o * p_o
    if HAS_CLIP:  # no gradient through a clipped cell state
        clipped = tl.load(clipped_ptr + t64 * B * H + at, mask=tile_mask, other=0)
        dc_new = tl.where(clipped != 0, 0.0, dc_new)
    k_f = activation_grad(f, GATE_ACT, gate_alpha, gate_beta)
    if COUPLED:
        da_i = tl.zeros_like(dc_new)
        da_f = dc_new * (c_before - g) * k_f
    else:
        da_i = dc_new * g * activation_grad(i, GATE_ACT, gate_alpha, gate_beta)
        da_f = dc_new * c_before * k_f
    dc_prev = dc_new * f
    if PEEPHOLE:
        dc_prev += da_i * p_i + da_f * p_f
    if ZONE_C:
        dc_prev += keep_c
    tl.store(da, da_i, mask=tile_mask)
    tl.store(da + H, da_f, mask=tile_mask)
    tl.store(da + 2 * H, dc_new * i * activation_grad(g, CAND_ACT, cand_alpha, cand_beta),
             mask=tile_mask)
    tl.store(da + 3 * H, da_o, mask=tile_mask)
    tl.store(dc_ptr + (t % 2) * B * H + at, tl.where(running, dc_prev, dc), mask=tile_mask)


@triton.jit
def lstm_backward_kernel(dy_ptr, w_hh_ptr, peep_ptr, lengths_ptr, gates_ptr, c_ptr, clipped_ptr,
                         rec_ptr, zone_h_ptr, zone_c_ptr, c_tilde_ptr, ln_ptr, pre_ptr,
                         norms_ptr, shared_ptr, da_ptr, dq_ptr, dn_ptr, dh_ptr, dc_ptr, T, B, H,
                         S0, S1, sync_ptr, gate_alpha, gate_beta, cand_alpha,
                         cand_beta, out_alpha, out_beta, BLOCK_B: tl.constexpr,
                         BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                         SYNC: tl.constexpr, PEEPHOLE: tl.constexpr, HAS_CLIP: tl.constexpr,
                         COUPLED: tl.constexpr, GATE_ACT: tl.constexpr, CAND_ACT: tl.constexpr,
                         OUT_ACT: tl.constexpr, REC: tl.constexpr, ZONE_H: tl.constexpr,
                         ZONE_C: tl.constexpr, LAYER_NORM: tl.constexpr, H_PAD: tl.constexpr,
                         RESIDENT: tl.constexpr):
    """LSTM BPTT over sub-steps from the last step down, for one tile of sequences: the gate gradients ``da`` and the carried ``dh``, ``dc``; see the module docstring."""
    tile, rows, row_mask, length = tile_rows(lengths_ptr, B, BLOCK_B)
    if LAYER_NORM:
        layernorm_lstm_backward(dy_ptr, w_hh_ptr, ln_ptr, gates_ptr, c_ptr, pre_ptr, norms_ptr,
                                shared_ptr, rec_ptr, zone_h_ptr, zone_c_ptr, c_tilde_ptr, da_ptr,
                                dq_ptr, dn_ptr, dh_ptr, dc_ptr, tile, rows, row_mask, length, T,
                                B, H, S0, S1, sync_ptr, gate_alpha, gate_beta, cand_alpha,
                                cand_beta, out_alpha, out_beta, BLOCK_B, BLOCK_H, BLOCK_K,
                                PRECISION, SYNC, GATE_ACT, CAND_ACT, OUT_ACT, REC, ZONE_H,
                                ZONE_C)
    else:
        if RESIDENT:  # the program's one block of columns: its W_hh column slices stay on chip
            j0 = tl.program_id(1) * BLOCK_H
            if not COUPLED:  # coupled gates: da_i = 0
                w_i = resident_slice(w_hh_ptr, 0, j0, H, BLOCK_H, H_PAD, False, PRECISION)
            w_f = resident_slice(w_hh_ptr, H, j0, H, BLOCK_H, H_PAD, False, PRECISION)
            w_g = resident_slice(w_hh_ptr, 2 * H, j0, H, BLOCK_H, H_PAD, False, PRECISION)
            w_o = resident_slice(w_hh_ptr, 3 * H, j0, H, BLOCK_H, H_PAD, False, PRECISION)
        else:  # streamed: dot_accumulate reads W_hh at w_hh_ptr every step
            w_i = w_hh_ptr
            w_f = w_hh_ptr
            w_g = w_hh_ptr
            w_o = w_hh_ptr
        for s in range(S0, S1):  # sub-step s closes step T - s and opens step T - 1 - s
            if s > 0:  # dh_{T-s-1} of the program's columns (reads all of da_{T-s})
                t = T - s
                da_t = da_ptr + tl.cast(t, tl.int64) * B * 4 * H
                for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                    cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                    acc = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
                    if not COUPLED:  # coupled gates: da_i = 0
                        acc = state_product(acc, da_t, 4 * H, w_hh_ptr, w_i, 0, rows, row_mask,
                                            cols, col_mask, H, BLOCK_K, H_PAD, PRECISION,
                                            RESIDENT)
                    acc = state_product(acc, da_t, 4 * H, w_hh_ptr, w_f, 1, rows, row_mask, cols,
                                        col_mask, H, BLOCK_K, H_PAD, PRECISION, RESIDENT)
                    acc = state_product(acc, da_t, 4 * H, w_hh_ptr, w_g, 2, rows, row_mask, cols,
                                        col_mask, H, BLOCK_K, H_PAD, PRECISION, RESIDENT)
                    acc = state_product(acc, da_t, 4 * H, w_hh_ptr, w_o, 3, rows, row_mask, cols,
                                        col_mask, H, BLOCK_K, H_PAD, PRECISION, RESIDENT)
                    state_grad(acc, t, at, tile_mask, length, rec_ptr, dh_ptr, B, H, REC,
                               ZONE_H)
            # the owner reads what it wrote: a block barrier orders it (and the slot reuse)
            tl.debug_barrier()
            if s < T:
                t = T - 1 - s
                for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                    cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                    _gate_grads(t, rows, cols, col_mask, tile_mask, at, length, dy_ptr, peep_ptr,
                                gates_ptr, c_ptr, clipped_ptr, zone_h_ptr, zone_c_ptr,
                                c_tilde_ptr, da_ptr, dh_ptr, dc_ptr, B, H, gate_alpha,
                                gate_beta, cand_alpha, cand_beta, out_alpha, out_beta,
                                PEEPHOLE, HAS_CLIP, COUPLED, GATE_ACT, CAND_ACT, OUT_ACT,
                                ZONE_H, ZONE_C)
            substep_end(sync_ptr, tile, s - S0, SYNC)
