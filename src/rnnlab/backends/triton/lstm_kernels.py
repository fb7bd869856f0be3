"""Triton kernels of the LSTM recurrence, with peepholes, cell clipping, coupled gates, a
projection, any activations and the regularisers; the math is :mod:`rnnlab.bptt.lstm`'s.

Forward, per step, for the program's sequences and each block of hidden units::

    a = xp_t + h̄_{t-1} W_hhᵀ        (xp_t = W_ih x_t + b, all steps in one GEMM beforehand)
    f = σ(a_f + p_f∘c_{t-1});   i = σ(a_i + p_i∘c_{t-1}) (coupled: 1 - f);   g = tanh(a_g)
    c̃_t = clip(f∘c_{t-1} + i∘g);   o = σ(a_o + p_o∘c̃_t);   h̃_t = o∘tanh c̃_t
    c_t = d^c_t∘c_{t-1} + (1-d^c_t)∘c̃_t;   h_t = d^h_t∘h_{t-1} + (1-d^h_t)∘(h̃_t W_hrᵀ)
    padded steps (t ≥ length) carry h and c.

``p`` only with ``PEEPHOLE``, ``clip`` to [-CLIP, CLIP] only with ``HAS_CLIP``; σ of the
gates, tanh of ``g`` and tanh of ``c̃_t`` are the activations ``GATE_ACT``, ``CAND_ACT``,
``OUT_ACT`` of :mod:`rnnlab.backends.triton.activations`, their derivatives read from the
stored outputs in the backward. Regularisers (:mod:`rnnlab.regularisers`): with ``REC`` the
recurrent input is ``h̄ = m∘h`` (recurrent-dropout mask ``m`` (B, P)), written beside the state
in the step's epilogue (``hbar`` (T+1, B, P), ``hbar[0] = m∘h_0`` from the host); without it
``h̄ = h``. Zoneout keep weights ``d^h``, ``d^c`` with ``ZONE_H``, ``ZONE_C`` (modes of
:func:`~rnnlab.backends.triton.kernels_common.zone_weights`); with ``ZONE_C`` the backward
reads ``c̃_t`` from ``c_tilde`` (T, B, H). ``LAYER_NORM`` computes the layer-normalised LSTM
instead (:mod:`rnnlab.backends.triton.layernorm_lstm_kernels`: three sub-steps per step
forward, three per step (and one) backward; its buffers ``ln``, ``pre``, ``norms``,
``shared``, ``dq``, ``dn`` are placeholders otherwise).

``h`` has ``P`` units: ``proj_size`` with ``PROJ``, else ``H`` (no ``W_hr``: ``h̃_t`` is the new
state). Without ``PROJ`` a step is one sub-step. With ``PROJ`` it is two, since the projection
reads all of ``h̃_t``: sub-step 0 runs the gates and the cell of the program's blocks of H
columns and stores ``h̃_t`` in ``h_tilde`` (T, B, H) (one slot, (1, B, H), in inference);
sub-step 1 forms the program's blocks of P columns of ``h̃_t W_hrᵀ`` and closes the state
(zoneout of h, the padded carry, ``h̄ = m∘h``).

Backward, from step T-1 down to 0: *opening* step t forms the gate gradients ``da_t`` of the
program's columns from ``dh, dc``; *closing* it (which reads all of ``da_t``) forms
``dh_{t-1} = (da_t W_hh)∘m + g_h∘d^h`` of the program's columns. Zoneout splits the gradient
reaching each state: ``g_h∘d^h``, ``dc∘d^c`` go straight to ``h_{t-1}``, ``c_{t-1}``, the rest
enters the step. ``dh, dc`` live in two-slot buffers: step t reads slot (t+1) % 2 and writes
slot t % 2 (``g_h∘d^h`` is left there for closing). Closing step t writes only the program's
own columns of ``dh_{t-1}``, and opening step t-1 reads ``dh``, ``dc`` only there, so
sub-step s closes step T-s and opens step T-1-s with a block barrier between them: T+1
sub-steps, one grid barrier each. Sub-steps ``S0 ≤ s < S1`` run in one launch.

With ``PROJ``, ``dh`` (B, P) reaches ``h_t``; differentiating ``h_t = d^h∘h_{t-1} +
(1-d^h)∘(h̃_t W_hrᵀ)`` (padded steps: ``h_t = h_{t-1}``)::

    e_t      = running_t ∘ (1-d^h_t) ∘ (dy_t + dh_t)          (B, P), stored for dW_hr
    dh̃_t     = e_t W_hr                                       (B, H)
    da_t, dc_{t-1} from dh̃_t and dc_t as without projection (o∘tanh c̃_t's derivative)
    dh_{t-1} = running_t ? (da_t W_hh)∘m + d^h_t∘(dy_t + dh_t) : dh_t
    dW_hr    = Σ_t e_tᵀ h̃_t   (a GEMM over all steps, on the host)

Closing step t now works on the program's blocks of P columns: ``dh_{t-1}``, then, from the
same program's values, ``e_{t-1}`` (and the kept share ``d^h∘(dy + dh)``, left in ``dh``'s slot
as opening leaves it). Opening step t-1 (blocks of H columns) reads all of ``e_{t-1}``, so a
grid barrier separates them: each is its own sub-step, 2T + 1 of them (closing "step T" forms
``e_{T-1}`` from ``dh_T`` alone). ``e`` is ``dproj`` (T, B, P).

``RESIDENT`` keeps the program's slices of ``W_hh`` on chip for all steps (forward: the rows
of its columns in each gate block; backward: its columns of all 4H rows), see
:mod:`rnnlab.backends.triton.kernels_common`; the cell code is the same in both forms, and
the layer-normalised LSTM has it too. The projected LSTM streams its weights (its host passes
no resident form).
"""

