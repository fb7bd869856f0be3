"""Triton building blocks of the layer-normalised LSTM and GRU kernels: the layer norm of a
step's ``K`` gate blocks of recurrent pre-activations (``G = K·H`` values a row), spread over
the programs of a tile as :mod:`rnnlab.backends.triton.kernels_common` describes.

Forward ``ẑ = (z - mean z)·s``, ``s = 1/sqrt(var z + eps)``; backward, with ``dẑ`` the
gradient reaching ``ẑ``, ``dz = (dẑ - mean dẑ - ẑ∘mean(dẑ∘ẑ))·s`` (means over the row's G
values, from the partial sums every program shares).

The recurrent products (forward ``z = h̄ W_hhᵀ``, backward ``dz W_hh``) run one product per
gate block, streamed or, with ``RESIDENT``, against the program's slices of ``W_hh`` kept on
chip for all steps (:func:`recurrent_slices`), as the plain kernels'
(:mod:`rnnlab.backends.triton.kernels_common`).
"""

import triton
import triton.language as tl

from rnnlab.backends.triton.kernels_common import (
    column_block,
    gate_operand,
    gate_product,
    merge_moments,
    operand_tile,
    row_sums,
    state_product,
    tile_moments,
)


@triton.jit
def normalised_gate(pre, ln_ptr, k: tl.constexpr, cols, col_mask, tile_mask, mean, s, H,
                    TRAINING: tl.constexpr):
    """Gate block ``k`` of a tile's recurrent pre-activations normalised and scaled, ``ẑ∘γ``:
    ``ẑ = (z - mean)·s``, the gains ``γ`` at ``ln_ptr + k·H``; ``pre`` holds z_t, and when
    training receives ẑ_t, which the backward reads."""
    z_hat = (tl.load(pre + k * H, mask=tile_mask, other=0.0) - mean) * s
    if TRAINING:
        tl.store(pre + k * H, z_hat, mask=tile_mask)
    return z_hat * tl.load(ln_ptr + k * H + cols, mask=col_mask, other=0.0)[None, :]


@triton.jit
def recurrent_slices(w_hh_ptr, H, K: tl.constexpr, BLOCK_H: tl.constexpr, H_PAD: tl.constexpr,
                     TRANSPOSED: tl.constexpr, PRECISION: tl.constexpr, RESIDENT: tl.constexpr):
    """The weights of the K gate blocks' recurrent products, one per block (four; with K = 3
    the fourth repeats the third, unused): with ``RESIDENT`` the program's slices of ``W_hh``
    (:func:`~rnnlab.backends.triton.kernels_common.gate_operand`, ``TRANSPOSED`` for the
    forward's ``h̄ W_gᵀ``), loaded once before the time loop; streamed, ``w_hh_ptr`` itself."""
    w_0 = gate_operand(w_hh_ptr, 0, H, BLOCK_H, H_PAD, TRANSPOSED, PRECISION, RESIDENT)
    w_1 = gate_operand(w_hh_ptr, 1, H, BLOCK_H, H_PAD, TRANSPOSED, PRECISION, RESIDENT)
    w_2 = gate_operand(w_hh_ptr, 2, H, BLOCK_H, H_PAD, TRANSPOSED, PRECISION, RESIDENT)
    if K == 4:
        w_3 = gate_operand(w_hh_ptr, 3, H, BLOCK_H, H_PAD, TRANSPOSED, PRECISION, RESIDENT)
    else:
        w_3 = w_2
    return w_0, w_1, w_2, w_3


@triton.jit
def _gate_moments(n, mean, m2, k: tl.constexpr, h_in, h_tile, w_hh_ptr, w_slice, pre_tile,
                  rows, row_mask, cols, col_mask, tile_mask, H, BLOCK_B: tl.constexpr,
                  BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                  RESIDENT: tl.constexpr):
    """Gate block ``k``'s ``z = h̄ W_kᵀ`` of a tile, stored at ``pre_tile``, merged into the
    rows' moments."""
    z = gate_product(tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32), h_in, h_tile, w_hh_ptr,
                     w_slice, k, rows, row_mask, cols, col_mask, H, BLOCK_K, PRECISION, RESIDENT)
    tl.store(pre_tile + k * H, z, mask=tile_mask)
    n_z, mean_z, m2_z = tile_moments(z, tile_mask)
    return merge_moments(n, mean, m2, n_z, mean_z, m2_z)