import triton
import triton.language as tl

from rnnlab.backends.triton.activations import activate, activation_grad
from rnnlab.backends.triton.kernels_common import (
    column_block,
    dot_accumulate,
    gate_operand,
    gate_product,
    lerp,
    operand_tile,
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
def _gate_input(xp, g: tl.constexpr, h_in, h_tile, w_hh_ptr, w_slice, rows, row_mask, cols,
                col_mask, tile_mask, H, P, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                RESIDENT: tl.constexpr, PROJ: tl.constexpr):
    """Gate block ``g``'s pre-activation ``xp_t + h̄_{t-1} W_gᵀ`` of a tile (``xp`` at the
    tile's i gate); with ``PROJ`` the recurrent input has P units and is streamed."""
    acc = tl.load(xp + g * H, mask=tile_mask, other=0.0)
    if PROJ:
        acc = dot_accumulate(acc, h_in, P, rows, row_mask, w_hh_ptr, P, 1, cols + g * H,
                             col_mask, P, BLOCK_K, PRECISION)
    else:
        acc = gate_product(acc, h_in, h_tile, w_hh_ptr, w_slice, g, rows, row_mask, cols,
                           col_mask, H, BLOCK_K, PRECISION, RESIDENT)
    return acc


@triton.jit
def _cell(a_i, a_f, a_g, a_o, t64, running, rows, cols, col_mask, tile_mask, at, c_prev,
          peep_ptr, gates_ptr, clipped_ptr, zone_c_ptr, c_tilde_ptr, CLIP, B, H, gate_alpha,
          gate_beta, cand_alpha, cand_beta, out_alpha, out_beta, TRAINING: tl.constexpr,
          PEEPHOLE: tl.constexpr, HAS_CLIP: tl.constexpr, COUPLED: tl.constexpr,
          GATE_ACT: tl.constexpr, CAND_ACT: tl.constexpr, OUT_ACT: tl.constexpr,
          ZONE_C: tl.constexpr):
    """Step t's cell for a tile from the gates' pre-activations ``a = xp_t + h̄_{t-1} W_hhᵀ``
    (``a_i`` unused when ``COUPLED``): the gates (kept for the backward when ``TRAINING``),
    ``c_t`` stored one step past ``c_prev``; returns ``h̃_t = o∘tanh c̃_t``."""
    c_old = tl.load(c_prev + at, mask=tile_mask, other=0.0)
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
    return h_new


@triton.jit
def _project(h_tilde, w_hr_ptr, h_prev, hbar_ptr, rec_ptr, zone_h_ptr, t64, rows, row_mask,
             running, B, H, P, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
             BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, REC: tl.constexpr,
             ZONE_H: tl.constexpr):
    """The program's blocks of P columns of ``h_t = h̃_t W_hrᵀ`` (``h_tilde`` (B, H) of step
    t, all of it written before the barrier), closed by ``store_state``."""
    for j in range(tl.program_id(1) * BLOCK_H, P, tl.num_programs(1) * BLOCK_H):
        cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, P, BLOCK_H)
        h_new = dot_accumulate(tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32), h_tilde, H,
                               rows, row_mask, w_hr_ptr, H, 1, cols, col_mask, H, BLOCK_K,
                               PRECISION)
        h_old = tl.load(h_prev + at, mask=tile_mask, other=0.0)
        store_state(h_new, h_old, running, h_prev, hbar_ptr, rec_ptr, zone_h_ptr, t64, at,
                    tile_mask, B, P, REC, ZONE_H)


@triton.jit
def lstm_forward_kernel(xp_ptr, w_hh_ptr, peep_ptr, w_hr_ptr, lengths_ptr, h_ptr, c_ptr,
                        gates_ptr, clipped_ptr, h_tilde_ptr, rec_ptr, hbar_ptr, zone_h_ptr,
                        zone_c_ptr, c_tilde_ptr, ln_ptr, pre_ptr, norms_ptr, shared_ptr, CLIP,
                        EPS, T, B, H, P, S0, S1, sync_ptr, gate_alpha, gate_beta, cand_alpha,
                        cand_beta, out_alpha, out_beta, BLOCK_B: tl.constexpr,
                        BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                        SYNC: tl.constexpr, TRAINING: tl.constexpr, PEEPHOLE: tl.constexpr,
                        HAS_CLIP: tl.constexpr, COUPLED: tl.constexpr, GATE_ACT: tl.constexpr,
                        CAND_ACT: tl.constexpr, OUT_ACT: tl.constexpr, REC: tl.constexpr,
                        ZONE_H: tl.constexpr, ZONE_C: tl.constexpr, PROJ: tl.constexpr,
                        LAYER_NORM: tl.constexpr, H_PAD: tl.constexpr, RESIDENT: tl.constexpr):
    """LSTM forward over sub-steps ``S0 ≤ s < S1`` for one tile of sequences; see the module docstring."""
    tile, rows, row_mask, length = tile_rows(lengths_ptr, B, BLOCK_B)
    if LAYER_NORM:
        layernorm_lstm_forward(xp_ptr, w_hh_ptr, ln_ptr, h_ptr, c_ptr, gates_ptr, pre_ptr,
                               norms_ptr, shared_ptr, rec_ptr, hbar_ptr, zone_h_ptr, zone_c_ptr,
                               c_tilde_ptr, tile, rows, row_mask, length, EPS, B, H, S0, S1,
                               sync_ptr, gate_alpha, gate_beta, cand_alpha, cand_beta,
                               out_alpha, out_beta, BLOCK_B, BLOCK_H, BLOCK_K, PRECISION, SYNC,
                               TRAINING, GATE_ACT, CAND_ACT, OUT_ACT, REC, ZONE_H, ZONE_C, H_PAD,
                               RESIDENT)
    else:
        if not PROJ:  # h has the H units (one value for both, as the compiler sees it)
            P = H
        w_f = gate_operand(w_hh_ptr, 1, H, BLOCK_H, H_PAD, True, PRECISION, RESIDENT)
        w_g = gate_operand(w_hh_ptr, 2, H, BLOCK_H, H_PAD, True, PRECISION, RESIDENT)
        w_o = gate_operand(w_hh_ptr, 3, H, BLOCK_H, H_PAD, True, PRECISION, RESIDENT)
        if COUPLED:  # no product for i (its gradient is 0): f's operand stands in
            w_i = w_f
        else:
            w_i = gate_operand(w_hh_ptr, 0, H, BLOCK_H, H_PAD, True, PRECISION, RESIDENT)
        for s in range(S0, S1):
            if PROJ:  # sub-step 0 of a step: the cell; 1: the projection
                t = s // 2
                cell_phase = s % 2 == 0
            else:
                t = s
                cell_phase = True
            running = (t < length)[:, None]
            t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
            h_prev = h_ptr + t64 * B * P
            if TRAINING:  # the step's slot of h̃_t
                h_tilde = h_tilde_ptr + t64 * B * H
            else:
                h_tilde = h_tilde_ptr
            if cell_phase:
                if REC:  # the recurrent product reads m∘h_{t-1}
                    h_in = hbar_ptr + t64 * B * P
                else:
                    h_in = h_prev
                if RESIDENT:  # h̄_{t-1} read once for the four gates
                    h_tile = operand_tile(h_in, H, rows, row_mask, H, w_f, H_PAD)
                else:
                    h_tile = h_in
                for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                    cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                    xp = xp_ptr + t64 * B * 4 * H + rows[:, None] * 4 * H + cols[None, :]
                    a_f = _gate_input(xp, 1, h_in, h_tile, w_hh_ptr, w_f, rows, row_mask, cols,
                                      col_mask, tile_mask, H, P, BLOCK_K, PRECISION, RESIDENT,
                                      PROJ)
                    a_g = _gate_input(xp, 2, h_in, h_tile, w_hh_ptr, w_g, rows, row_mask, cols,
                                      col_mask, tile_mask, H, P, BLOCK_K, PRECISION, RESIDENT,
                                      PROJ)
                    a_o = _gate_input(xp, 3, h_in, h_tile, w_hh_ptr, w_o, rows, row_mask, cols,
                                      col_mask, tile_mask, H, P, BLOCK_K, PRECISION, RESIDENT,
                                      PROJ)
                    if COUPLED:
                        a_i = a_f  # unused: i = 1 - f
                    else:
                        a_i = _gate_input(xp, 0, h_in, h_tile, w_hh_ptr, w_i, rows, row_mask,
                                          cols, col_mask, tile_mask, H, P, BLOCK_K, PRECISION,
                                          RESIDENT, PROJ)
                    if not PROJ:
                        h_old = tl.load(h_prev + at, mask=tile_mask, other=0.0)
                    h_new = _cell(a_i, a_f, a_g, a_o, t64, running, rows, cols, col_mask,
                                  tile_mask, at, c_ptr + t64 * B * H, peep_ptr, gates_ptr,
                                  clipped_ptr, zone_c_ptr, c_tilde_ptr, CLIP, B, H, gate_alpha,
                                  gate_beta, cand_alpha, cand_beta, out_alpha, out_beta,
                                  TRAINING, PEEPHOLE, HAS_CLIP, COUPLED, GATE_ACT, CAND_ACT,
                                  OUT_ACT, ZONE_C)
                    if PROJ:  # h̃_t for the projection after the barrier (and for dW_hr)
                        tl.store(h_tilde + at, h_new, mask=tile_mask)
                    else:
                        store_state(h_new, h_old, running, h_prev, hbar_ptr, rec_ptr,
                                    zone_h_ptr, t64, at, tile_mask, B, H, REC, ZONE_H)
            else:
                _project(h_tilde, w_hr_ptr, h_prev, hbar_ptr, rec_ptr, zone_h_ptr, t64, rows,
                         row_mask, running, B, H, P, BLOCK_B, BLOCK_H, BLOCK_K, PRECISION, REC,
                         ZONE_H)
            substep_end(sync_ptr, tile, s - S0, SYNC)