@triton.jit
def recurrent_moments(h_in, w_hh_ptr, w_0, w_1, w_2, w_3, pre, rows, row_mask, H,
                      K: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                      BLOCK_K: tl.constexpr, H_PAD: tl.constexpr, PRECISION: tl.constexpr,
                      RESIDENT: tl.constexpr):
    """``z = h̄ W_hhᵀ`` of the program's columns of the K gate blocks (``w_0 … w_3`` from
    :func:`recurrent_slices`: with ``RESIDENT`` one ``tl.dot`` per block against the resident
    slice, ``h̄`` read once as one tile), stored at ``pre`` (the step's (B, K·H) slot); returns
    the rows' partial moments ``(count, mean, M2)`` over them."""
    n = tl.zeros((BLOCK_B,), dtype=tl.float32)
    mean = tl.zeros((BLOCK_B,), dtype=tl.float32)
    m2 = tl.zeros((BLOCK_B,), dtype=tl.float32)
    if RESIDENT:  # h̄_{t-1} read once for the K gates
        h_tile = operand_tile(h_in, H, rows, row_mask, H, w_0, H_PAD)
    else:
        h_tile = h_in
    for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
        cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
        pre_tile = pre + rows[:, None] * K * H + cols[None, :]
        n, mean, m2 = _gate_moments(n, mean, m2, 0, h_in, h_tile, w_hh_ptr, w_0, pre_tile, rows,
                                    row_mask, cols, col_mask, tile_mask, H, BLOCK_B, BLOCK_H,
                                    BLOCK_K, PRECISION, RESIDENT)
        n, mean, m2 = _gate_moments(n, mean, m2, 1, h_in, h_tile, w_hh_ptr, w_1, pre_tile, rows,
                                    row_mask, cols, col_mask, tile_mask, H, BLOCK_B, BLOCK_H,
                                    BLOCK_K, PRECISION, RESIDENT)
        n, mean, m2 = _gate_moments(n, mean, m2, 2, h_in, h_tile, w_hh_ptr, w_2, pre_tile, rows,
                                    row_mask, cols, col_mask, tile_mask, H, BLOCK_B, BLOCK_H,
                                    BLOCK_K, PRECISION, RESIDENT)
        if K == 4:
            n, mean, m2 = _gate_moments(n, mean, m2, 3, h_in, h_tile, w_hh_ptr, w_3, pre_tile,
                                        rows, row_mask, cols, col_mask, tile_mask, H, BLOCK_B,
                                        BLOCK_H, BLOCK_K, PRECISION, RESIDENT)
    return n, mean, m2


@triton.jit
def recurrent_grad(d_ptr, w_hh_ptr, w_0, w_1, w_2, w_3, rows, row_mask, cols, col_mask, H,
                   K: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                   BLOCK_K: tl.constexpr, H_PAD: tl.constexpr, PRECISION: tl.constexpr,
                   RESIDENT: tl.constexpr):
    """``dz W_hh`` for the tile's columns, ``dz`` the step's (B, K·H) gradient of the
    recurrent pre-activations at ``d_ptr``: one product per gate block
    (:func:`~rnnlab.backends.triton.kernels_common.state_product`; ``w_0 … w_3`` from
    :func:`recurrent_slices`, not transposed)."""
    acc = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
    acc = state_product(acc, d_ptr, K * H, w_hh_ptr, w_0, 0, rows, row_mask, cols, col_mask, H,
                        BLOCK_K, H_PAD, PRECISION, RESIDENT)
    acc = state_product(acc, d_ptr, K * H, w_hh_ptr, w_1, 1, rows, row_mask, cols, col_mask, H,
                        BLOCK_K, H_PAD, PRECISION, RESIDENT)
    acc = state_product(acc, d_ptr, K * H, w_hh_ptr, w_2, 2, rows, row_mask, cols, col_mask, H,
                        BLOCK_K, H_PAD, PRECISION, RESIDENT)
    if K == 4:
        acc = state_product(acc, d_ptr, K * H, w_hh_ptr, w_3, 3, rows, row_mask, cols, col_mask,
                            H, BLOCK_K, H_PAD, PRECISION, RESIDENT)
    return acc


@triton.jit
def gradient_sums(part_d, part_dz, d, pre, ln_ptr, cols, col_mask, tile_mask, H,
                  K: tl.constexpr):
    """``part_d + Σ dẑ`` and ``part_dz + Σ dẑ∘ẑ`` per row of a tile of the K gate blocks,
    with ``dẑ = d∘γ`` (``γ`` the first K·H values of ``ln``) and ``ẑ`` read from ``pre``."""
    for k in tl.static_range(K):
        gain = tl.load(ln_ptr + k * H + cols, mask=col_mask, other=0.0)[None, :]
        d_hat = tl.load(d + k * H, mask=tile_mask, other=0.0) * gain
        z_hat = tl.load(pre + k * H, mask=tile_mask, other=0.0)
        part_d += tl.sum(d_hat, axis=1)
        part_dz += tl.sum(d_hat * z_hat, axis=1)
    return part_d, part_dz


@triton.jit
def gates_norm_backward(d, pre, out, ln_ptr, shared_ptr, s, rows, row_mask, B, H,
                        K: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr):
    """``dz = (dẑ - mean dẑ - ẑ∘mean(dẑ∘ẑ))·s`` into ``out`` for the program's columns of the
    K gate blocks (``d``, ``pre``, ``out``: the step's (B, K·H) slots; ``dẑ = d∘γ``), the
    means from the sums of :func:`gradient_sums` the tile's programs shared."""
    sum_d, sum_dz = row_sums(shared_ptr, rows, row_mask, B, BLOCK_B)
    mean_d = (sum_d / (K * H))[:, None]
    mean_dz = (sum_dz / (K * H))[:, None]
    for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
        cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
        offsets = rows[:, None] * K * H + cols[None, :]
        for k in tl.static_range(K):
            gain = tl.load(ln_ptr + k * H + cols, mask=col_mask, other=0.0)[None, :]
            d_hat = tl.load(d + offsets + k * H, mask=tile_mask, other=0.0) * gain
            z_hat = tl.load(pre + offsets + k * H, mask=tile_mask, other=0.0)
            tl.store(out + offsets + k * H, (d_hat - mean_d - z_hat * mean_dz) * s,
                     mask=tile_mask)