@triton.jit
def _output_grad(dh, t, at, tile_mask, length, dy_ptr, dh_ptr, zone_h_ptr, B, P,
                 ZONE_H: tl.constexpr):
    """The gradient entering step t's new state from ``dh`` reaching ``h_t`` (B, P) and the
    output's ``dy_t``: ``running∘(1-d^h)∘(dy_t + dh)``; with ``ZONE_H`` the kept share
    ``d^h∘(dy_t + dh)`` is left in slot t % 2 of ``dh`` for :func:`state_grad`."""
    t64 = tl.cast(t, tl.int64)
    g_h = tl.load(dy_ptr + t64 * B * P + at, mask=tile_mask, other=0.0) + dh
    if ZONE_H:
        keep_h = g_h * zone_weights(zone_h_ptr, t64, at, tile_mask, B, P, ZONE_H)
        tl.store(dh_ptr + (t % 2) * B * P + at, keep_h, mask=tile_mask)
        g_h -= keep_h
    return tl.where((t < length)[:, None], g_h, 0.0)


@triton.jit
def _gate_grads(g_h, t, rows, cols, col_mask, tile_mask, at, length, peep_ptr, gates_ptr,
                c_ptr, clipped_ptr, zone_c_ptr, c_tilde_ptr, da_ptr, dc_ptr, B, H, gate_alpha,
                gate_beta, cand_alpha, cand_beta, out_alpha, out_beta, PEEPHOLE: tl.constexpr,
                HAS_CLIP: tl.constexpr, COUPLED: tl.constexpr, GATE_ACT: tl.constexpr,
                CAND_ACT: tl.constexpr, OUT_ACT: tl.constexpr, ZONE_C: tl.constexpr):
    """Open step t's BPTT for a tile: ``da_t`` of its columns from ``g_h`` entering
    ``h̃_t = o∘tanh c̃_t`` (0 where the step is padded) and the ``dc`` reaching ``c_t``
    (slot (t+1) % 2), and ``dc_{t-1}`` (slot t % 2)."""
    running = (t < length)[:, None]
    t64 = tl.cast(t, tl.int64)  # offsets of step t overflow int32 at T·B·4H ≥ 2³¹
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
    dc = tl.load(dc_ptr + ((t + 1) % 2) * B * H + at, mask=tile_mask, other=0.0)
    if PEEPHOLE:
        p_i = tl.load(peep_ptr + cols, mask=col_mask, other=0.0)[None, :]
        p_f = tl.load(peep_ptr + H + cols, mask=col_mask, other=0.0)[None, :]
        p_o = tl.load(peep_ptr + 2 * H + cols, mask=col_mask, other=0.0)[None, :]
    if ZONE_C:  # the kept share of c_t is c_{t-1}'s
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
def _close_projected(t, T, length, rows, row_mask, dy_ptr, da_ptr, w_hh_ptr, rec_ptr,
                     zone_h_ptr, dh_ptr, dproj_ptr, B, H, P, BLOCK_B: tl.constexpr,
                     BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                     REC: tl.constexpr, ZONE_H: tl.constexpr):
    """Close step t with ``PROJ``, the program's blocks of P columns: ``dh_{t-1}`` (at t = T:
    ``dh_T``, in slot T % 2 from the host), then ``e_{t-1}`` for opening step t-1."""
    for j in range(tl.program_id(1) * BLOCK_H, P, tl.num_programs(1) * BLOCK_H):
        cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, P, BLOCK_H)
        if t == T:
            dh = tl.load(dh_ptr + (T % 2) * B * P + at, mask=tile_mask, other=0.0)
        else:
            acc = dot_accumulate(tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32),
                                 da_ptr + tl.cast(t, tl.int64) * B * 4 * H, 4 * H, rows,
                                 row_mask, w_hh_ptr, 1, P, cols, col_mask, 4 * H, BLOCK_K,
                                 PRECISION)
            dh = state_grad(acc, t, at, tile_mask, length, rec_ptr, dh_ptr, B, P, REC, ZONE_H)
        if t > 0:
            e = _output_grad(dh, t - 1, at, tile_mask, length, dy_ptr, dh_ptr, zone_h_ptr, B,
                             P, ZONE_H)
            tl.store(dproj_ptr + tl.cast(t - 1, tl.int64) * B * P + at, e, mask=tile_mask)


@triton.jit
def lstm_backward_kernel(dy_ptr, w_hh_ptr, peep_ptr, w_hr_ptr, lengths_ptr, gates_ptr, c_ptr,
                         clipped_ptr, rec_ptr, zone_h_ptr, zone_c_ptr, c_tilde_ptr, ln_ptr,
                         pre_ptr, norms_ptr, shared_ptr, da_ptr, dq_ptr, dn_ptr, dproj_ptr,
                         dh_ptr, dc_ptr, T, B, H, P, S0, S1, sync_ptr, gate_alpha, gate_beta,
                         cand_alpha, cand_beta, out_alpha, out_beta, BLOCK_B: tl.constexpr,
                         BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                         SYNC: tl.constexpr, PEEPHOLE: tl.constexpr, HAS_CLIP: tl.constexpr,
                         COUPLED: tl.constexpr, GATE_ACT: tl.constexpr, CAND_ACT: tl.constexpr,
                         OUT_ACT: tl.constexpr, REC: tl.constexpr, ZONE_H: tl.constexpr,
                         ZONE_C: tl.constexpr, PROJ: tl.constexpr, LAYER_NORM: tl.constexpr,
                         H_PAD: tl.constexpr, RESIDENT: tl.constexpr):
    """LSTM BPTT over sub-steps from the last step down, for one tile of sequences: the gate gradients ``da`` and the carried ``dh``, ``dc``; see the module docstring."""
    tile, rows, row_mask, length = tile_rows(lengths_ptr, B, BLOCK_B)
    if LAYER_NORM:
        layernorm_lstm_backward(dy_ptr, w_hh_ptr, ln_ptr, gates_ptr, c_ptr, pre_ptr, norms_ptr,
                                shared_ptr, rec_ptr, zone_h_ptr, zone_c_ptr, c_tilde_ptr, da_ptr,
                                dq_ptr, dn_ptr, dh_ptr, dc_ptr, tile, rows, row_mask, length, T,
                                B, H, S0, S1, sync_ptr, gate_alpha, gate_beta, cand_alpha,
                                cand_beta, out_alpha, out_beta, BLOCK_B, BLOCK_H, BLOCK_K,
                                PRECISION, SYNC, GATE_ACT, CAND_ACT, OUT_ACT, REC, ZONE_H,
                                ZONE_C, H_PAD, RESIDENT)
    else:
        if not PROJ:  # h has the H units (one value for both, as the compiler sees it)
            P = H
        w_f = gate_operand(w_hh_ptr, 1, H, BLOCK_H, H_PAD, False, PRECISION, RESIDENT)
        w_g = gate_operand(w_hh_ptr, 2, H, BLOCK_H, H_PAD, False, PRECISION, RESIDENT)
        w_o = gate_operand(w_hh_ptr, 3, H, BLOCK_H, H_PAD, False, PRECISION, RESIDENT)
        if COUPLED:  # no product for i (its gradient is 0): f's operand stands in
            w_i = w_f
        else:
            w_i = gate_operand(w_hh_ptr, 0, H, BLOCK_H, H_PAD, False, PRECISION, RESIDENT)
        for s in range(S0, S1):
            if PROJ:  # sub-step 2k closes step T - k, 2k + 1 opens step T - 1 - k
                t_close = T - s // 2
                closing = s % 2 == 0
                t_open = T - 1 - s // 2
                opening = s % 2 == 1
            else:  # sub-step s closes step T - s and opens step T - 1 - s
                t_close = T - s
                closing = s > 0
                t_open = T - 1 - s
                opening = s < T
            if closing:
                if PROJ:
                    _close_projected(t_close, T, length, rows, row_mask, dy_ptr, da_ptr,
                                     w_hh_ptr, rec_ptr, zone_h_ptr, dh_ptr, dproj_ptr, B, H, P,
                                     BLOCK_B, BLOCK_H, BLOCK_K, PRECISION, REC, ZONE_H)
                else:  # dh_{t-1} of the program's columns (reads all of da_t)
                    da_t = da_ptr + tl.cast(t_close, tl.int64) * B * 4 * H
                    for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                        cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H,
                                                                     BLOCK_H)
                        acc = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
                        if not COUPLED:  # coupled gates: da_i = 0
                            acc = state_product(acc, da_t, 4 * H, w_hh_ptr, w_i, 0, rows,
                                                row_mask, cols, col_mask, H, BLOCK_K, H_PAD,
                                                PRECISION, RESIDENT)
                        acc = state_product(acc, da_t, 4 * H, w_hh_ptr, w_f, 1, rows, row_mask,
                                            cols, col_mask, H, BLOCK_K, H_PAD, PRECISION,
                                            RESIDENT)
                        acc = state_product(acc, da_t, 4 * H, w_hh_ptr, w_g, 2, rows, row_mask,
                                            cols, col_mask, H, BLOCK_K, H_PAD, PRECISION,
                                            RESIDENT)
                        acc = state_product(acc, da_t, 4 * H, w_hh_ptr, w_o, 3, rows, row_mask,
                                            cols, col_mask, H, BLOCK_K, H_PAD, PRECISION,
                                            RESIDENT)
                        state_grad(acc, t_close, at, tile_mask, length, rec_ptr, dh_ptr, B, H,
                                   REC, ZONE_H)
            if not PROJ:  # the owner reads what it wrote: a block barrier orders it
                tl.debug_barrier()
            if opening:
                for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
                    cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
                    if PROJ:  # dh̃_t = e_t W_hr (all of e_t, written before the barrier)
                        g_h = dot_accumulate(tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32),
                                             dproj_ptr + tl.cast(t_open, tl.int64) * B * P, P,
                                             rows, row_mask, w_hr_ptr, 1, H, cols, col_mask, P,
                                             BLOCK_K, PRECISION)
                    else:
                        g_h = _output_grad(tl.load(dh_ptr + ((t_open + 1) % 2) * B * H + at,
                                                   mask=tile_mask, other=0.0),
                                           t_open, at, tile_mask, length, dy_ptr, dh_ptr,
                                           zone_h_ptr, B, H, ZONE_H)
                    _gate_grads(g_h, t_open, rows, cols, col_mask, tile_mask, at, length,
                                peep_ptr, gates_ptr, c_ptr, clipped_ptr, zone_c_ptr, c_tilde_ptr,
                                da_ptr, dc_ptr, B, H, gate_alpha, gate_beta, cand_alpha,
                                cand_beta, out_alpha, out_beta, PEEPHOLE, HAS_CLIP, COUPLED,
                                GATE_ACT, CAND_ACT, OUT_ACT, ZONE_C)
            substep_end(sync_ptr, tile, s - S0, SYNC)
